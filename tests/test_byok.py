"""BYOK: the buyer's own provider key. Metered and reported like any event, never billed for model cost."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from rating.engine import Engine
from rating.events import UsageEvent
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.statekeys import meter_of
from rating.storage import Storage
from tests.helpers import NOV, balances_under

Book = Callable[[str], Pricebook]

GATEWAY = """\
pricebook: byok
version: 2026-11-01
currency: USD
meters:
  requests: {event: llm.request, count: true}
  tokens: {event: llm.request, sum: tokens, group_by: [model]}
plans:
  p:
    charges:
      - meter: tokens
        model: tiered
        mode: graduated
        tiers: [{up_to: 1000, unit_price: "0.002"}, {unit_price: "0.001"}]
      - {meter: requests, model: per_call, price: "0.0001", billing_sources: [byok]}  # routing fee on BYOK only
default_plan: p
"""


def request(id: str, tokens: int, source: str = "platform") -> UsageEvent:
    return UsageEvent(
        id=id, customer="acme", type="llm.request", timestamp=NOV, billing_source=source,  # type: ignore[arg-type]
        properties={"tokens": tokens, "model": "m", "provider": "openai"},
        attribution={"agent": "agt_1", "session": "s1"},  # type: ignore[arg-type]
    )  # fmt: skip


def test_byok_usage_is_metered_but_pays_only_the_fee_the_pricebook_names(
    book: Book, registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(GATEWAY), storage, registry)
    byok = engine.rate(request("b1", 5000, source="byok"))
    assert byok is not None
    metered = [(u.meter, u.after) for u in byok.usage if meter_of(u.meter) is not None]
    assert metered == [("requests:byok", 1), ("tokens:byok", 5000)]
    assert [(c.meter, c.amount) for c in byok.charges] == [("requests", Decimal("0.0001"))]
    assert balances_under(storage, "customer:") == {("customer:acme:receivable", "USD"): Decimal("0.0001")}
    assert storage.rated_events(["b1"])["b1"].attribution.agent == "agt_1"  # reported like any event


def test_byok_usage_does_not_move_platform_usage_up_a_tier(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(GATEWAY), storage, registry)
    engine.rate(request("b1", 5000, source="byok"))
    platform = engine.rate(request("p1", 500))
    assert platform is not None
    assert [(c.meter, c.before, c.amount) for c in platform.charges] == [("tokens", 0, Decimal("1.000"))]
