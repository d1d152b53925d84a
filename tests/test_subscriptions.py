"""Subscriptions: plans over time, customer time zones, proration of fees."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from rating.core.subscriptions import Span, plan_at, prorated, spans_within
from rating.engine import Engine
from rating.errors import EventError, PricebookError
from rating.periods import UTC, bounds_of, zone
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import event, later

Book = Callable[[str], Pricebook]

SUBSCRIPTIONS = """\
pricebook: subs
version: 2020-01-01
currency: USD
timezone: Europe/Paris
meters:
  calls: {event: api.call, count: true}
plans:
  starter:
    fee: "30"
    charges:
      - {meter: calls, model: per_call, price: "0.10", included: 2}
  pro:
    fee: "90"
    minimum: "100"
    charges:
      - {meter: calls, model: per_call, price: "0.05", included: 5}
customers:
  acme:
    plan: starter
    since: 2026-11-11
    changes: [{plan: pro, on: 2026-11-21}]
    until: 2027-01-01
  tokyo: {plan: starter, timezone: Asia/Tokyo}
"""


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_the_plan_follows_the_subscription_dates(book: Book) -> None:
    subs = book(SUBSCRIPTIONS)
    assert plan_at(subs, "acme", utc(2026, 11, 15)) == "starter"
    assert plan_at(subs, "acme", utc(2026, 11, 20, 23)) == "pro"  # midnight of the 21st in Paris
    with pytest.raises(EventError, match="customer 'acme' is not subscribed yet"):
        plan_at(subs, "acme", utc(2026, 11, 1))
    with pytest.raises(EventError, match="subscription of customer 'acme' ended"):
        plan_at(subs, "acme", utc(2027, 1, 5))
    with pytest.raises(EventError, match="unknown customer 'nobody'"):
        plan_at(subs, "nobody", utc(2026, 11, 15))


def test_spans_of_a_period(book: Book) -> None:
    subs = book(SUBSCRIPTIONS)
    _, start, end = bounds_of("2026-11", zone("Europe/Paris"))
    parts = spans_within(subs, "acme", start, end)
    assert [(p.plan, p.start, p.end) for p in parts] == [
        ("starter", utc(2026, 11, 10, 23), utc(2026, 11, 20, 23)),
        ("pro", utc(2026, 11, 20, 23), utc(2026, 11, 30, 23)),
    ]


@pytest.mark.parametrize(
    "period, since, zone_name, expected",
    [
        ("2026-11", dt.date(2026, 11, 11), "UTC", Decimal("20.00")),  # 20 of 30 days of 30.00
        ("2028-02", dt.date(2028, 2, 15), "UTC", Decimal("15.52")),  # leap year: 15 of 29 days
        ("2026-01", dt.date(2026, 1, 31), "UTC", Decimal("0.97")),  # last day of a 31-day month
        ("2026-10", dt.date(2026, 10, 25), "Europe/Paris", Decimal("6.81")),  # 169 of 745 hours (DST ends)
        ("2026-03", dt.date(2026, 3, 29), "Europe/Paris", Decimal("2.87")),  # 71 of 743 hours (DST starts)
    ],
)
def test_fees_are_prorated_by_time(period: str, since: dt.date, zone_name: str, expected: Decimal) -> None:
    timezone = zone(zone_name)
    _, start, end = bounds_of(period, timezone)
    since_at = dt.datetime(since.year, since.month, since.day, tzinfo=timezone).astimezone(UTC)
    assert prorated(Decimal(30), Span("p", since_at, end), start, end, 2) == expected
    assert prorated(Decimal(30), Span("p", start, end), start, end, 2) == Decimal(30)


def test_usage_continues_into_the_new_plan_after_a_change(book: Book, registry: Registry) -> None:
    """Documented policy: the period's usage so far counts against the new plan's allowance."""
    engine = Engine(book(SUBSCRIPTIONS), MemoryStorage(), registry)
    charged = []
    for i, day in enumerate([12, 13, 14, 22, 23, 24]):
        rating = engine.rate(event(f"e{i}", type="api.call", at=utc(2026, 11, day, 12)))
        assert rating is not None
        charged.append((rating.plan, rating.charges[0].amount))
    assert charged == [
        ("starter", Decimal(0)), ("starter", Decimal(0)), ("starter", Decimal("0.10")),
        ("pro", Decimal(0)), ("pro", Decimal(0)), ("pro", Decimal("0.05")),
    ]  # fmt: skip


def test_periods_follow_the_customer_time_zone(book: Book, registry: Registry) -> None:
    engine = Engine(book(SUBSCRIPTIONS), MemoryStorage(), registry)
    rating = engine.rate(event("t1", customer="tokyo", type="api.call", at=utc(2026, 11, 30, 16)))
    assert rating is not None and rating.charges[0].period == "2026-12"


@pytest.mark.parametrize(
    "change, problem",
    [
        ("changes: [{plan: pro, on: 2026-11-01}]", "strictly increasing order"),
        ("changes: [{plan: gold, on: 2026-11-21}]", "unknown plan 'gold'"),
        ("changes: [{plan: pro, on: 2026-11-21}]\n    timezone: Mars/Base", "unknown time zone 'Mars/Base'"),
    ],
)
def test_subscription_mistakes_are_located(book: Book, change: str, problem: str) -> None:
    with pytest.raises(PricebookError, match=problem):
        book(SUBSCRIPTIONS.replace("changes: [{plan: pro, on: 2026-11-21}]", change))


def test_plan_changes_keep_one_period_kind(book: Book) -> None:
    text = SUBSCRIPTIONS.replace('  pro:\n    fee: "90"', '  pro:\n    period: year\n    fee: "90"')
    with pytest.raises(PricebookError, match="plan changes must keep one period kind"):
        book(text)


def test_anniversary_periods_follow_the_subscription_start(book: Book, registry: Registry) -> None:
    text = SUBSCRIPTIONS.replace(
        "  tokyo: {plan: starter, timezone: Asia/Tokyo}",
        "  tokyo: {plan: starter, timezone: Asia/Tokyo}\n  anna: {plan: starter, since: 2026-11-10, anniversary: true}",
    )
    engine = Engine(book(text), MemoryStorage(), registry, clock=later)
    rating = engine.rate(event("a1", customer="anna", type="api.call", at=utc(2026, 12, 5, 12)))
    assert rating is not None and rating.charges[0].period == "2026-11"  # 10 November to 10 December
    from rating.billing.close import close_period

    report = close_period(engine, "2026-11", customers=["anna"])
    assert [t.postings[0].amount for t in report.posted if t.postings] == [Decimal(30)]  # a whole period, unprorated
    assert report.posted[0].timestamp == utc(2026, 11, 9, 23)


def test_anniversary_needs_a_start(book: Book) -> None:
    with pytest.raises(PricebookError, match="anniversary periods need since"):
        book(
            SUBSCRIPTIONS.replace(
                "tokyo: {plan: starter, timezone: Asia/Tokyo}", "tokyo: {plan: starter, anniversary: true}"
            )
        )
