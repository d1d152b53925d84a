"""Each policy returns its decision as data and leaves what the pricer returned as it returned it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from rating.accounts import wallet_account
from rating.core.charges import Usage
from rating.core.policies import (
    PrepaidDraw,
    ReservationFunding,
    apply_spend_cap,
    draw_prepaid,
    fund_from_wallet,
    pay_from_reservation,
    refuse_closed_period,
    refuse_future,
    track_arrival,
    wallet_debits,
)
from rating.errors import EventError, InsufficientFunds
from rating.refusals import Refusal
from rating.registry import Registry
from rating.statekeys import SPEND
from rating.wallet.wallets import Reservation
from tests.core.books import AT, States, priced, snapshot

WALLET = wallet_account("walleted")


def test_the_future_timestamp_policy_refuses_only_beyond_the_tolerance() -> None:
    refuse_future(AT, None, None)  # no tolerance: any time
    refuse_future(AT, AT, dt.timedelta(minutes=5))
    with pytest.raises(EventError) as refused:
        refuse_future(AT + dt.timedelta(seconds=1), AT, dt.timedelta(minutes=5))
    assert refused.value.code == Refusal.FUTURE_TIMESTAMP


def test_the_closed_period_policy_returns_the_terms_or_refuses(registry: Registry) -> None:
    terms = priced(registry, "capped").terms
    assert refuse_closed_period(terms, lambda customer, period: False) is terms
    with pytest.raises(EventError) as refused:
        refuse_closed_period(terms, lambda customer, period: period == "2026-11")
    assert refused.value.code == Refusal.CLOSED_PERIOD


def test_arrival_is_a_state_line_and_the_priced_event_is_untouched(registry: Registry) -> None:
    states = States()
    event = priced(registry, "capped", states)
    kept = snapshot(event)
    line = track_arrival(event.terms, states.lookup)
    assert line.before == 0 and line.after == line.reading
    assert snapshot(event) == kept


def test_the_spend_cap_decides_a_state_line_without_appending_it(registry: Registry) -> None:
    states = States()
    states.set(("capped", SPEND, (), "2026-11"), "1.00")
    event = priced(registry, "capped", states)
    kept, stored = snapshot(event), states.snapshot()
    line = apply_spend_cap(event, states.lookup)
    assert line == Usage(SPEND, (), "2026-11", Decimal("1.00"), Decimal("1.00"), Decimal("2.00"))
    assert snapshot(event) == kept and states.snapshot() == stored
    assert apply_spend_cap(priced(registry, "walleted"), States().lookup) is None  # neither cap nor alert


def test_the_spend_cap_refuses_beyond_the_cap_unless_told_only_to_keep_the_spend(registry: Registry) -> None:
    states = States()
    states.set(("capped", SPEND, (), "2026-11"), "2.00")
    event = priced(registry, "capped", states)
    kept = snapshot(event)
    with pytest.raises(EventError) as refused:
        apply_spend_cap(event, states.lookup)
    assert refused.value.code == Refusal.SPEND_CAP_REACHED
    line = apply_spend_cap(event, states.lookup, enforce=False)
    assert line is not None and line.after == Decimal("3.00")
    assert snapshot(event) == kept


def test_the_prepaid_draw_is_a_decision_with_its_state_line(registry: Registry) -> None:
    states = States()
    states.set(("bigco", "policy:prepaid:bigco-2026", (), "term"), "2.00")
    event = priced(registry, "bigco", states)
    kept = snapshot(event)
    draw = draw_prepaid(event, states.lookup)
    assert draw is not None and (draw.asset, draw.amount) == ("USD", Decimal("1.00"))  # 1 of the 3 prepaid left
    assert (draw.line.before, draw.line.after, draw.line.period) == (Decimal("2.00"), Decimal("4.00"), "term")
    assert snapshot(event) == kept
    assert draw_prepaid(priced(registry, "capped"), States().lookup) is None  # no contract


def test_a_reservation_pays_up_to_what_it_holds_in_its_asset() -> None:
    held = Reservation("r1", "walleted", "USD", Decimal("0.40"), AT, ((WALLET, Decimal("0.40")),))
    owed = {"USD": Decimal("1.00")}
    decision = pay_from_reservation(owed, held, AT)
    assert decision == ReservationFunding(held, Decimal("0.40"), AT, ((WALLET, Decimal("0.40")),))
    assert owed == {"USD": Decimal("1.00")}
    assert wallet_debits(owed, decision) == {"USD": Decimal("0.60")}
    assert pay_from_reservation({"EUR": Decimal(1)}, held, AT).used == 0


def test_wallet_funding_draws_without_touching_the_balances_it_reads() -> None:
    balances = {(WALLET, "USD"): Decimal("-5")}
    funding = fund_from_wallet(
        "walleted", {"USD": Decimal("2")}, AT, lambda account, asset: balances[account, asset], lambda _: []
    )
    assert funding is not None
    assert funding.draws == ((WALLET, "USD", Decimal("2")),)
    assert funding.balances == (((WALLET, "USD"), Decimal("-3")),)
    assert balances == {(WALLET, "USD"): Decimal("-5")}
    assert fund_from_wallet("walleted", {}, AT, lambda *_: Decimal(0), lambda _: []) is None
    with pytest.raises(InsufficientFunds) as refused:
        fund_from_wallet("walleted", {"USD": Decimal("6")}, AT, lambda a, s: balances[a, s], lambda _: [])
    assert refused.value.code == Refusal.INSUFFICIENT_FUNDS


def test_decisions_are_frozen() -> None:
    draw = PrepaidDraw("USD", Decimal(1), Usage("x", (), "term", Decimal(1), Decimal(0), Decimal(1)))
    with pytest.raises(AttributeError):
        draw.amount = Decimal(2)  # type: ignore[misc]


def test_a_partly_used_reservation_keeps_what_it_used_in_draw_order() -> None:
    grant = "customer:walleted:grant:g1"
    held = Reservation(
        "r1", "walleted", "USD", Decimal("0.40"), AT, ((grant, Decimal("0.30")), (WALLET, Decimal("0.10")))
    )
    decision = pay_from_reservation({"USD": Decimal("0.35")}, held, AT)
    assert decision.used == Decimal("0.35")
    assert decision.kept == ((grant, Decimal("0.30")), (WALLET, Decimal("0.05")))
