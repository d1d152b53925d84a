"""Percentage charges with free transactions and a free amount per period (issue 25)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.billing.close import close_period
from rating.engine import Engine
from rating.errors import PricebookError
from rating.events import UsageEvent
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook, parse_pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.helpers import later
from tests.test_arrival_order import assert_same_bill

BOOK = """\
pricebook: take-rate
version: 2026-11-01
currency: USD
meters:
  payments: {{event: payment, count: true}}
plans:
  shop:
    charges:
      - {{meter: payments, model: percentage, of: amount, percent: "1.3", fixed: "2.00"{options}}}
customers:
  acme: {{plan: shop}}
"""


def payments(*amounts: str, customer: str = "acme") -> list[UsageEvent]:
    """Payments of ``amounts``, one a day from 2 November, in that order."""
    return [
        UsageEvent(
            id=f"{customer}-{day}",
            customer=customer,
            type="payment",
            timestamp=dt.datetime(2026, 11, 2 + day, 12, tzinfo=dt.UTC),
            properties={"amount": amount, "currency": "USD"},
        )
        for day, amount in enumerate(amounts)
    ]


def fees(engine: Engine, events: list[UsageEvent]) -> list[D]:
    report = engine.rate_batch(events, chunk_size=1)
    assert report.rejected == []
    by_event = {stored.event_id: stored.charge.amount for stored in engine.storage.charges("acme")}
    return [by_event[e.id] for e in events]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # The worked example of docs/llm.md: 3 free transactions and 250 free; the third crosses 250 by 150.
        (", free_events: 3, free_amount: 250", ["0", "0", "3.95", "7.20"]),
        # With 500 free the count runs out first: the fourth pays on all of it, 100 of the amount unused.
        (", free_events: 3, free_amount: 500", ["0", "0", "0", "7.20"]),
        (", free_events: 2", ["0", "0", "5.25", "7.20"]),
        # Only an amount: 50 + 100 + 100 of the third are free, 150 of it pays; the fourth pays on all.
        (", free_amount: 250", ["0", "0", "3.95", "7.20"]),
        ("", ["2.65", "3.30", "5.25", "7.20"]),
    ],
)
def test_free_transactions_and_a_free_amount(
    options: str, expected: list[str], book: Callable[[str], Pricebook], storage: Storage
) -> None:
    engine = Engine(book(BOOK.format(options=options)), storage)
    assert fees(engine, payments("50", "100", "250", "400")) == [D(x) for x in expected]


def test_the_minimum_and_maximum_apply_to_what_the_event_pays_after_the_allowance(
    book: Callable[[str], Pricebook],
) -> None:
    options = ', free_amount: 100, minimum: "2.50", maximum: "4"'
    engine = Engine(book(BOOK.format(options=options)), MemoryStorage())
    # 90 free; 20 crosses by 10 (0.13 + 2.00 = 2.13, raised to 2.50); 500 pays 8.50, lowered to 4.
    assert fees(engine, payments("90", "20", "500")) == [D("0"), D("2.50"), D("4")]


def test_an_amount_of_zero_pays_nothing_and_uses_no_free_transaction(book: Callable[[str], Pricebook]) -> None:
    for options in ("", ", free_events: 1"):
        engine = Engine(book(BOOK.format(options=options + ', minimum: "1"')), MemoryStorage())
        paid = fees(engine, payments("0", "100", "100"))
        assert paid == ([D("0"), D("3.30"), D("3.30")] if not options else [D("0"), D("0"), D("3.30")])


def test_each_event_explains_its_allowance_in_one_line(book: Callable[[str], Pricebook]) -> None:
    engine = Engine(book(BOOK.format(options=", free_events: 3, free_amount: 250")), MemoryStorage())
    engine.rate_batch(payments("50", "100", "250", "400"))
    texts = [stored.charge.explanation for stored in engine.storage.charges("acme")]
    assert texts == [
        "free: 1 of 3 free transactions, 50 of the free 250 USD used",
        "free: 2 of 3 free transactions, 150 of the free 250 USD used",
        "1.3% of 150 USD of 250 above the free 250 USD (3 of 3 free transactions) + 2.00 USD = 3.95 USD",
        "1.3% of 400 USD + 2.00 USD = 7.20 USD",
    ]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (", free_events: -1", "greater than or equal to 0"),
        (", free_events: 2.5", "must be a whole number"),
        (', free_events: "3"', "must be a whole number"),
        (", free_amount: -5", "greater than or equal to 0"),
    ],
)
def test_check_refuses_a_negative_or_fractional_allowance(options: str, problem: str, registry: Registry) -> None:
    with pytest.raises(PricebookError, match=problem):
        parse_pricebook(BOOK.format(options=options), registry, "book.yaml")


@settings(max_examples=60)
@given(
    st.lists(st.sampled_from(["0", "20", "50", "100", "250", "400"]), min_size=1, max_size=9).flatmap(
        lambda amounts: st.tuples(st.just(amounts), st.permutations(range(len(amounts))))
    ),
    st.integers(1, 4),
    st.sampled_from([", free_events: 3", ", free_amount: 250", ", free_events: 2, free_amount: 300"]),
)
def test_allowances_bill_the_same_in_any_arrival_order_and_batch_split(
    amounts_and_arrival: tuple[list[str], list[int]], chunk: int, options: str
) -> None:
    amounts, arrival = amounts_and_arrival
    registry = Registry.load()
    catalog = Catalog([parse_pricebook(BOOK.format(options=options), registry, "book.yaml")])
    events = payments(*amounts)

    def billed(batches: list[list[UsageEvent]]) -> Storage:
        storage = MemoryStorage()
        engine = Engine(catalog, storage, registry, clock=later)
        for batch in batches:
            engine.rate_batch(batch)
        close_period(engine, "2026-11")
        return storage

    shuffled = [events[i] for i in arrival]
    in_order, any_order = billed([events]), billed([shuffled[i : i + chunk] for i in range(0, len(events), chunk)])
    assert_same_bill(any_order, in_order)
