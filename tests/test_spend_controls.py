"""Hard spend caps refuse, soft caps and low wallets notify plugins."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rating.engine import Engine
from rating.hookspecs import hookimpl
from rating.pricebook.model import Pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage import Storage
from rating.wallet.wallets import Wallets
from tests.helpers import event

BOOK = """\
pricebook: caps
version: 2026-11-01
currency: USD
meters:
  runs: {event: agent.execution, count: true}
plans:
  p:
    charges:
      - {meter: runs, model: per_call, price: "1.00"}
customers:
  capped: {plan: p, spend_cap: "2.50", spend_alert: "1.50"}
  prepaid: {plan: p, billing: wallet, top_up: {below: "2", amount: "20"}}
default_plan: p
"""


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def rating_spend_alert(self, customer: str, period: str, spent: Decimal, threshold: Decimal, asset: str) -> None:
        self.calls.append(
            ("alert", {"customer": customer, "period": period, "spent": spent, "threshold": threshold, "asset": asset})
        )

    @hookimpl
    def rating_top_up_needed(self, customer: str, asset: str, available: Decimal, amount: Decimal) -> None:
        self.calls.append(("top_up", {"customer": customer, "asset": asset, "available": available, "amount": amount}))


def runs(customer: str, count: int) -> list[object]:
    return [event(f"{customer}-{i}", customer=customer, type="agent.execution") for i in range(count)]


def test_a_hard_cap_refuses_and_a_soft_cap_alerts_once(book: Callable[[str], Pricebook], storage: Storage) -> None:
    listener = Listener()
    engine = Engine(book(BOOK), storage, Registry.load([listener]))
    report = engine.rate_batch(runs("capped", 4), chunk_size=1)
    assert report.posted == 2
    assert [r.reason for r in report.rejected] == [
        "spend cap reached: customer 'capped' has spent 2.00 of 2.50 USD in 2026-11; this event costs 1.00"
    ] * 2
    assert listener.calls == [
        (
            "alert",
            {
                "customer": "capped",
                "period": "2026-11",
                "spent": Decimal("2.00"),
                "threshold": Decimal("1.50"),
                "asset": "USD",
            },
        )
    ]


def test_a_low_wallet_asks_for_a_top_up_once(book: Callable[[str], Pricebook], storage: Storage) -> None:
    listener = Listener()
    Wallets(storage).deposit("prepaid", "USD", Decimal(4), "pay-1")
    engine = Engine(book(BOOK), storage, Registry.load([listener]))
    engine.rate_batch(runs("prepaid", 3), chunk_size=1)
    assert listener.calls == [
        ("top_up", {"customer": "prepaid", "asset": "USD", "available": Decimal("1.00"), "amount": Decimal(20)})
    ]


def test_a_cap_counts_the_asset_the_plan_bills_in_credits_included(
    book: Callable[[str], Pricebook], storage: Storage
) -> None:
    credits = BOOK.replace(
        '      - {meter: runs, model: per_call, price: "1.00"}',
        '      - {meter: runs, model: per_call, price: "10", asset: CREDITS}',
    ).replace('spend_cap: "2.50", spend_alert: "1.50"', 'spend_cap: "25", spend_alert: "15"')
    listener = Listener()
    engine = Engine(book(credits + "assets:\n  CREDITS: {scale: 0}\n"), storage, Registry.load([listener]))
    report = engine.rate_batch(runs("capped", 4), chunk_size=1)
    assert report.posted == 2
    assert [r.code for r in report.rejected] == [Refusal.SPEND_CAP_REACHED] * 2
    assert "of 25 CREDITS" in report.rejected[0].reason
    assert [(name, call["spent"], call["asset"]) for name, call in listener.calls] == [
        ("alert", Decimal(20), "CREDITS")
    ]


SPEND_METER = """\
pricebook: clash
version: 2026-11-01
currency: USD
meters:
  spend: {event: api.call, sum: units}
  prepaid: {event: api.call, count: true}
plans:
  p:
    charges:
      - meter: spend
        model: tiered
        mode: graduated
        tiers:
          - {up_to: 25, unit_price: "3"}
          - {unit_price: "10"}
      - {meter: prepaid, model: per_call, price: "0"}
customers:
  acme: {plan: p, spend_cap: "1000", spend_alert: "900"}
"""


def test_a_meter_named_like_a_policy_keeps_state_of_its_own(book: Callable[[str], Pricebook], storage: Storage) -> None:
    """Meters, running totals and policies keep period state in namespaces no pricebook name reaches: a meter
    named ``spend`` once read the spend cap's state (``before=40`` for the second of two 10-unit events)."""
    engine = Engine(book(SPEND_METER), storage)
    report = engine.rate_batch([event("s1", units=10), event("s2", units=10)])
    assert report.rejected == [] and report.posted == 2
    assert report.totals[("acme", "USD")] == Decimal("60")
    second = storage.charges("acme")
    readings = {(c.event_id, c.charge.meter): (c.charge.before, c.charge.after) for c in second}
    assert readings[("s2", "spend")] == (Decimal("10"), Decimal("20"))
    spent = storage.period_states([("acme", "policy:spend", (), "2026-11")])
    assert spent[("acme", "policy:spend", (), "2026-11")].quantity == Decimal("60")
