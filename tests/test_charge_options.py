"""Options every charge has: allowance, cap, per-group prices, asset; weighted meters; outcomes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from rating.engine import Engine
from rating.errors import PricebookError
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import balances_under, event

Book = Callable[[str], Pricebook]

BASE = """\
pricebook: options
version: 2026-11-01
currency: USD
assets:
  CREDITS: {scale: 4, sells_for: {USD: "0.01"}}
meters:
  requests: {event: llm.request, count: true, group_by: [model]}
  compute_units:
    event: agent.execution
    sum: {cpu_ms: "0.001", memory_mb_s: "0.0002", network_bytes: "0.000001", inference_calls: "1"}
  outcomes: {event: outcome, count: true, where: {status: [success]}, group_by: [outcome_type]}
plans:
  p:
    charges:
CHARGES
default_plan: p
"""


def engine_with(book: Book, registry: Registry, charges: str) -> Engine:
    return Engine(book(BASE.replace("CHARGES\n", charges)), MemoryStorage(), registry)


def amounts(engine: Engine, events: list) -> list[Decimal]:  # type: ignore[type-arg]
    result = []
    for item in events:
        rating = engine.rate(item)
        assert rating is not None
        result.extend(c.amount for c in rating.charges)
    return result


def call(id: str, model: str) -> object:
    return event(id, type="llm.request", model=model)


def test_credit_rates_by_model_are_posted_in_credits(book: Book, registry: Registry) -> None:
    engine = engine_with(
        book,
        registry,
        "      - meter: requests\n        model: per_call\n        price: 1\n        asset: CREDITS\n"
        "        by_group: {gpt-5: {price: 10}}\n",
    )
    assert amounts(engine, [call("a", "gpt-5"), call("b", "small"), call("c", "gpt-5")]) == [10, 1, 10]
    assert balances_under(engine.storage, "customer:") == {("customer:acme:receivable", "CREDITS"): Decimal(21)}
    assert engine.pricebook.scale_of("CREDITS") == 4
    rating = engine.quote(call("d", "gpt-5"))
    assert rating.charges[0].explanation == "1 requests x 10 CREDITS = 10 CREDITS"


def test_allowance_then_overage(book: Book, registry: Registry) -> None:
    engine = engine_with(book, registry, "      - {meter: requests, model: per_call, price: '0.5', included: 2}\n")
    charged = amounts(engine, [call(f"e{i}", "m") for i in range(4)])
    assert charged == [0, 0, Decimal("0.5"), Decimal("0.5")]
    quoted = engine.quote(call("e9", "m")).charges[0]
    assert quoted.explanation == "1 requests x 0.5 USD = 0.5 USD" and quoted.unit_price == Decimal("0.5")
    first = Engine(engine.catalog, MemoryStorage(), registry).quote(call("x", "m")).charges[0]
    assert first.explanation == "1 requests within the 2 included; charge 0.0 USD" and first.unit_price is None


def test_cap_limits_the_period_total_across_groups(book: Book, registry: Registry) -> None:
    engine = engine_with(book, registry, "      - {meter: requests, model: per_call, price: '0.4', cap: 1}\n")
    assert amounts(engine, [call("a", "x"), call("b", "y"), call("c", "x"), call("d", "z")]) == [
        Decimal("0.4"), Decimal("0.4"), Decimal("0.2"), Decimal("0.0")
    ]  # fmt: skip
    third = engine.quote(call("e", "x")).charges[0]
    assert third.explanation == "1 requests x 0.4 USD = 0.4 USD; with the 1 USD period cap: 0 USD"
    december = engine.rate(call("f", "x").model_copy(update={"timestamp": dt.datetime(2026, 12, 2, tzinfo=dt.UTC)}))
    assert december is not None and december.charges[0].amount == Decimal("0.4")


def test_compute_units_weigh_several_properties(book: Book, registry: Registry) -> None:
    engine = engine_with(book, registry, "      - {meter: compute_units, model: per_unit, unit_price: '0.005'}\n")
    execution = event("x1", type="agent.execution", cpu_ms=12_000, memory_mb_s=5_000, inference_calls=3)
    rating = engine.rate(execution)
    assert rating is not None
    assert rating.usage[0].reading == Decimal("12.000") + Decimal("1.0000") + 3
    assert rating.charges[0].amount == Decimal("16.0000") * Decimal("0.005")


def test_marketplace_document_numbers(book: Book, registry: Registry) -> None:
    """4,280 compute units at the per-unit overage price cost 21.40 USD."""
    engine = engine_with(book, registry, "      - {meter: compute_units, model: per_unit, unit_price: '0.005'}\n")
    executions = [event(f"x{i}", type="agent.execution", inference_calls=30) for i in range(142)]
    executions.append(event("x142", type="agent.execution", inference_calls=20))
    report = engine.rate_batch(executions)
    assert report.totals == {("acme", "USD"): Decimal("21.400")}


def test_outcomes_charge_per_success_by_type_with_a_cap(book: Book, registry: Registry) -> None:
    engine = engine_with(
        book,
        registry,
        "      - meter: outcomes\n        model: outcome\n"
        "        prices: {ticket.resolved: '0.99', lead.qualified: '2.50'}\n        cap: 5\n",
    )

    def outcome(id: str, kind: str, status: str = "success") -> object:
        return event(id, type="outcome", outcome_type=kind, status=status)

    with pytest.raises(Exception, match="every meter's where filter excludes it"):
        engine.rate(outcome("f", "ticket.resolved", status="failed"))
    charged = amounts(
        engine,
        [outcome("a", "ticket.resolved"), outcome("b", "lead.qualified"), outcome("c", "spam"),
         outcome("d", "lead.qualified")],
    )  # fmt: skip
    assert charged == [Decimal("0.99"), Decimal("2.50"), Decimal(0), Decimal("1.51")]


def test_outcome_prices_honour_by_group(book: Book, registry: Registry) -> None:
    engine = engine_with(
        book,
        registry,
        "      - meter: outcomes\n        model: outcome\n"
        "        prices: {ticket.resolved: '0.99'}\n"
        "        by_group: {ticket.resolved: {prices: {ticket.resolved: '0.50'}}, spam: {otherwise: '0.01'}}\n",
    )
    charged = amounts(
        engine,
        [event("a", type="outcome", outcome_type="ticket.resolved", status="success"),
         event("b", type="outcome", outcome_type="spam", status="success")],
    )  # fmt: skip
    assert charged == [Decimal("0.50"), Decimal("0.01")]


@pytest.mark.parametrize(
    "charges, problem",
    [
        (
            "      - meter: requests\n        model: per_call\n        price: 1\n"
            "        by_group: {gpt-5: {price: x}}\n",
            "test.yaml:18:28: plans.p.charges[0].by_group.gpt-5.price: value must be a decimal number, got 'x'",
        ),
        (
            "      - {meter: requests, model: per_call, price: 1, asset: GOLD}\n",
            "test.yaml:15:54: plans.p.charges[0].asset: unknown asset 'GOLD'",
        ),
        (
            "      - {meter: compute_units, model: outcome, prices: {a: 1}}\n",
            "outcome prices a count meter grouped by exactly one property, the outcome type",
        ),
        (
            "      - {meter: requests, model: per_call, price: 1, by_group: {x: {meter: compute_units}}}\n",
            "by_group.x may only override the model's own parameters, not ['meter']",
        ),
    ],
)
def test_option_errors_are_located(book: Book, charges: str, problem: str) -> None:
    with pytest.raises(PricebookError) as error:
        book(BASE.replace("CHARGES\n", charges))
    assert any(problem in p for p in error.value.problems), error.value.problems


def test_an_empty_weighted_sum_is_an_error(book: Book) -> None:
    text = BASE.replace("CHARGES\n", "      - {meter: requests, model: per_call, price: 1}\n")
    with pytest.raises(PricebookError, match="weighted sum needs at least one property"):
        book(
            text.replace(
                'sum: {cpu_ms: "0.001", memory_mb_s: "0.0002", network_bytes: "0.000001", inference_calls: "1"}',
                "sum: {}",
            )
        )


def test_custom_assets_belong_to_their_pricebook(book: Book) -> None:
    text = BASE.replace("CHARGES\n", "      - {meter: requests, model: per_call, price: 1}\n")
    four, two = book(text), book(text.replace("scale: 4", "scale: 2"))  # one process, two scales of CREDITS
    assert (four.scale_of("CREDITS"), two.scale_of("CREDITS"), four.scale_of("USD")) == (4, 2, 2)


@pytest.mark.parametrize("rollover, first_charged", [(False, 6), (True, 9)])
def test_unused_allowance_rolls_over_only_when_the_pricebook_says_so(
    book: Book, registry: Registry, rollover: bool, first_charged: int
) -> None:
    option = ", rollover: true" if rollover else ""
    charges = f"      - {{meter: requests, model: per_call, price: '1', included: 5{option}}}\n"
    engine = engine_with(book, registry, charges)
    november = [call(f"n{i}", "m").model_copy(update={"timestamp": dt.datetime(2026, 11, 3, tzinfo=dt.UTC)})
                for i in range(2)]  # fmt: skip
    december = [call(f"d{i}", "m").model_copy(update={"timestamp": dt.datetime(2026, 12, 3, tzinfo=dt.UTC)})
                for i in range(10)]  # fmt: skip
    assert amounts(engine, november) == [0, 0]
    charged = amounts(engine, december)
    assert charged.index(Decimal(1)) + 1 == first_charged  # 5 included, plus the 3 November left unused
    assert sum(charged) == 10 - (first_charged - 1)
    if rollover:
        explanation = engine.quote(call("q", "m").model_copy(update={"timestamp": december[0].timestamp}))
        assert explanation.charges[0].explanation == "1 requests x 1 USD = 1 USD"


IDENTITY_BOOK = """\
pricebook: ids
version: {version}
currency: USD
meters:
  tokens: {{event: api.call, sum: tokens}}
  calls: {{event: api.call, count: true}}
