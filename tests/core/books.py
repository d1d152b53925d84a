"""A pricebook with every policy in play, and the pieces the seam tests build from it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rating.core.charges import StateKey
from rating.core.pricer import PricedEvent, Pricer
from rating.money import ZERO
from rating.pricebook.catalog import Catalog
from rating.pricebook.meters import PeriodState
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from tests.helpers import event

BOOK = """\
pricebook: seams
version: 2026-01-01
currency: USD
meters:
  runs: {event: agent.execution, count: true}
plans:
  p:
    charges:
      - {meter: runs, model: per_call, price: "1.00"}
customers:
  capped: {plan: p, spend_cap: "2.50", spend_alert: "1.50"}
  walleted: {plan: p, billing: wallet}
  bigco: {plan: p}
default_plan: p
contracts:
  bigco-2026:
    customer: bigco
    from: 2026-01-01
    until: 2027-01-01
    charges:
      - {meter: runs, model: per_call, price: "2.00"}
    prepaid: "3"
"""

AT = dt.datetime(2026, 11, 5, 12, tzinfo=dt.UTC)


def pricer(registry: Registry) -> Pricer:
    return Pricer(Catalog([parse_pricebook(BOOK, registry, "seams")]))


class States(dict[StateKey, PeriodState]):
    """A period-state view that records what was read (the pricer and policies may only read it)."""

    def lookup(self, key: StateKey) -> PeriodState:
        return self.get(key) or self.setdefault(key, PeriodState(ZERO))

    def set(self, key: StateKey, quantity: str) -> None:
        self[key] = PeriodState(Decimal(quantity))

    def snapshot(self) -> dict[StateKey, tuple[Decimal, object]]:
        """Every state that is not zero (reading a key shows it as zero: a read, not a write)."""
        return {key: (s.quantity, s.members) for key, s in self.items() if s.quantity or s.members}


def priced(registry: Registry, customer: str, states: States | None = None, id: str = "e1") -> PricedEvent:
    p = pricer(registry)
    return p.price(p.terms(event(id, customer=customer, type="agent.execution", at=AT)), (states or States()).lookup)


def snapshot(priced: PricedEvent) -> tuple[object, ...]:
    """What the pricer returned, copied: a policy that appended to it or rebuilt it would differ."""
    return (priced.terms, list(priced.usage), list(priced.charges), list(priced.costs), id(priced.usage))
