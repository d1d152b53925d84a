"""The msgspec reader (rating.fastread) accepts and refuses exactly what the pydantic path does."""

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating.errors import EventError
from rating.events import _parse_line, read_jsonl

fastread = pytest.importorskip("rating.fastread")
if not fastread.AVAILABLE:
    pytest.skip("msgspec is not installed (rating-engine[fast])", allow_module_level=True)

BASE = (
    '{"id":"e-1","customer":"acme","type":"api_call","timestamp":"2026-03-01T10:00:00+02:00",'
    '"properties":{"amount":1.10,"tokens":3},"attribution":{"agent":"bot","session":"s"},"billing_source":"byok"}'
)


def outcome(parse: Any, line: str) -> tuple[str, Any, Any]:
    """What a parser makes of a line: the event's dump and canonical JSON, or the refusal code and reason."""
    try:
        event = parse(line)
    except EventError as error:
        return "refused", error.code, str(error)
    return "event", event.model_dump(), event.canonical_json()


def same(line: str) -> tuple[str, Any, Any]:
    fast, slow = outcome(fastread.parse_line, line), outcome(_parse_line, line)
    assert fast == slow, line
    return fast


def test_decimals_keep_their_text() -> None:
    kind, dump, _ = same(BASE.replace('"tokens":3', '"tokens":3,"m":3.000,"b":1.1'))
    assert kind == "event"
    assert str(dump["properties"]["amount"]) == "1.10" and str(dump["properties"]["b"]) == "1.1"
    assert dump["properties"]["tokens"] == 3 and type(dump["properties"]["tokens"]) is int
    assert str(dump["properties"]["m"]) == "3.000"


def test_duplicate_amount_is_refused() -> None:
    kind, code, reason = same(BASE.replace('"amount":1.10', '"amount":"1","amount":"1000"'))
    assert kind == "refused" and code == "invalid_record" and "appears twice" in reason


def test_duplicate_top_level_key_is_refused() -> None:
    kind, _, reason = same(BASE.replace('"type":"api_call"', '"type":"api_call","type" :"x"'))
    assert kind == "refused" and "appears twice" in reason


@pytest.mark.parametrize("stamp", ["1796000000", '"1796000000"', "1796000000.5", '"2026-03-01T10:00:00"', "null"])
def test_epoch_numbers_and_naive_timestamps_are_refused(stamp: str) -> None:
    kind, _, reason = same(BASE.replace('"2026-03-01T10:00:00+02:00"', stamp))
    assert kind == "refused" and reason.startswith("timestamp")


@pytest.mark.parametrize(
    "value",
    [
        "123456789012345678901234567890",
        "1e399999999999999999999",
        "1e5",
        "-0",
        "1E+400",
        "NaN",
        "Infinity",
        '"\\ud800"',
        "[[[[1]]]]",
    ],
)
def test_odd_numbers_and_text(value: str) -> None:
    same(BASE.replace('"tokens":3', f'"tokens":{value}'))


def test_reader_uses_the_fast_path_with_the_same_records() -> None:
    lines = [BASE, "", "[1]", BASE.replace("e-1", "e 2"), BASE.replace('"amount":1.10', '"amount":1,"amount":2')]
    data = ("\n".join(lines) + "\n").encode()
    fast = list(read_jsonl(io.BytesIO(data), "f"))
    slow = list(read_jsonl(io.BytesIO(data), "f", fast=False))
    assert fast == slow and len(fast) == 4 and fast[0].event is not None


# -- the property -------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    ['{', '}', '[', ']', ',', ':', '"', '"id"', '"customer"', '"type"', '"timestamp"', '"properties"',
     '"attribution"', '"billing_source"', '"agent"', '"amount"', '"e1"', '"c:1"', '"2026-01-01T00:00:00Z"',
     '"2026-01-01"', "1", "1.10", "3.000", "1e3", "-0", "99999999999999999999", "true", "null", " ", "\\u0000",
     '"\\ud800"', "NaN", "é", "\t"]
)  # fmt: skip
JSONISH = st.lists(FRAGMENTS, max_size=30).map("".join)

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str).map(Decimal),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3))
PERTURB = st.sampled_from(
    ["id", "customer", "type", "timestamp", "properties", "attribution", "billing_source", "extra", None]
)


def _raw(value: Any, space: str) -> str:
    """JSON text with numbers as written (a Decimal's own text) and ``space`` before every colon."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}{space}: {_raw(v, space)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_raw(v, space) for v in value) + "]"
    if isinstance(value, Decimal | float):
        return str(value) if isinstance(value, Decimal) else repr(value)
    return json.dumps(value, ensure_ascii=False)


@st.composite
def events(draw: st.DrawFn) -> str:
    """A valid event's JSON with a field replaced, a key given twice, or whitespace before colons."""
    fields = json.loads(BASE)
    fields["properties"] = draw(st.dictionaries(TEXT, VALUES, max_size=4))
    target = draw(st.none() | st.none() | PERTURB)  # a third of them left valid
    if target is not None:
        fields[target] = draw(VALUES | st.sampled_from(["2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "byok"]))
    space = draw(st.sampled_from(["", "", " ", "\t", "\r\n"]))
    body = _raw(fields, space)
    twice = draw(st.integers(0, 5))
    if twice == 0:  # a top-level key again
        key = draw(st.sampled_from(sorted(fields)))
        body = body[:-1] + f', "{key}":{_raw(fields[key], space)}' + "}"
    elif twice == 1 and isinstance(fields.get("properties"), dict) and fields["properties"]:
        key = draw(st.sampled_from(sorted(fields["properties"])))
        body = body.replace('"properties"' + space + ": {", f'"properties"{space}: {{{json.dumps(key)}:0, ', 1)
    return body


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(JSONISH, events(), st.binary(max_size=40).map(lambda b: b.decode("utf-8", "replace"))))
def test_fast_and_pydantic_readers_agree(line: str) -> None:
    same(line)


@pytest.mark.parametrize(
    "attribution", ['{"agent":["a"]}', '{"agent":{"x":1}}', '{"agent":"a b"}', '{"who":"a"}', "[]"]
)
def test_odd_attributions(attribution: str) -> None:
    kind, _, reason = same(BASE.replace('{"agent":"bot","session":"s"}', attribution))
    assert kind == "refused" and reason.startswith("attribution")


def test_without_msgspec_the_reader_takes_the_pydantic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def unused(line: str) -> None:
        raise AssertionError("the fast path ran without msgspec")

    monkeypatch.setattr(fastread, "AVAILABLE", False)
    monkeypatch.setattr(fastread, "parse_line", unused)
    records = list(read_jsonl(io.BytesIO((BASE + "\n").encode()), "f"))
    assert records[0].event is not None and str(records[0].event.properties["amount"]) == "1.10"
