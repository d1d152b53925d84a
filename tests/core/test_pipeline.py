"""The pipeline: one ordered list of steps; each mode a declared subset of its policies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from rating.core.pipeline import MODES, STEPS, Mode, Pipeline, Wallet, acts_on, refusal_order
from rating.errors import EventError
from rating.refusals import CHECK_ORDER, Refusal
from rating.registry import Registry
from rating.statekeys import SPEND
from tests.core.books import AT, States, pricer
from tests.helpers import event


def run(registry: Registry, mode: Mode, customer: str, states: States, **options: object) -> object:
    pipeline = Pipeline(pricer(registry), mode, clock=lambda: AT, **options)  # type: ignore[arg-type]
    received = event("e1", customer=customer, type="agent.execution", at=AT + dt.timedelta(hours=1))
    return pipeline.run(received, states.lookup, lambda c, p: False, latest=pipeline.latest())


def test_the_readme_refusal_order_is_the_pipeline_order() -> None:
    assert refusal_order() == CHECK_ORDER


@pytest.mark.parametrize("mode", list(Mode))
def test_each_mode_is_an_ordered_subset_of_the_policies(mode: Mode) -> None:
    policies = [step for step in STEPS if step.policy]
    chosen = MODES[mode]
    assert all(step in policies for step in chosen)
    assert [policies.index(step) for step in chosen] == sorted(policies.index(step) for step in chosen)


def test_billing_refuses_the_future_and_a_quote_does_not(registry: Registry) -> None:
    with pytest.raises(EventError) as refused:
        run(registry, Mode.BILL, "capped", States(), future_tolerance=dt.timedelta(minutes=5))
    assert refused.value.code == Refusal.FUTURE_TIMESTAMP
    rated = run(registry, Mode.QUOTE, "capped", States(), future_tolerance=dt.timedelta(minutes=5))
    assert rated.rating.total() == {"USD": Decimal("1.00")}  # type: ignore[attr-defined]


def test_billing_caps_spend_and_rerating_keeps_it_and_the_state_view_is_untouched(registry: Registry) -> None:
    states = States()
    states.set(("capped", SPEND, (), "2026-11"), "2.00")
    before = states.snapshot()
    with pytest.raises(EventError) as refused:
        run(registry, Mode.BILL, "capped", states)
    assert refused.value.code == Refusal.SPEND_CAP_REACHED
    rated = run(registry, Mode.RERATE, "capped", states).rating  # type: ignore[attr-defined]
    assert [(u.meter, u.after) for u in rated.usage if u.meter == SPEND] == [(SPEND, Decimal("3.00"))]
    assert states.snapshot() == before


def test_billing_funds_a_wallet_customer_and_a_quote_does_not(registry: Registry) -> None:
    pipeline = Pipeline(pricer(registry), Mode.BILL)
    wallet = Wallet(lambda account, asset: Decimal(-5), lambda customer: [])
    received = event("e1", customer="walleted", type="agent.execution", at=AT)
    rated = pipeline.run(received, States().lookup, lambda c, p: False, wallet=wallet)
    assert rated.funding is not None and rated.funding.balances[0][1] == Decimal(-4)
    quoted = Pipeline(pricer(registry), Mode.QUOTE).run(received, States().lookup, lambda c, p: False, wallet=wallet)
    assert quoted.funding is None


def test_a_simulation_counts_what_a_cap_would_refuse_without_raising(registry: Registry) -> None:
    pipeline = Pipeline(pricer(registry), Mode.SIMULATE)
    spend = States()
    spend.set(("capped", SPEND, (), "2026-11"), "2.00")
    terms = pipeline.terms(event("e1", customer="capped", type="agent.execution", at=AT))
    priced, cap = pipeline.simulate(terms, States().lookup, spend.lookup)
    assert isinstance(cap, EventError) and cap.code == Refusal.SPEND_CAP_REACHED
    assert [c.amount for c in priced.charges] == [Decimal("1.00")]


def test_the_columnar_path_leaves_to_the_pipeline_the_customers_a_simulated_policy_acts_on(
    registry: Registry,
) -> None:
    book = pricer(registry).catalog.latest
    assert acts_on(Mode.SIMULATE, book, "capped")  # a hard cap: counted event by event
    assert not acts_on(Mode.SIMULATE, book, "walleted")  # a simulation bills every customer on account
    assert acts_on(Mode.BILL, book, "walleted") and acts_on(Mode.BILL, book, "bigco")
    assert not acts_on(Mode.SIMULATE, book, "someone-unlisted")


def test_a_rerate_correction_is_funded_by_the_wallet_policy_and_built_once(registry: Registry) -> None:
    from rating.accounts import wallet_account

    pipeline = Pipeline(pricer(registry), Mode.RERATE)
    terms = pipeline.terms(event("e1", customer="walleted", type="agent.execution", at=AT))
    wallet = Wallet(lambda account, asset: Decimal(-5), lambda customer: [])
    metadata = {"event_id": "e1", "customer": "walleted"}
    up, funding = pipeline.correct(
        terms, "rerate:e1:1", AT, "up", {("revenue:p:runs", "USD"): Decimal(-1)}, metadata, wallet
    )
    assert funding is not None and [(p.account, p.amount) for p in up.postings] == [
        ("revenue:p:runs", Decimal(-1)),
        (wallet_account("walleted"), Decimal(1)),
    ]
    down, none = pipeline.correct(
        terms, "rerate:e1:2", AT, "down", {("revenue:p:runs", "USD"): Decimal(1)}, metadata, wallet
    )
    assert none is None and [p.amount for p in down.postings] == [Decimal(1), Decimal(-1)]  # credited to the wallet