plans:
  p:
    charges:
{charges}
default_plan: p
"""
CAPPED = '      - {meter: tokens, model: per_unit, unit_price: "1", cap: "5"}'
PER_CALL = '      - {meter: calls, model: per_call, price: "0.01", cap: "1"}'


def test_reordering_charges_in_a_later_version_keeps_each_running_total(book: Book, registry: Registry) -> None:
    first = book(IDENTITY_BOOK.format(version="2026-11-01", charges=f"{CAPPED}\n{PER_CALL}"))
    reordered = book(IDENTITY_BOOK.format(version="2026-11-15", charges=f"{PER_CALL}\n{CAPPED}"))
    engine = Engine(Catalog([first, reordered]), MemoryStorage(), registry)
    early = engine.rate(event("e1", at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC), tokens=6))
    assert early is not None and early.total() == {"USD": Decimal("5.01")}  # the cap of 5 reached
    late = engine.rate(event("e2", at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC), tokens=3))
    assert late is not None and late.total() == {"USD": Decimal("0.01")}  # still capped after the reorder


def test_two_charges_that_would_share_an_identity_are_refused_unless_given_ids(book: Book) -> None:
    twice = f"{CAPPED}\n{CAPPED.replace('5', '7')}"
    with pytest.raises(PricebookError, match=r"charges\[1\]: charge 'tokens.per_unit.USD' is the same charge as \[0\]"):
        book(IDENTITY_BOOK.format(version="2026-11-01", charges=twice))
    named = twice.replace("{meter: tokens", "{id: a, meter: tokens", 1)
    assert book(IDENTITY_BOOK.format(version="2026-11-01", charges=named)).plans["p"].charges[0].id == "a"
