"""Wallets: multi-asset balances, reserve / settle / void / expire, never overdrawn."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from rating.errors import InsufficientFunds, InvalidAmount, ReservationError
from rating.ledger import imbalance
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.wallet.wallets import WalletBalance, Wallets
from tests.helpers import balances_under

START = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


def test_three_phase_use_of_a_multi_asset_wallet(storage: Storage) -> None:
    wallets = Wallets(storage, Clock())
    assert wallets.deposit("acme", "USD", Decimal("145.50"), "pay-1")
    assert not wallets.deposit("acme", "USD", Decimal("145.50"), "pay-1")  # a replayed deposit posts nothing
    wallets.deposit("acme", "CREDITS", Decimal(500), "grant-1", source="grants:promotional")
    wallets.reserve("acme", "USD", Decimal("3.00"), "run-1", timeout=5 * MINUTE)
    assert wallets.balance("acme")["USD"] == WalletBalance("USD", Decimal("145.50"), Decimal("3.00"), Decimal("142.50"))
    settled = wallets.settle("run-1", Decimal("2.25"), "revenue:agents")
    assert {p.account: p.amount for p in settled.postings} == {
        "customer:acme:held": Decimal("3.00"),
        "customer:acme:wallet": Decimal("-0.75"),  # the unused part of the reservation returns
        "revenue:agents": Decimal("-2.25"),
    }
    assert wallets.balance("acme") == {
        "CREDITS": WalletBalance("CREDITS", Decimal(500), Decimal(0), Decimal(500)),
        "USD": WalletBalance("USD", Decimal("143.25"), Decimal(0), Decimal("143.25")),
    }
    with pytest.raises(ReservationError, match="run-1 is unknown, or already settled"):
        wallets.void("run-1")


def test_a_retried_reservation_holds_nothing_more_and_other_terms_are_refused(storage: Storage) -> None:
    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    first = wallets.reserve("acme", "USD", Decimal(4), "run-1", timeout=MINUTE)
    clock.now += 30 * dt.timedelta(seconds=1)
    assert wallets.reserve("acme", "USD", Decimal("4.00"), "run-1", timeout=MINUTE) == first  # its own expiry kept
    assert wallets.balance("acme")["USD"].available == Decimal(6)
    for customer, asset, amount in [
        ("acme", "USD", Decimal(5)),
        ("acme", "EUR", Decimal(4)),
        ("beta", "USD", Decimal(4)),
    ]:
        with pytest.raises(ReservationError, match="reservation run-1 already holds 4 USD of 'acme'"):
            wallets.reserve(customer, asset, amount, "run-1", timeout=MINUTE)
    wallets.settle("run-1", Decimal(3), "revenue:agents")
    assert wallets.reserve("acme", "USD", Decimal(4), "run-1", timeout=MINUTE) == first  # settled: still nothing more
    assert wallets.balance("acme")["USD"].available == Decimal(7)


def test_a_retry_whose_first_hold_took_the_funds_returns_that_hold(storage: Storage) -> None:
    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    first = wallets.reserve("acme", "USD", Decimal(8), "run-1", timeout=MINUTE)
    assert wallets.reserve("acme", "USD", Decimal(8), "run-1", timeout=MINUTE) == first  # 2 USD left, 8 asked
    with pytest.raises(ReservationError, match="reservation run-1 already holds 8 USD"):
        wallets.reserve("acme", "USD", Decimal(9), "run-1", timeout=MINUTE)
    with pytest.raises(InsufficientFunds, match="has 2 USD available, 9 USD needed"):
        wallets.reserve("acme", "USD", Decimal(9), "run-2", timeout=MINUTE)
    assert wallets.balance("acme")["USD"].available == Decimal(2)


def test_a_reservation_beyond_what_is_available_posts_nothing(storage: Storage) -> None:
    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    wallets.reserve("acme", "USD", Decimal(8), "a", timeout=MINUTE)
    with pytest.raises(InsufficientFunds, match="customer 'acme' has 2 USD available, 3 USD needed"):
        wallets.reserve("acme", "USD", Decimal(3), "b", timeout=MINUTE)
    assert storage.transaction("reserve:b") is None
    with pytest.raises(InvalidAmount):
        wallets.reserve("acme", "USD", Decimal(0), "c", timeout=MINUTE)


def test_excess_over_the_reservation_is_capped_and_recorded_as_owed(storage: Storage) -> None:
    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    wallets.reserve("acme", "USD", Decimal(4), "a", timeout=MINUTE)
    settled = wallets.settle("a", Decimal(7), "revenue:x")
    assert settled.metadata["shortfall"] == "3"
    assert wallets.balance("acme")["USD"].available == Decimal(6)
    assert balances_under(storage, "customer:acme:receivable") == {("customer:acme:receivable", "USD"): Decimal(3)}


def test_overdraft_policy_is_bounded(storage: Storage) -> None:
    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal(5), "pay-1")
    wallets.reserve("acme", "USD", Decimal(5), "a", timeout=MINUTE)
    with pytest.raises(InsufficientFunds, match="would overdraw customer 'acme' beyond 1 USD"):
        wallets.settle("a", Decimal(7), "revenue:x", on_excess="overdraft", overdraft=Decimal(1))
    wallets.settle("a", Decimal(6), "revenue:x", on_excess="overdraft", overdraft=Decimal(1))
    assert wallets.balance("acme")["USD"].available == Decimal(-1)


def test_reservations_expire_after_their_timeout(storage: Storage) -> None:
    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    wallets.reserve("acme", "USD", Decimal(4), "short", timeout=MINUTE)
    wallets.reserve("acme", "USD", Decimal(4), "long", timeout=10 * MINUTE)
    clock.now += 2 * MINUTE
    assert [t.id for t in wallets.expire()] == ["release:short"]
    assert wallets.balance("acme")["USD"] == WalletBalance("USD", Decimal(10), Decimal(4), Decimal(6))
    assert [r.id for r in wallets.open_reservations()] == ["long"]


def test_a_reservation_past_its_timeout_cannot_be_settled_even_before_expire_runs(storage: Storage) -> None:
    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    wallets.reserve("acme", "USD", Decimal(4), "r1", timeout=MINUTE)
    clock.now += 2 * MINUTE
    with pytest.raises(ReservationError, match="expired"):
        wallets.settle("r1", Decimal(4), "revenue:api")
    assert wallets.balance("acme")["USD"].reserved == Decimal(4)  # nothing settled; voiding releases it
    wallets.void("r1", "expired")
    assert wallets.balance("acme")["USD"] == WalletBalance("USD", Decimal(10), Decimal(0), Decimal(10))


@pytest.mark.parametrize("timeout", [dt.timedelta(0), -MINUTE])
def test_a_timeout_that_is_not_positive_is_refused(storage: Storage, timeout: dt.timedelta) -> None:
    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    with pytest.raises(ReservationError, match="timeout must be positive"):
        wallets.reserve("acme", "USD", Decimal(1), "r1", timeout=timeout)
    assert wallets.balance("acme")["USD"].reserved == 0


def test_naive_grant_times_are_refused_with_a_clear_error(storage: Storage) -> None:
    wallets = Wallets(storage, Clock())
    with pytest.raises(InvalidAmount, match="expires must be a timezone-aware datetime"):
        wallets.grant("acme", "USD", Decimal(1), "g1", expires=dt.datetime(2027, 1, 1))
    with pytest.raises(InvalidAmount, match="starts must be a timezone-aware datetime"):
        wallets.grant("acme", "USD", Decimal(1), "g1", starts=dt.datetime(2026, 1, 1))
    assert storage.balances() == {}


class WalletMachine(RuleBasedStateMachine):
    """Any sequence of wallet operations keeps the ledger's invariants and conserves every cent.

    Conservation: what came in (deposits and grants) is always available, reserved,
    spent, forfeited, or left in expired grants not yet forfeited.
    """

    reservations = Bundle("reservations")
    amounts = st.decimals(min_value=Decimal("0.01"), max_value=100, places=2)

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.storage = MemoryStorage()
        self.wallets = Wallets(self.storage, self.clock)
        self.came_in = Decimal(0)
        self.spent = Decimal(0)
        self.forfeited = Decimal(0)
        self.held: dict[str, Decimal] = {}
        self.grants: dict[str, dt.datetime] = {}
        self.counter = 0

    def next_id(self) -> str:
        self.counter += 1
        return str(self.counter)

    def available(self) -> Decimal:
        balance = self.wallets.balance("c").get("USD")
        return balance.available if balance else Decimal(0)

    @rule(amount=amounts)
    def deposit(self, amount: Decimal) -> None:
        self.wallets.deposit("c", "USD", amount, self.next_id())
        self.came_in += amount

    @rule(
        amount=amounts, priority=st.integers(min_value=0, max_value=2), minutes=st.integers(min_value=1, max_value=40)
    )
    def grant(self, amount: Decimal, priority: int, minutes: int) -> None:
        id = self.next_id()
        self.wallets.grant("c", "USD", amount, id, priority=priority, expires=self.clock.now + minutes * MINUTE)
        self.grants[id] = self.clock.now + minutes * MINUTE
        self.came_in += amount

    @rule()
    def forfeit_expired_grants(self) -> None:
        for transaction in self.wallets.expire_grants():
            self.forfeited += -transaction.postings[1].amount

    @rule(target=reservations, amount=amounts, minutes=st.integers(min_value=1, max_value=30))
    def reserve(self, amount: Decimal, minutes: int) -> str:
        id = self.next_id()
        if amount > self.available():
            with pytest.raises(InsufficientFunds):
                self.wallets.reserve("c", "USD", amount, id, timeout=minutes * MINUTE)
            return id
        self.wallets.reserve("c", "USD", amount, id, timeout=minutes * MINUTE)
        self.held[id] = amount
        return id

    @rule(id=reservations)
    def retry_reserve(self, id: str) -> None:
        """A retried reservation holds nothing more; the same id with other terms is refused."""
        if id not in self.held:
            return
        before = self.available()
        assert self.wallets.reserve("c", "USD", self.held[id], id, timeout=MINUTE).amount == self.held[id]
        with pytest.raises(ReservationError, match="needs another id"):
            self.wallets.reserve("c", "USD", self.held[id] + Decimal("0.01"), id, timeout=MINUTE)
        assert self.available() == before

    @rule(id=consumes(reservations), actual=st.decimals(min_value=0, max_value=150, places=2))
    def settle(self, id: str, actual: Decimal) -> None:
        if id not in self.held:
            with pytest.raises(ReservationError):
                self.wallets.settle(id, actual, "revenue:x")
            return
        self.wallets.settle(id, actual, "revenue:x")
        self.spent += min(actual, self.held.pop(id))  # the wallet pays at most what was held; the rest is owed

    @rule(id=consumes(reservations))
    def void(self, id: str) -> None:
        if id not in self.held:
            with pytest.raises(ReservationError):
                self.wallets.void(id)
            return
        self.wallets.void(id)
        del self.held[id]

    @rule(minutes=st.integers(min_value=1, max_value=20))
    def time_passes_and_reservations_expire(self, minutes: int) -> None:
        self.clock.now += minutes * MINUTE
        for transaction in self.wallets.expire():
            del self.held[transaction.id.removeprefix("release:")]

    @invariant()
    def nothing_is_overdrawn_and_every_cent_is_accounted_for(self) -> None:
        balances = balances_under(self.storage, "customer:c:")
        assert all(amount <= 0 for (account, _), amount in balances.items() if account != "customer:c:receivable")
        balance = self.wallets.balance("c").get("USD")
        available = balance.available if balance else Decimal(0)
        reserved = balance.reserved if balance else Decimal(0)
        assert available >= 0 and reserved == sum(self.held.values(), Decimal(0))
        expired = [id for id, expires in self.grants.items() if expires <= self.clock.now]
        left_in_expired = -sum(
            (balances.get((f"customer:c:grant:{id}", "USD"), Decimal(0)) for id in expired), Decimal(0)
        )
        assert available + reserved + left_in_expired + self.spent + self.forfeited == self.came_in

    @invariant()
    def every_transaction_balances_and_balances_are_the_sum_of_postings(self) -> None:
        sums: dict[tuple[str, str], Decimal] = {}
        for transaction in self.storage.transactions():
            assert imbalance(transaction.postings) == {}
            for p in transaction.postings:
                sums[(p.account, p.asset)] = sums.get((p.account, p.asset), Decimal(0)) + p.amount
        assert {k: v for k, v in self.storage.balances().items() if v} == {k: v for k, v in sums.items() if v}


WalletMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_wallet_state_machine = WalletMachine.TestCase


def test_a_deposit_id_cannot_move_another_amount(storage: Storage) -> None:
    from rating.errors import TransactionConflict

    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    clock.now += MINUTE
    assert not wallets.deposit("acme", "USD", Decimal(10), "pay-1")  # a later replay is still a replay
    with pytest.raises(TransactionConflict, match="deposit:pay-1"):
        wallets.deposit("acme", "USD", Decimal(11), "pay-1")


WALLET_BOOK = """\
pricebook: prepaid
version: 2026-11-01
currency: USD
meters:
  runs: {event: agent.execution, count: true}
