"""Enterprise contracts: own prices and discounts, committed spend trued up at close, terms on every rating."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.billing.close import close_period
from rating.core.charges import explanation_of
from rating.engine import Engine
from rating.errors import PricebookError
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.helpers import balances_under, event
from tests.test_subscriptions import utc

Book = Callable[[str], Pricebook]

CONTRACTS = """\
pricebook: enterprise
version: 2026-01-01
currency: USD
meters:
  tokens: {event: llm.request, sum: tokens}
plans:
  standard:
    charges:
      - {meter: tokens, model: per_unit, unit_price: "0.001"}
customers:
  bigco: {plan: standard}
default_plan: standard
contracts:
  bigco-2026:
    customer: bigco
    from: 2026-11-16
    until: 2027-11-16
    charges:
      - meter: tokens
        model: per_unit
        unit_price: "0.0008"
        discounts: [{above: "100", percent: "10"}]
    commitment: "300"
    sla: "99.95%"
    priority: high
    metadata: {account_manager: dana}
"""


def use(engine: Engine, id: str, day: int, tokens: int, customer: str = "bigco") -> list[Decimal]:
    rating = engine.rate(event(id, customer=customer, type="llm.request", at=utc(2026, 11, day, 12), tokens=tokens))
    assert rating is not None
    return [c.amount for c in rating.charges]


def test_contract_prices_apply_only_while_it_is_in_force(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(CONTRACTS), storage, registry)
    assert use(engine, "before", 10, 1000) == [Decimal("1.000")]
    assert use(engine, "during", 20, 100_000) == [Decimal("80.0000")]
    assert use(engine, "other", 20, 1000, customer="smallco") == [Decimal("1.000")]


def test_volume_discount_above_a_threshold_of_the_period_total(book: Book, registry: Registry, storage: Storage):  # type: ignore[no-untyped-def]
    engine = Engine(book(CONTRACTS), storage, registry)
    assert use(engine, "a", 20, 100_000) == [Decimal("80.0000")]  # the period total, 80, is below 100
    assert use(engine, "b", 21, 100_000) == [Decimal("74.000000")]  # 20 up to 100, then 60 at 10% off
    explanation = next(explanation_of(c.charge, engine.catalog) for c in storage.charges() if c.event_id == "b")
    assert explanation == ("100,000 tokens x 0.0008 USD = 80.0000 USD; with 10% off above 100: 74.000000 USD")


def test_terms_are_recorded_on_every_rating(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(CONTRACTS), storage, registry)
    use(engine, "during", 20, 10)
    metadata = storage.transaction("rating:during").metadata  # type: ignore[union-attr]
    assert {k: metadata[k] for k in ("contract", "sla", "priority", "account_manager")} == {
        "contract": "bigco-2026",
        "sla": "99.95%",
        "priority": "high",
        "account_manager": "dana",
    }


def test_commitment_shortfall_is_trued_up_at_close(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(CONTRACTS), storage, registry)
    use(engine, "before", 10, 1000)  # 1.000 at list price
    use(engine, "during", 20, 100_000)  # 80.0000 under the contract
    report = close_period(engine, "2026-11", customers=["bigco"])
    assert [t.id for t in report.posted] == ["commitment:bigco:2026-11", "close:bigco:2026-11"]
    true_up = report.posted[0]
    assert true_up.metadata["commitment"] == "150.00"  # 300 for the 15 days of 30 the contract covers
    assert true_up.postings[0].amount == Decimal("150.00") - Decimal("81.0000")
    assert balances_under(storage, "revenue:contract:") == {("revenue:contract:bigco-2026", "USD"): Decimal("-69.0000")}
    assert close_period(engine, "2026-11", customers=["bigco"]).posted == []


@pytest.mark.parametrize(
    "change, problem",
    [
        ("until: 2027-11-16", "until: 2026-11-01"),
        ("    priority: high\n", "    priority: high\n  again:\n    customer: bigco\n    from: 2027-01-01\n"),
        ("      - meter: tokens\n        model: per_unit", "      - meter: tokenz\n        model: per_unit"),
    ],
)
def test_contract_mistakes_are_located(book: Book, change: str, problem: str) -> None:
    with pytest.raises(PricebookError) as error:
        book(CONTRACTS.replace(change, problem))
    text = " ".join(error.value.problems)
    assert any(
        needle in text for needle in ("until must come after from", "overlaps contract", "unknown meter 'tokenz'")
    ), text


def test_a_prepaid_commitment_is_drawn_down_before_anything_is_owed(
    book: Book, registry: Registry, storage: Storage
) -> None:
    text = CONTRACTS.replace('    commitment: "300"\n', '    prepaid: "100"\n').replace(
        '        discounts: [{above: "100", percent: "10"}]\n', ""
    )
    engine = Engine(book(text), storage, registry)
    use(engine, "a", 20, 75_000)  # 60.0000: all from the prepaid commitment
    use(engine, "b", 21, 75_000)  # 60.0000: 40 from what is left of it, 20 owed
    postings = {p.account: p.amount for p in storage.transaction("rating:b").postings}  # type: ignore[union-attr]
    assert postings == {
        "customer:bigco:prepaid": Decimal("40.0000"),
        "customer:bigco:receivable": Decimal("20.0000"),
        "revenue:standard:tokens": Decimal("-60.0000"),
    }
    report = close_period(engine, "2026-11", customers=["bigco"])
    assert [t.id for t in report.posted] == ["prepayment:bigco-2026", "close:bigco:2026-11"]
    balances = balances_under(storage, "customer:bigco:")
    assert balances[("customer:bigco:prepaid", "USD")] == 0  # used up
    assert balances[("customer:bigco:receivable", "USD")] == Decimal(120)  # 100 prepaid + 20 beyond it


@settings(max_examples=60)
@given(tokens=st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=12), data=st.data())
def test_prepaid_drawdown_is_exact_in_any_order(
    tokens: list[int], data: st.DataObject, book: Book, registry: Registry
) -> None:
    engine = Engine(
        book(CONTRACTS.replace('    commitment: "300"\n', '    prepaid: "100"\n')), MemoryStorage(), registry
    )
    order = data.draw(st.permutations(range(len(tokens))))
    engine.rate_batch(
        [event(f"e{i}", customer="bigco", type="llm.request", at=utc(2026, 11, 20), tokens=tokens[i]) for i in order]
    )
    balances = balances_under(engine.storage, "customer:bigco:")
    spent = (
        -balances_under(engine.storage, "revenue:")[("revenue:standard:tokens", "USD")] if any(tokens) else Decimal(0)
    )
    drawn = balances.get(("customer:bigco:prepaid", "USD"), Decimal(0))
    assert drawn == min(Decimal(100), spent)
    assert balances.get(("customer:bigco:receivable", "USD"), Decimal(0)) == spent - drawn
