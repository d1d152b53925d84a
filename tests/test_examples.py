"""The example pricebooks reproduce the numbers of the product documents."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rating.billing.close import close_period
from rating.engine import Engine
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import ROOT, event

MARKETPLACE = ROOT / "pricebooks" / "agent-marketplace.yaml"
GATEWAY = ROOT / "pricebooks" / "ai-gateway.yaml"


def at(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, 12, tzinfo=dt.UTC)


def marketplace(registry: Registry) -> Engine:
    return Engine(load_catalog([MARKETPLACE], registry), MemoryStorage(), registry)


def test_pro_overage_of_4280_compute_units_costs_21_40(registry: Registry) -> None:
    engine = marketplace(registry)
    # 142 executions of 100.5 compute units (20 inference calls, 60 s of CPU, 5,000 MB-s), then 9 more units.
    runs = [
        event(f"x{i}", customer="studio-nine", type="agent.execution", at=at(12), agent="agt_abc123",
              inference_calls=20, cpu_ms=60_000, memory_mb_s=5_000)
        for i in range(142)
    ]  # fmt: skip
    runs.append(event("x142", customer="studio-nine", type="agent.execution", at=at(13), agent="agt_abc123",
                      cpu_ms=9_000))  # fmt: skip
    report = engine.rate_batch(runs)
    charges = [c.charge for c in engine.storage.charges("studio-nine")]
    assert sum((c.quantity for c in charges), Decimal(0)) == 10_000 + 4_280
    assert report.totals == {("studio-nine", "USD"): Decimal("21.40")}


def test_pay_per_execution_and_outcomes(registry: Registry) -> None:
    engine = marketplace(registry)
    flat = engine.rate(event("p1", customer="walk-in", type="agent.execution", at=at(2), agent="agt_1"))
    assert flat is not None and [c.amount for c in flat.charges] == [Decimal("0.15")]
    resolved = engine.rate(
        event("o1", customer="helpdesk-inc", type="outcome", at=at(2), outcome_type="ticket.resolved", status="success")
    )
    assert resolved is not None and [c.amount for c in resolved.charges] == [Decimal("0.99")]


def test_the_enterprise_contract_commits_2000_a_month(registry: Registry) -> None:
    engine = marketplace(registry)
    engine.rate(event("m1", customer="megacorp", type="agent.execution", at=at(3), agent="a", inference_calls=50_000))
    rating = engine.quote(event("m2", customer="megacorp", type="agent.execution", at=at(3), agent="a", cpu_ms=1000))
    assert rating.transaction.metadata["priority"] == "high"
    report = close_period(engine, "2026-11", customers=["megacorp"])
    assert [t.id for t in report.posted] == ["fee:megacorp:2026-11:0", "commitment:megacorp:2026-11",
                                             "close:megacorp:2026-11"]  # fmt: skip
    # 100,000 units at 0.004 = 400, plus the 49 fee: 1,551 short of the 2,000 committed.
    assert report.posted[1].postings[0].amount == Decimal("1551.000")


def test_gateway_prices_in_currency_and_in_credits(registry: Registry) -> None:
    engine = Engine(load_catalog([GATEWAY], registry), MemoryStorage(), registry)
    big = engine.rate(event("g1", customer="initech", type="llm.request", at=at(4), provider="openai",
                            model="gpt-5", input_tokens=1000, output_tokens=100))  # fmt: skip
    small = engine.rate(event("g2", customer="initech", type="llm.request", at=at(4), provider="meta",
                              model="llama-4-8b", input_tokens=1000, output_tokens=100))  # fmt: skip
    assert big is not None and small is not None
    assert [(c.amount, c.asset) for c in big.charges + small.charges] == [(10, "CREDITS"), (1, "CREDITS")]
    dollars = engine.rate(event("g3", customer="someone", type="llm.request", at=at(4), provider="openai",
                                model="gpt-5", input_tokens=1000, output_tokens=100))  # fmt: skip
    assert dollars is not None and {c.asset for c in dollars.charges} == {"USD"}
    assert sum(c.amount for c in dollars.charges) == Decimal("0.0002") + Decimal("0.0030000") + Decimal("0.0015000")


def test_the_llm_gateway_sells_provider_prices_with_a_markup_and_charges_card_fees(registry: Registry) -> None:
    engine = Engine(load_catalog([ROOT / "pricebooks" / "llm-gateway.yaml"], registry), MemoryStorage(), registry)
    moment = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    big = event("g1", type="llm.request", at=moment, model="claude-sonnet-4-5-20250929", input_tokens=250_000,
                cache_read_tokens=50_000, output_tokens=1_200)  # fmt: skip
    small = big.model_copy(update={"id": "g2", "properties": big.properties | {"input_tokens": 150_000}})
    fee = event("g6", type="top_up.captured", at=moment, amount="50.00", currency="USD")
    rated = [engine.rate(e) for e in (big, small, fee)]
    assert [r.charges[0].amount for r in rated if r] == [Decimal("1.5084"), Decimal("0.3996"), Decimal("1.750")]
    # The provider's price, as cost: 1.257 + 0.333; the top-up has none.
    costs = [sum(p.amount for p in r.transaction.postings if p.account.startswith("expense:")) for r in rated if r]
    assert costs == [Decimal("1.257"), Decimal("0.333"), 0]
    enterprise = event("g7", customer="megacorp", type="llm.request", at=moment, model="gpt-7-preview",
                       input_tokens=10)  # fmt: skip
    assert [str(r.code) for r in engine.rate_batch([enterprise]).rejected] == ["unknown_model"]