plans:
  p:
    charges:
      - {meter: runs, model: per_call, price: "0.40"}
      - {id: routing-fee, meter: runs, model: per_call, price: "0.01", billing_sources: [byok]}
customers:
  acme: {plan: p, billing: wallet}
default_plan: p
"""


def test_wallet_billed_usage_is_paid_from_the_wallet_and_never_overdraws(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    from rating.engine import Engine
    from rating.events import UsageEvent

    def run(id: str, source: str = "platform") -> UsageEvent:
        return UsageEvent(id=id, customer="acme", type="agent.execution", timestamp=START, billing_source=source)  # type: ignore[arg-type]

    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal("1.00"), "pay-1")
    engine = Engine(book(WALLET_BOOK), storage, registry)
    report = engine.rate_batch([run("r1"), run("r2"), run("r3"), run("b1", "byok")])
    assert report.posted == 3
    # Rated in time order, ties by id: the BYOK routing fee of b1 is paid first.
    assert [str(r) for r in report.rejected] == [
        "event r3: insufficient_funds: customer 'acme' has 0.19 USD available, 0.40 needed"
    ]
    assert wallets.balance("acme")["USD"].available == Decimal("0.19")  # 1.00 - 2 x 0.40 - a 0.01 BYOK fee
    assert balances_under(storage, "customer:acme:receivable") == {}
    other = engine.rate(UsageEvent(id="x", customer="walk-in", type="agent.execution", timestamp=START))
    assert other is not None and other.transaction.postings[0].account == "customer:walk-in:receivable"


def test_grants_are_spent_by_priority_then_earliest_expiry_before_purchased_funds(storage: Storage) -> None:
    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    day = dt.timedelta(days=1)
    wallets.grant("acme", "USD", Decimal(3), "late", priority=1, expires=START + 9 * day)
    wallets.grant("acme", "USD", Decimal(3), "soon", priority=1, expires=START + 2 * day)
    wallets.grant("acme", "USD", Decimal(2), "first", priority=0, kind="rollover")
    assert wallets.balance("acme")["USD"].available == Decimal(18)
    reservation = wallets.reserve("acme", "USD", Decimal(9), "run", timeout=MINUTE)
    assert reservation.draw == (
        ("customer:acme:grant:first", Decimal(2)),
        ("customer:acme:grant:soon", Decimal(3)),
        ("customer:acme:grant:late", Decimal(3)),
        ("customer:acme:wallet", Decimal(1)),
    )
    wallets.settle("run", Decimal(4), "revenue:x")  # uses first and soon, less 1 of soon; the rest goes back
    balances = balances_under(storage, "customer:acme:")
    assert balances[("customer:acme:grant:first", "USD")] == 0
    assert balances[("customer:acme:grant:soon", "USD")] == Decimal(-1)
    assert balances[("customer:acme:grant:late", "USD")] == Decimal(-3)
    assert balances[("customer:acme:wallet", "USD")] == Decimal(-10)


def test_expired_grants_are_forfeited_once_and_stop_counting(storage: Storage) -> None:
    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.grant("acme", "CREDITS", Decimal(50), "promo", expires=START + dt.timedelta(days=30))
    wallets.grant("acme", "CREDITS", Decimal(5), "later", starts=START + dt.timedelta(days=40))
    assert wallets.balance("acme")["CREDITS"].available == Decimal(50)  # "later" has not started
    clock.now += dt.timedelta(days=31)
    assert wallets.balance("acme")["CREDITS"].available == 0
    [forfeit] = wallets.expire_grants()
    assert forfeit.id == "forfeit:acme:promo:0" and forfeit.timestamp == START + dt.timedelta(days=30)
    assert wallets.expire_grants() == []
    assert balances_under(storage, "revenue:forfeited") == {("revenue:forfeited", "CREDITS"): Decimal(-50)}
    with pytest.raises(InvalidAmount, match="would expire"):
        wallets.grant("acme", "CREDITS", Decimal(1), "odd", expires=START)


def test_rated_usage_spends_grants_in_force_before_purchased_funds(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    from rating.engine import Engine
    from rating.events import UsageEvent

    def run(id: str, days: int) -> UsageEvent:
        return UsageEvent(id=id, customer="acme", type="agent.execution", timestamp=START + dt.timedelta(days=days))

    wallets = Wallets(storage, Clock())
    wallets.deposit("acme", "USD", Decimal("1.00"), "pay-1")
    wallets.grant("acme", "USD", Decimal("0.50"), "promo", expires=START + dt.timedelta(days=2))
    engine = Engine(book(WALLET_BOOK), storage, registry)
    first = engine.rate(run("r1", 0))
    assert first is not None
    assert {p.account: p.amount for p in first.transaction.postings if p.amount > 0} == {
        "customer:acme:grant:promo": Decimal("0.40")
    }
    second = engine.rate(run("r2", 1))  # 0.10 left on the grant, 0.30 from purchased funds
    assert second is not None
    assert {p.account: p.amount for p in second.transaction.postings if p.amount > 0} == {
        "customer:acme:grant:promo": Decimal("0.10"),
        "customer:acme:wallet": Decimal("0.30"),
    }
    wallets.grant("acme", "USD", Decimal("5"), "expired", expires=START + dt.timedelta(days=2))
    third = engine.rate(run("r3", 3))  # the new grant has expired by then: purchased funds pay
    assert third is not None
    assert {p.account for p in third.transaction.postings if p.amount > 0} == {"customer:acme:wallet"}


def test_a_batch_reads_the_grants_of_its_customers_once(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """Grants are rows read in one batch per chunk of events, not re-read (or re-parsed) per wallet customer."""
    from rating.engine import Engine
    from rating.events import UsageEvent

    text = WALLET_BOOK.replace(
        "acme: {plan: p, billing: wallet}", "acme: {plan: p, billing: wallet}\n  beta: {plan: p, billing: wallet}"
    )
    wallets = Wallets(storage, Clock())
    for customer in ("acme", "beta"):
        wallets.grant(customer, "USD", Decimal(1), "promo")
    reads: list[list[str]] = []
    original = storage.grants

    def counted(customers=None):  # type: ignore[no-untyped-def]
        reads.append(sorted(customers or ()))
        return original(customers)

    storage.grants = counted  # type: ignore[method-assign]
    engine = Engine(book(text), storage, registry)
    events = [
        UsageEvent(id=f"{customer}-{n}", customer=customer, type="agent.execution", timestamp=START)
        for customer in ("acme", "beta", "walk-in")
        for n in range(2)
    ]
    assert engine.rate_batch(events).posted == 6
    # One read for the whole chunk (once more where the writer rates a wallet chunk again inside its write).
    assert reads and len(reads) <= 2 and all(read == ["acme", "beta", "walk-in"] for read in reads)
    assert {c: wallets.balance(c)["USD"].available for c in ("acme", "beta")} == {
        "acme": Decimal("0.20"),
        "beta": Decimal("0.20"),
    }


def test_expiries_are_announced_once_in_the_write_that_posts_them(storage: Storage) -> None:
    """reservation.expired and grant.expired: outbox messages written with the release and the forfeiture."""
    import json

    clock = Clock()
    wallets = Wallets(storage, clock)
    wallets.deposit("acme", "USD", Decimal(10), "pay-1")
    wallets.reserve("acme", "USD", Decimal(4), "short", timeout=MINUTE)
    wallets.grant("acme", "CREDITS", Decimal(50), "promo", expires=START + dt.timedelta(days=1))
    clock.now += dt.timedelta(days=2)
    wallets.expire()
    wallets.expire_grants()
    wallets.expire_grants()  # nothing new: nothing announced again
    sent = {m.type: json.loads(m.payload)["data"] for m in storage.outbox()}
    assert sent == {
        "reservation.expired": {"customer": "acme", "reservation": "short", "asset": "USD", "released": "4"},
        "grant.expired": {"customer": "acme", "grant": "promo", "asset": "CREDITS", "forfeited": "50"},
    }
    assert len(storage.outbox()) == 2
