"""A fast JSON Lines event reader: msgspec decoding, the checks of :class:`UsageEvent` made by hand.

The pydantic path (:func:`rating.events.parse_json` then :func:`rating.events.parse_event`)
costs tens of microseconds per event. This reader decodes a line with msgspec
(numbers with a fraction or an exponent as ``Decimal`` from their text, so
``1.10`` stays ``1.10`` and ``3`` stays distinct from ``3.000``), runs the same
check functions the model runs (id grammar, bounded free text, Unicode text,
nesting, timestamp text and range), and builds the event with
``model_construct``. It only ever *accepts* on its own: a line it has any doubt
about (one that may hold a duplicate key, a number msgspec read differently
from ``json``, a field of an unusual type, a value a check refuses) goes
through the pydantic path, so every refusal keeps today's code and reason.

msgspec is optional (``pip install 'rating-engine[fast]'``); :data:`AVAILABLE` says
whether it is installed.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, TypeAdapter

from rating.accounts import check_free_text, check_id
from rating.events import (
    EARLIEST,
    EPOCH_TEXT,
    LATEST,
    MAX_NESTING,
    Attribution,
    UsageEvent,
    _unicode,
    parse_event,
    parse_json,
)

try:
    import msgspec
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    msgspec = None  # type: ignore[assignment]

#: Whether msgspec is installed, so that :func:`rating.events.read_jsonl` takes this path.
AVAILABLE = msgspec is not None

_DECODER: Any = msgspec.json.Decoder(float_hook=Decimal) if msgspec is not None else None
# The timestamp field's own validator: the accepted text and the datetime (its tzinfo included) are pydantic's.
_TIMESTAMP: TypeAdapter[dt.datetime] = TypeAdapter(AwareDatetime)
# Every key of a JSON object ends with a quote followed by a colon; text inside strings may add more matches,
# never fewer. When the decoded objects hold as many keys as there are matches, no key was given twice.
_KEY_END = re.compile(r'"[ \t\n\r]*:')
_FIELDS = frozenset(UsageEvent.model_fields)
_REQUIRED = frozenset(name for name, field in UsageEvent.model_fields.items() if field.is_required())
_ATTRIBUTION_FIELDS = frozenset(Attribution.model_fields)
_BILLING_SOURCES = frozenset(("platform", "byok"))
# Beyond 64 bits msgspec hands an integer to the float hook (a Decimal) where json gives an int: such a
# Decimal has a non-negative exponent, as has 1e5, which json also reads as a Decimal. Either way: the slow path.
_INTEGRAL = 0


_Model = TypeVar("_Model", bound=BaseModel)
_set = object.__setattr__
_ABSENT = object()
_NO_ATTRIBUTION: Attribution = UsageEvent.model_fields["attribution"].get_default(call_default_factory=True)
_ATTRIBUTION_ORDER = tuple(Attribution.model_fields)
#: Distinct attribution objects kept for sharing; the cache empties when full (agents and sessions repeat).
_ATTRIBUTIONS_KEPT = 4096
_ATTRIBUTIONS: dict[tuple[tuple[str, Any], ...], Attribution] = {}
_EVENT_ORDER = ("id", "customer", "type", "timestamp", "properties", "attribution", "billing_source")
for _checked, _order in ((UsageEvent, _EVENT_ORDER), (Attribution, _ATTRIBUTION_ORDER)):
    # _construct relies on these: a model that gains private attributes, extras, a post-init or a field
    # must be built by model_construct again (and the checks of _accept revisited), not silently mis-built.
    if (
        _checked.__private_attributes__
        or _checked.__pydantic_post_init__ is not None
        or _checked.model_config.get("extra") != "forbid"
        or tuple(_checked.model_fields) != _order
    ):
        raise RuntimeError(f"rating.fastread does not know {_checked.__name__} as it is now")


class _Doubt(Exception):
    """The line is not plainly valid: the pydantic path decides."""


def parse_line(line: str) -> UsageEvent:
    """One JSON Lines record as an event, or :class:`EventError` with the pydantic path's code and reason."""
    if _DECODER is not None:
        try:
            return _accept(line)
        except (
            _Doubt,
            msgspec.DecodeError,
            ValueError,
            ArithmeticError,
            TypeError,
            RecursionError,
        ):  # the pydantic path decides
            pass
    return parse_event(parse_json(line))


