"""Every event refusal has one stable code, reachable by a real event, carried by errors and batch rejections."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from rating.billing.close import close_period
from rating.engine import Engine
from rating.errors import EventError
from rating.events import Sourced, UsageEvent, read_jsonl
from rating.pricebook.model import Pricebook
from rating.refusals import CHECK_ORDER, Refusal, refusal_table
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import ROOT

BOOK = """\
pricebook: refusals
version: 2026-10-01
currency: USD
meters:
  calls: {event: api.call, count: true}
  tokens: {event: api.call, sum: tokens, group_by: [model]}
  wins: {event: outcome, count: true, where: {status: [success]}}
plans:
  basic:
    charges:
      - {meter: calls, model: per_call, price: "1"}
      - {meter: tokens, model: per_unit, unit_price: "1"}
      - {meter: wins, model: per_call, price: "1"}
customers:
  acme: {plan: basic}
  late: {plan: basic, since: 2026-12-01}
  capped: {plan: basic, spend_cap: "1"}
  walt: {plan: basic, billing: wallet}
  huge: {plan: basic}
"""
NOV = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)


def _event(customer: str = "acme", type: str = "api.call", at: dt.datetime = NOV, **properties: object) -> UsageEvent:
    properties = {"tokens": 1, "model": "m", **properties}
    return UsageEvent(
        id=f"{customer}-{type}-{at:%m%d}", customer=customer, type=type, timestamp=at, properties=properties
    )


@pytest.fixture
def engine(book: Callable[[str], Pricebook], registry: Registry) -> Engine:
    clock = lambda: NOV  # noqa: E731
    engine = Engine(book(BOOK), MemoryStorage(), registry, future_tolerance=dt.timedelta(minutes=5), clock=clock)
    engine.rate(_event(at=dt.datetime(2026, 10, 5, tzinfo=dt.UTC)))
    close_period(engine, "2026-10", ["acme"])
    return engine


CASES: dict[Refusal, UsageEvent] = {
    Refusal.FUTURE_TIMESTAMP: _event(at=NOV + dt.timedelta(hours=1)),
    Refusal.NO_VERSION_IN_FORCE: _event(at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC)),
    Refusal.UNKNOWN_CUSTOMER: _event(customer="nobody"),
    Refusal.NOT_SUBSCRIBED: _event(customer="late"),
    Refusal.UNKNOWN_EVENT_TYPE: _event(type="api.cal"),
    Refusal.EXCLUDED_BY_FILTER: _event(type="outcome", status="failed"),
    Refusal.MISSING_PROPERTY: _event(model=None),
    Refusal.INVALID_PROPERTY: _event(model={"name": "m"}),
    Refusal.INVALID_QUANTITY: _event(tokens=-1),
    Refusal.CLOSED_PERIOD: _event(at=dt.datetime(2026, 10, 20, tzinfo=dt.UTC)),
    Refusal.SPEND_CAP_REACHED: _event(customer="capped", tokens=5),
    Refusal.INSUFFICIENT_FUNDS: _event(customer="walt"),
}


@pytest.mark.parametrize("code", list(CASES), ids=str)
def test_each_refusal_is_raised_with_its_code_and_listed_with_it(engine: Engine, code: Refusal) -> None:
    with pytest.raises(EventError) as raised:
        engine.rate(CASES[code])
    assert raised.value.code is code
    report = engine.rate_batch([CASES[code]])
    assert report.posted == 0 and [(r.location, r.code) for r in report.rejected] == [(f"event {CASES[code].id}", code)]


def test_conflicting_reuse_of_an_id_and_an_invalid_record_have_their_codes(engine: Engine) -> None:
    posted = _event()
    engine.rate(posted)
    changed = posted.model_copy(update={"properties": {"tokens": 2, "model": "m"}})
    report = engine.rate_batch([Sourced("f:1", error="invalid JSON: boom"), changed])
    assert [r.code for r in report.rejected] == [Refusal.INVALID_RECORD, Refusal.DUPLICATE_CONFLICT]


def test_arithmetic_that_cannot_stay_exact_is_not_exact(engine: Engine) -> None:
    engine.rate(_event(tokens=7))
    with pytest.raises(EventError) as raised:
        engine.rate(_event(tokens=Decimal("1E-100")).model_copy(update={"id": "tiny"}))
    assert raised.value.code is Refusal.NOT_EXACT


def test_the_documented_table_of_refusal_codes_is_the_table_the_checks_rank_by() -> None:
    section = (ROOT / "docs" / "refusals.md").read_text()
    assert refusal_table() in section, "docs/refusals.md's table must be rating.refusals.refusal_table(), pasted"
    assert len(CHECK_ORDER) == len(set(CHECK_ORDER)) and set(CHECK_ORDER) == set(Refusal)


# -- the order: an event failing two checks at once is refused for the one listed first ------------------------

ADJACENT = list(zip(CHECK_ORDER, CHECK_ORDER[1:], strict=False))
#: Adjacent checks no event can fail together: an unknown customer has no subscription, and a ``where``
#: filter belongs to a meter that counts the event's type.
NO_EVENT_FAILS_BOTH = {
    (Refusal.UNKNOWN_CUSTOMER, Refusal.NOT_SUBSCRIBED),
    (Refusal.UNKNOWN_EVENT_TYPE, Refusal.EXCLUDED_BY_FILTER),
}
OCTOBER, SEPTEMBER = dt.datetime(2026, 10, 20, tzinfo=dt.UTC), dt.datetime(2026, 9, 15, tzinfo=dt.UTC)


def _epoch_stamped(event: UsageEvent) -> Sourced:
    """``event`` as a JSON Lines record, but with an epoch for its timestamp."""
    text = json.dumps({**json.loads(event.model_dump_json()), "timestamp": 1796000000})
    return next(read_jsonl(io.BytesIO(text.encode()), "f"))


#: Pairs checked before any meter reads the event, on the engine of :data:`BOOK` (now: NOV; acme's October
#: closed; ``POSTED`` rated): a record that fails both, and the same repaired so that only the later one fails.
POSTED = _event(at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
PIPELINE_PAIRS: dict[tuple[Refusal, Refusal], tuple[UsageEvent | Sourced, UsageEvent | Sourced]] = {
    (Refusal.INVALID_RECORD, Refusal.DUPLICATE_CONFLICT): (
        _epoch_stamped(POSTED),
        POSTED.model_copy(update={"timestamp": NOV}),
    ),
    (Refusal.DUPLICATE_CONFLICT, Refusal.FUTURE_TIMESTAMP): (
        POSTED.model_copy(update={"timestamp": NOV + dt.timedelta(days=1)}),
        POSTED.model_copy(update={"timestamp": NOV + dt.timedelta(days=1), "id": "new"}),
    ),
    # rated when now is September 1 (before the first version), then when it is NOV
    (Refusal.FUTURE_TIMESTAMP, Refusal.NO_VERSION_IN_FORCE): (_event(at=SEPTEMBER), _event(at=SEPTEMBER)),
    (Refusal.NO_VERSION_IN_FORCE, Refusal.UNKNOWN_CUSTOMER): (
        _event(customer="nobody", at=SEPTEMBER),
        _event(customer="nobody"),
    ),
    (Refusal.NOT_SUBSCRIBED, Refusal.UNKNOWN_EVENT_TYPE): (
        _event(customer="late", type="api.cal"),
        _event(type="api.cal"),
    ),
    (Refusal.EXCLUDED_BY_FILTER, Refusal.CLOSED_PERIOD): (
        _event(type="outcome", status="failed", at=OCTOBER),
        _event(type="outcome", status="success", at=OCTOBER),
    ),
    (Refusal.CLOSED_PERIOD, Refusal.MISSING_PROPERTY): (_event(model=None, at=OCTOBER), _event(model=None)),
}

#: Meters that each fail in their own way, for pairs found while pricing: ``grouped`` reads quantity ``q`` and
#: groups by ``g``, ``fees`` takes a percentage of ``amount`` in ``currency``, ``calls`` prices by ``model``.
METERS = {
    "grouped": ("{event: x, sum: q, group_by: [g]}", '{meter: grouped, model: per_unit, unit_price: "0.123456789"}'),
    "fees": ("{event: x, count: true}", '{meter: fees, model: percentage, of: amount, percent: "1"}'),
    "calls": ("{event: x, count: true}", '{meter: calls, model: llm, models: {m: {prices: {input_mtok: "1"}}}}'),
    "served": (
        "{event: x, count: true}",
        "{meter: served, model: llm, models: {"
        '"a/m": {provider: a, match: {starts_with: m}, prices: {input_mtok: "1"}},'
        ' "b/m": {provider: b, match: {starts_with: m}, prices: {input_mtok: "2"}}}}',
    ),
}
VALID = {"q": "1", "g": "a", "amount": "10", "currency": "USD", "model": "m", "provider": "a", "input_tokens": 10}
INEXACT = "1.2345678901234567890123456789012345678901234567890123456789"  # x 0.123456789: over 60 digits
#: Pairs found while pricing: what fails the earlier check on one meter and the later one on another (None:
#: the property is absent; ``customer`` names whose event it is), and what repairs the earlier failure.
PRICING_PAIRS: dict[tuple[Refusal, Refusal], tuple[dict[str, Any], dict[str, Any]]] = {
    (Refusal.MISSING_PROPERTY, Refusal.INVALID_PROPERTY): ({"amount": None, "g": {"o": 1}}, {"amount": "10"}),
    (Refusal.INVALID_PROPERTY, Refusal.INVALID_QUANTITY): ({"g": {"o": 1}, "amount": "1_0"}, {"g": "a"}),
    (Refusal.INVALID_QUANTITY, Refusal.CURRENCY_MISMATCH): ({"q": "-1", "currency": "EUR"}, {"q": "1"}),
    (Refusal.CURRENCY_MISMATCH, Refusal.UNKNOWN_MODEL): ({"currency": "EUR", "model": "nope"}, {"currency": "USD"}),
    (Refusal.UNKNOWN_MODEL, Refusal.AMBIGUOUS_MODEL): ({"model": "mz", "provider": None}, {"model": "m"}),
    (Refusal.AMBIGUOUS_MODEL, Refusal.NOT_EXACT): ({"provider": None, "q": INEXACT}, {"provider": "a"}),
    (Refusal.NOT_EXACT, Refusal.SPEND_CAP_REACHED): ({"customer": "capped", "q": "100" + INEXACT[1:]}, {"q": "100"}),
    (Refusal.SPEND_CAP_REACHED, Refusal.INSUFFICIENT_FUNDS): ({"customer": "walt", "q": "100"}, {"customer": "broke"}),
}


def _pricing_book(order: tuple[str, ...]) -> str:
    """A pricebook of :data:`METERS`, declared (meters and charges) in ``order``."""
    return (
        "pricebook: order\nversion: 2026-10-01\ncurrency: USD\nmeters:\n"
        + "".join(f"  {name}: {METERS[name][0]}\n" for name in order)
        + "plans:\n  basic:\n    charges:\n"
        + "".join(f"      - {METERS[name][1]}\n" for name in order)
        + 'customers:\n  acme: {plan: basic}\n  capped: {plan: basic, spend_cap: "1"}\n'
        + '  walt: {plan: basic, billing: wallet, spend_cap: "1"}\n  broke: {plan: basic, billing: wallet}\n'
    )


def test_every_adjacent_pair_of_the_order_is_tested_or_cannot_happen() -> None:
    tested = [*PIPELINE_PAIRS, *PRICING_PAIRS]
    assert sorted(tested + list(NO_EVENT_FAILS_BOTH)) == sorted(ADJACENT) and len(set(tested)) == len(tested)


@pytest.mark.parametrize("pair", list(PIPELINE_PAIRS), ids=lambda pair: "-before-".join(pair))
def test_an_event_failing_two_checks_before_pricing_is_refused_for_the_first(
    engine: Engine, pair: tuple[Refusal, Refusal]
) -> None:
    engine.rate(POSTED)
    both, repaired = PIPELINE_PAIRS[pair]
    if pair[0] is Refusal.FUTURE_TIMESTAMP:  # now must be before the first version for both to fail
        engine.clock = lambda: dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    assert [r.code for r in engine.rate_batch([both]).rejected] == [pair[0]]
    engine.clock = lambda: NOV
    assert [r.code for r in engine.rate_batch([repaired]).rejected] == [pair[1]]


@pytest.mark.parametrize("order", list(itertools.permutations(METERS)), ids="-".join)
@pytest.mark.parametrize("pair", list(PRICING_PAIRS), ids=lambda pair: "-before-".join(pair))
def test_an_event_failing_two_checks_on_two_meters_is_refused_for_the_first_whatever_their_order(
    book: Callable[[str], Pricebook], registry: Registry, pair: tuple[Refusal, Refusal], order: tuple[str, ...]
) -> None:
    engine = Engine(book(_pricing_book(order)), MemoryStorage(), registry)

    def refusal(given: dict[str, Any]) -> Refusal:
        customer = given.pop("customer", "acme")
        properties = {name: value for name, value in given.items() if value is not None}
        with pytest.raises(EventError) as raised:
            engine.rate(UsageEvent(id="e", customer=customer, type="x", timestamp=NOV, properties=properties))
        return raised.value.code

    both, repair = PRICING_PAIRS[pair]
    assert refusal(VALID | both) is pair[0]
    assert refusal(VALID | both | repair) is pair[1]
    assert engine.rate(UsageEvent(id="valid", customer="acme", type="x", timestamp=NOV, properties=VALID))
