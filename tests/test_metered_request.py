"""A metered request: reserve the estimate before the work, then rate against the reservation in one commit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.engine import Engine
from rating.errors import InsufficientFunds, ReservationError
from rating.events import UsageEvent
from rating.ledger import imbalance
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.wallet.wallets import Wallets
from tests.helpers import balances_under
from tests.test_wallet import START, WALLET_BOOK, Clock

MINUTE = dt.timedelta(minutes=1)


def run(id: str, customer: str = "acme") -> UsageEvent:
    return UsageEvent(id=id, customer=customer, type="agent.execution", timestamp=START)


def setup(storage: Storage, book, registry: Registry, price: str = "0.40"):  # type: ignore[no-untyped-def]
    clock = Clock()
    engine = Engine(book(WALLET_BOOK.replace("0.40", price)), storage, registry, clock=clock)
    return engine, Wallets(storage, clock)


def test_the_held_funds_pay_the_charges_and_the_rest_is_released(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = setup(storage, book, registry)
    wallets.deposit("acme", "USD", Decimal("1.00"), "pay-1")
    wallets.reserve("acme", "USD", Decimal("0.50"), "req-1", timeout=5 * MINUTE)
    rated = engine.rate_reserved(run("r1"), "req-1")
    assert rated is not None and rated.transaction.metadata["reservation"] == "req-1"
    balance = wallets.balance("acme")["USD"]
    assert (balance.available, balance.reserved, balance.posted) == (Decimal("0.60"), 0, Decimal("0.60"))
    assert balances_under(storage, "revenue:") == {("revenue:p:runs", "USD"): Decimal("-0.40")}  # paid once
    assert balances_under(storage, "customer:acme:held") in ({}, {("customer:acme:held", "USD"): 0})
    assert wallets.reservation("req-1") is None
    assert engine.rate_reserved(run("r1"), "req-1") is None  # a replay posts nothing
    assert wallets.balance("acme")["USD"].available == Decimal("0.60")


def test_authorize_holds_the_quoted_price_once_then_rating_pays_from_it(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = setup(storage, book, registry)
    wallets.deposit("acme", "USD", Decimal("1.00"), "pay-1")
    held = engine.authorize(run("r1"), timeout=5 * MINUTE)
    assert (held.id, held.customer, held.asset, held.amount) == ("r1", "acme", "USD", Decimal("0.40"))
    assert engine.authorize(run("r1")) == held  # a retry holds nothing more
    assert wallets.balance("acme")["USD"].reserved == Decimal("0.40")
    engine.rate_reserved(run("r1"), "r1")
    assert wallets.balance("acme")["USD"].available == Decimal("0.60")


def test_authorize_refuses_a_price_it_cannot_hold_and_posts_nothing(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = setup(storage, book, registry, "0")
    wallets.deposit("acme", "USD", Decimal("1.00"), "pay-1")
    before = storage.count_transactions()
    with pytest.raises(ReservationError, match="request r1 is priced at 0 USD: nothing to hold"):
        engine.authorize(run("r1"))
    with pytest.raises(InsufficientFunds):
        setup(storage, book, registry, "2.00")[0].authorize(run("r2"))
    assert storage.count_transactions() == before


def test_what_exceeds_the_hold_is_paid_from_the_wallet_or_refused_whole(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = setup(storage, book, registry)
    wallets.deposit("acme", "USD", Decimal("0.75"), "pay-1")
    wallets.reserve("acme", "USD", Decimal("0.30"), "req-1", timeout=5 * MINUTE)
    engine.rate_reserved(run("r1"), "req-1")
    assert wallets.balance("acme")["USD"].available == Decimal("0.35")  # 0.30 held + 0.10 more from the wallet
    wallets.reserve("acme", "USD", Decimal("0.30"), "req-2", timeout=5 * MINUTE)
    before = storage.count_transactions()
    with pytest.raises(InsufficientFunds, match="0.05 USD available, 0.10 needed"):
        engine.rate_reserved(run("r2"), "req-2")
    assert storage.count_transactions() == before and storage.rated_events(["r2"]) == {}
    assert wallets.reservation("req-2") is not None  # still open: the caller voids it or retries


def test_a_customer_on_account_owes_only_what_the_hold_did_not_cover(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = setup(storage, book, registry)
    wallets.deposit("walk-in", "USD", Decimal("0.25"), "pay-1")
    wallets.reserve("walk-in", "USD", Decimal("0.25"), "req-1", timeout=5 * MINUTE)
    engine.rate_reserved(run("r1", "walk-in"), "req-1")
    assert balances_under(storage, "customer:walk-in:receivable") == {
        ("customer:walk-in:receivable", "USD"): Decimal("0.15")
    }
    assert wallets.balance("walk-in")["USD"].available == 0


def test_an_unknown_expired_or_foreign_reservation_is_refused(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = setup(storage, book, registry)
    wallets.deposit("acme", "USD", Decimal("1.00"), "pay-1")
    with pytest.raises(ReservationError, match="req-0 is unknown"):
        engine.rate_reserved(run("r0"), "req-0")
    wallets.reserve("acme", "USD", Decimal("0.50"), "req-1", timeout=5 * MINUTE)
    with pytest.raises(ReservationError, match="holds funds of 'acme', not of 'zed'"):
        engine.rate_reserved(run("r1", "zed"), "req-1")
    wallets.clock.now += 6 * MINUTE  # type: ignore[attr-defined]
    with pytest.raises(ReservationError, match="expired"):
        engine.rate_reserved(run("r1"), "req-1")
    assert storage.rated_events(["r0", "r1"]) == {}


@settings(max_examples=60, deadline=None)
@given(
    funds=st.decimals("0.01", "5", places=2),
    hold=st.decimals("0.01", "5", places=2),
    price=st.decimals("0", "5", places=3),
)
def test_every_metered_request_is_paid_exactly_once(funds: Decimal, hold: Decimal, price: Decimal) -> None:
    storage = MemoryStorage()
    registry = Registry.load()
    engine, wallets = setup(storage, lambda text: parse_pricebook(text, registry, "t.yaml"), registry, str(price))
    wallets.deposit("acme", "USD", funds, "pay-1")
    try:
        wallets.reserve("acme", "USD", hold, "req", timeout=5 * MINUTE)
    except InsufficientFunds:
        assert hold > funds
        return
    try:
        engine.rate_reserved(run("r1"), "req")
    except InsufficientFunds:
        assert price > funds
        assert wallets.balance("acme")["USD"].available == funds - hold  # nothing moved
        return
    assert price <= funds
    assert wallets.balance("acme")["USD"].available == funds - price
    assert wallets.balance("acme")["USD"].reserved == 0
    assert sum(storage.balances().values(), Decimal(0)) == 0
    assert all(not imbalance(t.postings) for t in storage.transactions())
