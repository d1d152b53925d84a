"""The pricer: terms + a period-state view -> priced lines, reading the view and never writing it."""

from __future__ import annotations

from decimal import Decimal

from rating.registry import Registry
from tests.core.books import AT, States, pricer
from tests.helpers import event


def test_the_pricer_prices_after_the_state_it_is_shown_and_leaves_the_state_as_it_was(registry: Registry) -> None:
    states = States()
    states.set(("capped", "runs", (), "2026-11"), "4")
    before = states.snapshot()
    p = pricer(registry)
    priced = p.price(p.terms(event("e1", customer="capped", type="agent.execution", at=AT)), states.lookup)
    assert [(u.meter, u.before, u.after) for u in priced.usage] == [("runs", Decimal(4), Decimal(5))]
    assert [(c.meter, c.amount, c.asset) for c in priced.charges] == [("runs", Decimal("1.00"), "USD")]
    assert priced.costs == []
    assert states.snapshot() == before  # advancing the view is the caller's move, not the pricer's