def _accept(line: str) -> UsageEvent:
    data = _DECODER.decode(line)
    if type(data) is not dict or not data.keys() >= _REQUIRED or not data.keys() <= _FIELDS:
        raise _Doubt
    keys = len(data)
    event_id, customer, kind, timestamp = data["id"], data["customer"], data["type"], data["timestamp"]
    if type(event_id) is not str or type(kind) is not str or type(timestamp) is not str:
        raise _Doubt
    check_free_text("event id", event_id)
    check_free_text("value", kind)
    check_id("customer", customer)
    if EPOCH_TEXT.fullmatch(timestamp.strip()):
        raise _Doubt
    moment = _TIMESTAMP.validate_python(timestamp)
    if not EARLIEST <= moment < LATEST:
        raise _Doubt
    properties = data.get("properties", _ABSENT)
    if properties is _ABSENT:
        properties = {}
    elif type(properties) is dict:
        keys += _plain(properties, 0)
    else:
        raise _Doubt
    attribution = data.get("attribution", _ABSENT)
    if attribution is _ABSENT:
        attribution = _NO_ATTRIBUTION
    elif type(attribution) is dict:
        keys += len(attribution)
        attribution = _attribution(attribution)
    else:
        raise _Doubt
    billing_source = data.get("billing_source", "platform")
    if type(billing_source) is not str or billing_source not in _BILLING_SOURCES:
        raise _Doubt
    if not _keys_once(line, keys):
        raise _Doubt  # perhaps a key given twice: the pydantic path names it
    fields = {
        "id": event_id,
        "customer": customer,
        "type": kind,
        "timestamp": moment,
        "properties": properties,
        "attribution": attribution,
        "billing_source": billing_source,
    }
    return _construct(UsageEvent, fields, set(data))


def _keys_once(line: str, keys: int) -> bool:
    """Whether the line gives no key twice, knowing its decoded objects hold ``keys`` keys.

    Every key ends with a quote, then perhaps JSON whitespace, then a colon; text inside strings may add
    matches, never remove one. So as many matches as decoded keys means no key was dropped as a duplicate.
    With no whitespace before any colon, ``str.count`` finds them all (and is ten times cheaper than the regex).
    """
    if " :" in line or "\t:" in line or "\n:" in line or "\r:" in line:
        return len(_KEY_END.findall(line)) == keys
    return line.count('":') == keys


def _attribution(given: dict[str, Any]) -> Attribution:
    """The attribution object, checked as its model checks it; equal ones are shared (the model is frozen)."""
    if not given.keys() <= _ATTRIBUTION_FIELDS:
        raise _Doubt
    if any(value is not None and type(value) is not str for value in given.values()):
        raise _Doubt
    key = tuple(given.items())
    known = _ATTRIBUTIONS.get(key)
    if known is not None:
        return known
    for name, value in key:
        if value is None:
            continue
        if name == "agent":
            check_id("agent", value)
        else:
            check_free_text("value", value)
    if len(_ATTRIBUTIONS) >= _ATTRIBUTIONS_KEPT:
        _ATTRIBUTIONS.clear()
    made = _ATTRIBUTIONS[key] = _construct(
        Attribution, {name: given.get(name) for name in _ATTRIBUTION_ORDER}, set(given)
    )
    return made


def _construct(model: type[_Model], fields: dict[str, Any], given: set[str]) -> _Model:
    """What ``model.model_construct(**fields)`` makes, without its per-call loop over the fields' defaults.

    ``fields`` names every field, in the model's order; ``given`` is the fields set. Only for models with
    no private attributes, no extras and no post-init (checked when this module loads).
    """
    made = model.__new__(model)
    _set(made, "__dict__", fields)
    _set(made, "__pydantic_fields_set__", given)
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


def _plain(value: dict[str, Any], depth: int) -> int:
    """Keys in ``value``'s objects; :class:`_Doubt` for what the properties validator would change or refuse.

    ``depth`` counts as :func:`rating.events.nests_within` does: the properties object is at 0.
    """
    if depth >= MAX_NESTING:
        raise _Doubt
    keys = len(value)
    for key, item in value.items():
        if not key.isascii():
            _unicode(key)
        keys += _item(item, depth + 1)
    return keys


def _item(item: Any, depth: int) -> int:
    kind = type(item)
    if kind is str:
        if not item.isascii():
            _unicode(item)
    elif kind is Decimal:
        if item.as_tuple().exponent >= _INTEGRAL:
            raise _Doubt
    elif kind is dict:
        return _plain(item, depth)
    elif kind is list:
        if depth >= MAX_NESTING:
            raise _Doubt
        return sum(_item(child, depth + 1) for child in item)
    elif kind is float:
        raise _Doubt
    return 0


__all__ = ["AVAILABLE", "parse_line"]
