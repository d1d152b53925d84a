"""Every event refusal has one stable code, reachable by a real event, carried by errors and batch rejections."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal

import pytest

from rating.closing import close_period
from rating.engine import Engine
from rating.errors import EventError
from rating.events import Sourced, UsageEvent
from rating.pricebook import Pricebook
from rating.refusals import CHECK_ORDER, Refusal
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


def test_the_readme_lists_every_refusal_in_the_order_they_are_checked() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Refusal codes", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert listed == [str(code) for code in CHECK_ORDER]
