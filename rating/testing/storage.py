"""The storage contract as one pytest suite: what a storage adapter, ours or a third party's, runs against itself.

Subclass :class:`StorageContract` in a test module and give it a ``storage``
fixture that yields a fresh, empty storage (and closes it)::

    import pytest
    from rating.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self, tmp_path):
            store = MyStorage(tmp_path / "ledger")
            yield store
            store.close()

pytest then runs every ``test_*`` method of the contract against it: records
and ledger transactions stored atomically and idempotently by id, conflicts
refused whole, exact Decimal amounts, balances of exactly the named accounts,
wallet limits checked inside the write, period state with its compare-and-set,
closed periods, corrections, payments, grants and reservations, gapless
documents, customer versions, API keys, idempotent requests, ``verify`` and the
``writing()`` scope. The records it stores are
built by hand (no pricebook, no plugin, no engine), so a failure names the
storage's promise, not a pricing one.

**Provisional.** The records a storage receives are the plain records of
:mod:`rating.records` (:class:`~rating.records.EventRecord`,
:class:`~rating.records.CorrectionRecord`, :class:`~rating.records.PeriodState`)
and :class:`~rating.ledger.Transaction`; the online-path issue settles the
posting unit (how many transactions a chunk posts). Until it does, this suite
may change with it; the promises it checks will not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal, getcontext

import pytest

from rating.accounts import cost_account
from rating.core.funding import Grant, Reservation, grant_metadata, reservation_metadata
from rating.errors import CustomerError, EventConflict, LimitExceeded, PeriodClosed, RatingError, TransactionConflict
from rating.events import UsageEvent
from rating.ids import closing_id, forfeit_id, grant_id, rating_id, release_id, rerate_id, reserve_id
from rating.ledger import Posting, Transaction
from rating.money import MONEY_CONTEXT
from rating.records import (
    ApiKeyRecord,
    ChargeRecord,
    CorrectionRecord,
    CustomerVersion,
    EventRecord,
    IdempotentRequest,
    PeriodState,
    Usage,
)
from rating.statekeys import StateKey
from rating.storage.base import Payment, StaleState, Storage
from rating.wallet.payment_ids import Purpose, payment_marker

__all__ = ["StorageContract", "close", "correction", "forfeit", "grant", "hold", "rated", "release", "transfer"]

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
PERIOD = "2026-11"
#: The price per token the hand-built ratings charge, and the share of it that is a provider's cost.
PRICE = Decimal("0.001")
COST = Decimal("0.0004")


def transfer(id: str, amount: str | Decimal, asset: str = "USD", debit: str = "a", credit: str = "b") -> Transaction:
    """A transaction moving ``amount`` from ``credit`` to ``debit``."""
    value = Decimal(amount)
    return Transaction(id, AT, "transfer", (Posting(debit, asset, value), Posting(credit, asset, -value)))


def close(customer: str, period: str = PERIOD) -> Transaction:
    """The marker that closes ``period`` of ``customer`` (what closing a period stores)."""
    return Transaction(
        closing_id(customer, period),
        AT + dt.timedelta(days=40),
        f"close {period}",
        (),
        {"customer": customer, "period": period},
    )


def rated(
    event_id: str,
    tokens: int | str = 100,
    *,
    customer: str = "acme",
    before: int | str = 0,
    at: dt.datetime = AT,
    agent: str | None = None,
    period: str = PERIOD,
) -> EventRecord:
    """A rated event's record as the engine hands it to storage: ``tokens`` on the ``tokens`` meter (group ``m``) from
    ``before``, charged at :data:`PRICE`, posted with a provider cost; with ``agent``, a unique-count reading too."""
    quantity, start = Decimal(tokens), Decimal(before)
    amount, cost = quantity * PRICE, quantity * COST
    properties: dict[str, object] = {"tokens": int(quantity), "model": "m"}
    usage = [Usage("tokens", ("m",), period, quantity, start, start + quantity)]
    if agent is not None:
        properties["agent"] = agent
        usage.append(Usage("agents", (), period, agent, Decimal(0), Decimal(1)))
    event = UsageEvent(id=event_id, customer=customer, type="api.call", timestamp=at, properties=properties)
    charge = ChargeRecord(
        "basic",
        "tokens",
        ("m",),
        period,
        "per_unit",
        start,
        start + quantity,
        amount,
        "USD",
        "tokens",
        PRICE,
        f"{quantity} tokens x {PRICE} USD = {amount} USD",
    )
    postings = (
        Posting(f"customer:{customer}:receivable", "USD", amount),
        Posting("revenue:basic:tokens", "USD", -amount),
        Posting(cost_account("tokens"), "USD", cost),
        Posting("payable:providers", "USD", -cost),
    )
    transaction = Transaction(rating_id(event_id), at, f"usage {event_id}", postings, {"customer": customer})
    return EventRecord(event, period, tuple(usage), (charge,), transaction)


def correction(rating: EventRecord, number: int, amount: str) -> CorrectionRecord:
    """A correction of ``rating``: its charge reversed and ``amount`` charged instead, posted as the difference."""
    [old] = rating.charges
    new = old._replace(amount=Decimal(amount), explanation=f"re-rated: {amount} USD")
    reversed_ = old._replace(amount=-old.amount, explanation=f"reverses {old.amount} USD")
    difference = Decimal(amount) - old.amount
    customer = rating.event.customer
    transaction = Transaction(
        rerate_id(rating.event.id, number),
        AT + dt.timedelta(days=2),
        "re-rating",
        (
            Posting(f"customer:{customer}:receivable", "USD", difference),
            Posting("revenue:basic:tokens", "USD", -difference),
        ),
        {"customer": customer},
    )
    return CorrectionRecord(rating.event.id, customer, (reversed_, new), transaction)


def grant(grant: Grant) -> Transaction:
    """The transaction ``grant:CUSTOMER:GRANT`` that issues ``grant`` (what :meth:`~rating.wallet.wallets.Wallets.grant`
    stores): from the grants account to the grant's own."""
    postings = (
        Posting(f"grants:{grant.kind}", grant.asset, grant.amount),
        Posting(grant.account, grant.asset, -grant.amount),
    )
    return Transaction(grant_id(grant.customer, grant.id), grant.starts, "grant", postings, grant_metadata(grant))


def forfeit(grant: Grant, number: int, left: str | Decimal) -> Transaction:
    """The ``number``-th forfeiture of what is left of ``grant`` (``left``) once it expired."""
    value = Decimal(left)
    postings = (Posting(grant.account, grant.asset, value), Posting("revenue:forfeited", grant.asset, -value))
    meta = {"customer": grant.customer, "grant": grant.id}
    return Transaction(forfeit_id(grant.customer, grant.id, number), AT, "expired", postings, meta)


def hold(reservation: Reservation) -> Transaction:
    """The transaction ``reserve:ID`` that holds ``reservation``: its draw moved to the customer's held funds."""
    postings = [Posting(account, reservation.asset, taken) for account, taken in reservation.draw]
    postings.append(Posting(f"customer:{reservation.customer}:held", reservation.asset, -reservation.amount))
    return Transaction(reserve_id(reservation.id), AT, "hold", tuple(postings), reservation_metadata(reservation))


def release(reservation: Reservation, *, actual: str | None = None, reason: str = "voided") -> Transaction:
    """The release ``release:ID`` of all of ``reservation``: settled at ``actual`` (the settlement's postings are
    left out: storage reads only what the release says of its reservation), else voided for ``reason``."""
    postings = [Posting(f"customer:{reservation.customer}:held", reservation.asset, reservation.amount)]
    postings += [Posting(account, reservation.asset, -taken) for account, taken in reservation.draw]
    meta = {"customer": reservation.customer, "reservation": reservation.id}
    meta.update({"actual": actual} if actual is not None else {"reason": reason})
    return Transaction(release_id(reservation.id), AT + dt.timedelta(minutes=1), "release", tuple(postings), meta)


def _stored(storage: Storage, *ids: str) -> list[str]:
    """Which of ``ids`` are stored transactions."""
    return sorted(storage.transactions_by_id(ids))


class StorageContract:
    """The storage contract: subclass it with a ``storage`` fixture yielding a fresh storage (see the module)."""

    # -- ledger transactions ---------------------------------------------------------

    def test_append_is_idempotent_by_id(self, storage: Storage) -> None:
        assert storage.append([transfer("t1", "1.10")]) == [transfer("t1", "1.10")]
        assert storage.append([transfer("t1", "1.10"), transfer("t1", "1.10")]) == []
        assert storage.balances() == {("a", "USD"): Decimal("1.10"), ("b", "USD"): Decimal("-1.10")}
        assert storage.count_transactions() == 1

    def test_a_batch_repeating_an_id_stores_it_once(self, storage: Storage) -> None:
        assert storage.append([transfer("t1", "1"), transfer("t1", "1")]) == [transfer("t1", "1")]
        assert storage.balances()[("a", "USD")] == Decimal(1)

    def test_same_id_with_other_content_is_refused_and_the_batch_writes_nothing(self, storage: Storage) -> None:
        storage.append([transfer("t1", "1")])
        with pytest.raises(TransactionConflict, match="t1"):
            storage.append([transfer("t2", "5"), transfer("t1", "2")])
        with pytest.raises(TransactionConflict, match="t3"):
            storage.append([transfer("t3", "5"), transfer("t3", "6")])
        assert _stored(storage, "t2", "t3") == []
        assert storage.balances() == {("a", "USD"): Decimal(1), ("b", "USD"): Decimal(-1)}

    def test_amounts_come_back_exact_and_as_decimals(self, storage: Storage) -> None:
        tiny, huge = "0.0000001", "123456789012345678901234567890.123456789"
        storage.append([transfer("t1", tiny), transfer("t2", huge, "EUR"), transfer("t3", "1", "EUR")])
        assert storage.transaction("t1") == transfer("t1", tiny)
        assert storage.transaction("t2") == transfer("t2", huge, "EUR")
        balances = storage.balances()
        assert all(type(amount) is Decimal for amount in balances.values())
        # all 39 digits, not the 28 of Python's default context
        assert balances[("a", "EUR")] == Decimal("123456789012345678901234567891.123456789")
        assert balances[("a", "USD")] == Decimal(tiny)

    def test_transactions_are_read_back_whole_in_the_order_stored(self, storage: Storage) -> None:
        stored = [transfer("t2", "2"), transfer("t1", "1"), close("acme"), transfer("t3", "3", debit="c")]
        storage.append(stored[:2])
        storage.append(stored[2:])
        assert list(storage.transactions()) == stored
        assert storage.transaction("t9") is None
        assert storage.transactions_by_id(["t3", "t9", "t1"]) == {"t3": stored[3], "t1": stored[1]}
        assert storage.transactions_by_id([]) == {}
        assert storage.transactions_of("transfer") == []  # kinds are the first word of the id
        assert storage.transactions_of("t2") == [stored[0]]
        assert storage.transactions_of("close", "acme") == [stored[2]]
        assert storage.transactions_of("close", "globex") == []
        assert storage.count_transactions() == 4

    def test_balances_are_of_exactly_the_named_accounts(self, storage: Storage) -> None:
        storage.append(
            [transfer("t1", "1", debit="a"), transfer("t2", "2", debit="ab"), transfer("t3", "4", debit="a:b")]
        )
        assert storage.balances(["a"]) == {("a", "USD"): Decimal(1)}  # never a prefix match
        assert storage.balances(["ab", "nobody"]) == {("ab", "USD"): Decimal(2)}
        assert storage.balances([]) == {}
        assert storage.balances()[("b", "USD")] == Decimal(-7)

    def test_account_totals_sum_the_postings_dated_before(self, storage: Storage) -> None:
        later = Transaction("t2", AT + dt.timedelta(days=1), "transfer", transfer("t2", "2").postings)
        storage.append([transfer("t1", "1"), later])
        assert storage.account_totals(["a"], AT + dt.timedelta(hours=1)) == {("a", "USD"): Decimal(1)}
        assert storage.account_totals(["a", "b"], AT + dt.timedelta(days=2)) == {
            ("a", "USD"): Decimal(3),
            ("b", "USD"): Decimal(-3),
        }
        assert storage.account_totals(["a"], AT) == {}

    # -- limits ------------------------------------------------------------------------

    def test_a_limit_breached_after_the_write_refuses_all_of_it(self, storage: Storage) -> None:
        limits = {("a", "USD"): Decimal(5)}
        assert storage.append([transfer("t1", "3")], limits) == [transfer("t1", "3")]
        with pytest.raises(LimitExceeded):
            storage.append([transfer("t2", "1", debit="c"), transfer("t3", "2.01")], limits)
        assert _stored(storage, "t2", "t3") == []
        storage.append([transfer("t4", "2")], limits)  # up to the limit is allowed
        assert storage.balances(["a"]) == {("a", "USD"): Decimal(5)}
        storage.append([transfer("t5", "-9")], limits)  # moving away from the limit always is
        assert storage.balances(["a"]) == {("a", "USD"): Decimal(-4)}

    def test_record_checks_limits_too(self, storage: Storage) -> None:
        with pytest.raises(LimitExceeded):
            storage.record([rated("e1", 100)], {("customer:acme:receivable", "USD"): Decimal("0.05")})
        assert storage.rated_events(["e1"]) == {}
        assert storage.transaction(rating_id("e1")) is None

    # -- rated events -----------------------------------------------------------------------

    def test_rated_events_are_stored_once_with_their_usage_charges_and_transaction(self, storage: Storage) -> None:
        first = rated("e1", 100)
        assert storage.record([first]) == [first]
        assert storage.record([first]) == []
        assert storage.rated_events(["e1", "e9"]) == {"e1": first.event}
        assert storage.transaction(rating_id("e1")) == first.transaction
        [stored] = storage.charges("acme")
        assert (stored.event_id, stored.customer) == ("e1", "acme")
        charge = stored.charge
        assert (charge.plan, charge.meter, charge.group, charge.period, charge.model) == (
            "basic",
            "tokens",
            ("m",),
            PERIOD,
            "per_unit",
        )
        assert (charge.before, charge.after, charge.amount, charge.asset, charge.unit) == (
            Decimal(0),
            Decimal(100),
            Decimal("0.1"),
            "USD",
            "tokens",
        )
        assert charge.explanation == "100 tokens x 0.001 USD = 0.100 USD"
        assert charge.unit_price == PRICE
        assert list(storage.charges("globex")) == []
        assert storage.balances(["customer:acme:receivable"]) == {("customer:acme:receivable", "USD"): Decimal("0.1")}

    def test_an_event_id_rated_again_with_other_content_is_refused(self, storage: Storage) -> None:
        storage.record([rated("e1", 100)])
        with pytest.raises(EventConflict, match="e1"):
            storage.record([rated("e2", 5, before=100), rated("e1", 7, before=105)])
        assert storage.rated_events(["e2"]) == {}
        assert storage.transaction(rating_id("e2")) is None

    def test_charges_period_totals_and_activity_read_what_was_recorded(self, storage: Storage) -> None:
        storage.record(
            [
                rated("e1", 100, at=AT + dt.timedelta(hours=2)),
                rated("e2", 50, before=100, at=AT + dt.timedelta(hours=1)),
                rated("e3", 10, customer="globex", at=AT + dt.timedelta(hours=1)),
                rated("e4", 20, customer="globex", at=AT + dt.timedelta(days=40), period="2026-12"),
            ]
        )
        assert [c.event_id for c in storage.charges()] == ["e1", "e2", "e3", "e4"]
        assert storage.period_totals(PERIOD) == {("acme", "USD"): Decimal("0.15"), ("globex", "USD"): Decimal("0.01")}
        activity = list(storage.activity(AT, AT + dt.timedelta(days=1)))
        assert [a.event.id for a in activity] == ["e2", "e3", "e1"]  # time order, ties by id
        e2 = activity[0]
        assert [(meter, str(reading)) for meter, reading in e2.readings] == [("tokens", "50")]
        assert e2.amounts == (("USD", Decimal("0.05")),)
        assert e2.costs == (("USD", Decimal("0.02")),)
        assert [a.event.id for a in storage.activity(AT, AT + dt.timedelta(days=60), "globex")] == ["e3", "e4"]

    # -- period state ----------------------------------------------------------------------

    def test_period_state_moves_with_each_record(self, storage: Storage) -> None:
        storage.record([rated("e1", 100), rated("e2", 30, before=100)])
        key = StateKey("acme", "tokens", ("m",), PERIOD)
        assert storage.period_states([key, StateKey("acme", "tokens", ("x",), PERIOD)]) == {
            key: PeriodState(Decimal(130))
        }
        assert storage.period_states([]) == {}

    def test_a_batch_rated_from_stale_state_is_refused_whole(self, storage: Storage) -> None:
        storage.record([rated("e1", 100)])
        with pytest.raises(StaleState):
            storage.record([rated("e2", 5, customer="globex"), rated("e3", 10, before=0)])  # e3 read 0, it is 100
        assert storage.rated_events(["e2", "e3"]) == {}
        assert storage.period_states([StateKey("globex", "tokens", ("m",), PERIOD)]) == {}

    def test_unique_members_survive_storage(self, storage: Storage) -> None:
        storage.record([rated("e1", 1, agent="a1")])
        states = storage.period_states([StateKey("acme", "agents", (), PERIOD)])
        assert states == {StateKey("acme", "agents", (), PERIOD): PeriodState(Decimal(1), {"a1"})}

    def test_groups_of_long_values_are_kept_apart(self, storage: Storage) -> None:
        """Group values and members may be long (1,024 UTF-8 bytes each): keys must not be cut short."""
        long = "é" * 512
        a, b = (long + "a",), (long + "b",)
        rating = rated("e1", 5)
        usage = (Usage("tokens", a, PERIOD, Decimal(5), Decimal(0), Decimal(5)),)
        other = rated("e2", 7)
        storage.record(
            [rating._replace(usage=usage), other._replace(usage=(usage[0]._replace(group=b, after=Decimal(7)),))]
        )
        states = storage.period_states([StateKey("acme", "tokens", a, PERIOD), StateKey("acme", "tokens", b, PERIOD)])
        assert {key[2]: state.quantity for key, state in states.items()} == {a: Decimal(5), b: Decimal(7)}

    # -- closed periods -------------------------------------------------------------------

    def test_a_closed_period_takes_no_more_usage(self, storage: Storage) -> None:
        storage.record([rated("e1", 100)])
        storage.append([close("acme")])
        assert storage.closed_periods([("acme", PERIOD), ("acme", "2026-12"), ("globex", PERIOD)]) == {("acme", PERIOD)}
        with pytest.raises(PeriodClosed):
            storage.record([rated("e2", 5, customer="globex"), rated("e3", 10, before=100)])
        assert storage.rated_events(["e2", "e3"]) == {}
        assert storage.closed_periods([]) == set()

    def test_a_charge_kept_as_data_only_is_stored_with_its_identity_and_amounts(self, storage: Storage) -> None:
        """A record without text (the pricing layer renders it on read) stores; the adapter makes no text."""
        record = rated("e1", 100)
        [charge] = record.charges
        data_only = charge._replace(unit_price=None, explanation=None, version="bench@2026-11-01", key="total:k")
        storage.record([record._replace(charges=(data_only,))])
        [stored] = storage.charges("acme")
        assert (
            stored.charge[:10] == data_only[:10]
        )  # plan, meter, group, period, model, quantities, amount, asset, unit
        assert stored.charge.unit_price is None and stored.charge.explanation in (None, "")

    # -- corrections ------------------------------------------------------------------------

    def test_corrections_are_stored_once_and_replace_the_state_they_name(self, storage: Storage) -> None:
        first = rated("e1", 100)
        storage.record([first])
        key = StateKey("acme", "tokens", ("m",), PERIOD)
        fixed = correction(first, 1, "0.08")
        assert storage.correct([fixed], {key: PeriodState(Decimal(80))}) == [fixed]
        assert storage.correct([fixed], {key: PeriodState(Decimal(80))}) == []
        assert storage.period_states([key]) == {key: PeriodState(Decimal(80))}
        assert storage.correct([], {key: PeriodState(Decimal(70))}) == []  # states are replaced all the same
        assert storage.period_states([key]) == {key: PeriodState(Decimal(70))}
        assert storage.transaction("rerate:e1:1") == fixed.transaction
        assert [c.charge.amount for c in storage.charges("acme")] == [Decimal("0.1"), Decimal("-0.1"), Decimal("0.08")]
        assert storage.period_totals(PERIOD) == {("acme", "USD"): Decimal("0.08")}
        [activity] = storage.activity(AT, AT + dt.timedelta(days=1))
        assert sorted(activity.amounts) == sorted(
            [("USD", Decimal("0.1")), ("USD", Decimal("-0.1")), ("USD", Decimal("0.08"))]
        )
        assert storage.balances(["customer:acme:receivable"]) == {("customer:acme:receivable", "USD"): Decimal("0.08")}
        with pytest.raises(TransactionConflict):
            storage.correct([correction(first, 1, "0.07")], {})

    # -- payments -------------------------------------------------------------------------------

    def test_a_payment_marker_records_its_payment_once(self, storage: Storage) -> None:
        marker = payment_marker("pi_1", Purpose.TOP_UP, "acme", "USD", Decimal("12.50"), AT)
        storage.append([marker])
        expected = Payment("pi_1", "top-up", "acme", "USD", Decimal("12.50"), "payment:pi_1")
        assert storage.payments(["pi_1", "pi_9"]) == {"pi_1": expected}
        assert storage.append([marker]) == []  # a replay
        with pytest.raises(TransactionConflict):  # the id for another purpose, in one write with other work
            storage.append([transfer("t1", "1"), payment_marker("pi_1", Purpose.REFUND, "acme", "USD", Decimal(1), AT)])
        assert storage.payments(["pi_1"]) == {"pi_1": expected}
        assert _stored(storage, "t1") == []
        assert storage.payments([]) == {}
        assert storage.verify() == []

    # -- documents ------------------------------------------------------------------------------

    def test_documents_are_numbered_without_gaps_once_per_kind_customer_and_period(self, storage: Storage) -> None:
        def build(text: str, *transactions: Transaction):
            return lambda number: (f"{text} {number}", list(transactions))

        assert storage.issue_document("INV", "invoice", "acme", PERIOD, build("A", transfer("t1", "1"))) == (
            "A INV-000001",
            True,
        )
        assert storage.issue_document("INV", "invoice", "acme", PERIOD, build("again")) == ("A INV-000001", False)

        def failing(number: str) -> tuple[str, list[Transaction]]:
            raise RatingError(f"cannot build {number}")

        with pytest.raises(RatingError):
            storage.issue_document("INV", "invoice", "globex", PERIOD, failing)
        assert storage.issue_document("INV", "invoice", "globex", PERIOD, build("G")) == ("G INV-000002", True)
        assert storage.issue_document("CN", "credit", "acme", PERIOD, build("C")) == ("C CN-000001", True)
        assert sorted(storage.documents()) == ["A INV-000001", "C CN-000001", "G INV-000002"]
        assert [d for d in storage.documents() if "INV" in d] == ["A INV-000001", "G INV-000002"]  # in number order
        assert storage.documents(number="INV-000002") == ["G INV-000002"]
        assert sorted(storage.documents(customer="acme")) == ["A INV-000001", "C CN-000001"]
        assert storage.documents(number="INV-000002", customer="acme") == []
        assert _stored(storage, "t1") == ["t1"]

    # -- the write scope --------------------------------------------------------------------------

    def test_checked_writes_must_happen_inside_the_scope_that_checked_them(self, storage: Storage) -> None:
        with pytest.raises(RatingError, match="inside the writing"):
            storage.append([transfer("t1", "1")], checked=True)
        with pytest.raises(RatingError, match="inside the writing"):
            storage.record([rated("e1")], checked=True)
        assert storage.transaction("t1") is None
        with storage.writing():
            assert storage.transactions_by_id(["t1"]) == {}
            assert storage.append([transfer("t1", "1")], checked=True) == [transfer("t1", "1")]
            assert storage.record([rated("e1")], checked=True) == [rated("e1")]
        assert storage.balances(["a"]) == {("a", "USD"): Decimal(1)}
        assert storage.rated_events(["e1"]) == {"e1": rated("e1").event}

    def test_writes_nested_in_a_scope_are_committed_together(self, storage: Storage) -> None:
        with storage.writing():
            assert getcontext().prec == MONEY_CONTEXT.prec  # exact money arithmetic inside the scope
            storage.append([transfer("t1", "1")])
            with storage.writing():
                storage.record([rated("e1")])
        assert _stored(storage, "t1", rating_id("e1")) == ["rating:e1", "t1"]

    def test_a_scope_that_fails_leaves_nothing_when_the_storage_rolls_back(self, storage: Storage) -> None:
        storage.append([transfer("t0", "1")])
        with pytest.raises(ZeroDivisionError), storage.writing():
            storage.append([transfer("t1", "1")])
            storage.record([rated("e1")])
            _ = 1 / 0
        if storage.rolls_back:
            assert _stored(storage, "t1", rating_id("e1")) == []
            assert storage.rated_events(["e1"]) == {}
            assert storage.balances(["a"]) == {("a", "USD"): Decimal(1)}
        storage.append([transfer("t2", "2")])  # the storage works on after the failure
        assert storage.verify() == []

    # -- verify -----------------------------------------------------------------------------------

    def test_verify_finds_a_sound_ledger_sound(self, storage: Storage) -> None:
        assert storage.verify() == []
        first = rated("e1", 100)
        storage.record([first, rated("e2", 5, before=100, agent="a1")])
        storage.append([transfer("t1", "1"), close("acme", "2026-10")])
        storage.correct(
            [correction(first, 1, "0.2")], {StateKey("acme", "tokens", ("m",), PERIOD): PeriodState(Decimal(200))}
        )
        assert storage.verify() == []

    # -- grants and reservations ------------------------------------------------------------------

    def test_grants_are_read_per_customer_in_the_order_issued(self, storage: Storage) -> None:
        later = dt.datetime(2026, 11, 2, 9, 30, 0, 1, tzinfo=dt.UTC)
        expiry = dt.datetime(2026, 12, 1, 2, 0, 0, 250, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # any offset
        first = Grant("promo", "acme", "USD", Decimal("5.25"), "promotional", 1, AT, expiry)
        second = Grant("bonus", "acme", "EUR", Decimal("0.000001"), "purchased", 0, later, None)
        other = Grant("promo", "globex", "USD", Decimal(3), "rollover", -2, AT, None)
        storage.append([grant(first), grant(other)])
        storage.append([grant(second)])
        assert storage.grants(["acme"]) == {"acme": [first, second]}
        assert storage.grants(["globex", "nobody"]) == {"globex": [other]}
        assert storage.grants() == {"acme": [first, second], "globex": [other]}
        assert storage.grants([]) == {}
        [read] = storage.grants(["globex"])["globex"]
        assert isinstance(read.amount, Decimal) and read.starts == AT and read.expires is None
        assert storage.append([grant(first)]) == []  # a replay issues nothing more
        assert storage.grants(["acme"]) == {"acme": [first, second]}
        assert storage.verify() == []

    def test_a_grant_counts_its_forfeitures_once_each(self, storage: Storage) -> None:
        promo = Grant("promo", "acme", "USD", Decimal(5), "promotional", 0, AT, AT + dt.timedelta(days=1))
        storage.append([grant(promo), forfeit(promo, 0, "5")])  # issued and forfeited in one write
        assert storage.grants(["acme"])["acme"][0].forfeits == 1
        storage.append([forfeit(promo, 0, "5")])  # a replay
        with pytest.raises(TransactionConflict):  # refused whole: the forfeiture beside it is not counted
            storage.append([forfeit(promo, 1, "1"), transfer("t1", "2"), transfer("t1", "3")])
        assert storage.grants(["acme"])["acme"][0].forfeits == 1
        storage.append([forfeit(promo, 1, "1")])
        assert storage.grants(["acme"]) == {"acme": [replace(promo, forfeits=2)]}
        assert storage.verify() == []

    def test_reservations_are_held_until_their_release_and_read_in_batches(self, storage: Storage) -> None:
        expiry = dt.datetime(2026, 11, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        draw = (("customer:acme:grant:promo", Decimal("0.5")), ("customer:acme:wallet", Decimal("1.75")))
        first = Reservation("r1", "acme", "USD", Decimal("2.25"), expiry, draw)
        second = Reservation("r2", "acme", "USD", Decimal(1), expiry, (("customer:acme:wallet", Decimal(1)),))
        third = Reservation("r3", "globex", "EUR", Decimal(4), expiry, (("customer:globex:wallet", Decimal(4)),))
        fourth = Reservation("r4", "globex", "EUR", Decimal(1), expiry, (("customer:globex:wallet", Decimal(1)),))
        storage.append([hold(first), hold(second)])
        storage.append([hold(third), hold(fourth), release(fourth, reason="expired")])  # held and expired at once
        assert storage.reservations(["r1", "r2", "r9"]) == {"r1": first, "r2": second}
        assert storage.reservations([]) == {}
        assert storage.held_reservations() == [first, second, third]
        [read] = storage.reservations(["r1"]).values()
        assert read.expires_at == expiry and all(isinstance(taken, Decimal) for _, taken in read.draw)
        storage.append([release(first, actual="2"), release(second, reason="expired")])
        with pytest.raises(TransactionConflict):  # refused whole: the reservation stays held
            storage.append([release(third), transfer("t1", "2"), transfer("t1", "3")])
        assert storage.reservations(["r1", "r2", "r3", "r4"]) == {
            "r1": replace(first, state="settled", released_by="release:r1"),
            "r2": replace(second, state="expired", released_by="release:r2"),
            "r3": third,
            "r4": replace(fourth, state="expired", released_by="release:r4"),
        }
        assert storage.held_reservations() == [third]
        storage.append([release(third, reason="the work did not run")])
        assert storage.reservations(["r3"])["r3"].state == "voided"
        assert storage.held_reservations() == []
        assert storage.verify() == []

    def test_customer_versions_are_appended_once_each_and_counted(self, storage: Storage) -> None:
        east = dt.timezone(dt.timedelta(hours=2))
        first = CustomerVersion("acme", 1, AT, '{"plan":"pro"}', AT)
        second = CustomerVersion("acme", 2, dt.datetime(2026, 11, 15, 2, tzinfo=east), '{"plan":"team"}', AT)
        other = CustomerVersion("globex", 1, AT, '{"plan":"free"}', AT)
        assert storage.customers_version() == 0 and storage.latest_customers() == {}
        assert storage.append_customer_version(first)
        before = storage.customers_version()
        assert before != 0
        assert storage.append_customer_version(other) and storage.append_customer_version(second)
        after = storage.customers_version()
        assert after != before
        # The same version again, recorded later, is a replay: nothing stored, the counter stays.
        assert not storage.append_customer_version(first._replace(recorded_at=AT + dt.timedelta(days=1)))
        assert storage.customers_version() == after
        with pytest.raises(CustomerError) as conflict:  # another content under a stored sequence
            storage.append_customer_version(first._replace(spec='{"plan":"free"}'))
        assert conflict.value.code == "conflict"
        with pytest.raises(CustomerError):  # a gap: the next version of acme is 3
            storage.append_customer_version(CustomerVersion("acme", 5, AT, "{}", AT))
        assert storage.customers_version() == after
        assert storage.customer_versions("acme") == [first, second]
        assert storage.customer_versions("acme")[1].effective == dt.datetime(2026, 11, 15, tzinfo=dt.UTC)
        assert storage.customer_versions("nobody") == []
        assert storage.latest_customers() == {"acme": second, "globex": other}
        assert storage.verify() == []

    def test_api_keys_are_stored_once_by_name_and_hash_and_revoked_once(self, storage: Storage) -> None:
        reader = ApiKeyRecord("dashboard", "a" * 64, ("read",), AT)
        writer = ApiKeyRecord("backend", "b" * 64, ("write", "admin"), AT)
        assert storage.api_keys() == [] and storage.api_key("a" * 64) is None
        assert storage.add_api_key(reader) and storage.add_api_key(writer)
        assert not storage.add_api_key(reader._replace(sha256="c" * 64))  # a name taken
        assert not storage.add_api_key(reader._replace(name="other"))  # a hash taken
        assert storage.api_keys() == [writer, reader]  # by name
        assert storage.api_key("b" * 64) == writer and storage.api_key("c" * 64) is None
        later = AT + dt.timedelta(days=1)
        assert storage.revoke_api_key("dashboard", later) == reader._replace(revoked_at=later)
        # Revoked again later: it stays revoked from the first time.
        assert storage.revoke_api_key("dashboard", later + dt.timedelta(days=1)) == reader._replace(revoked_at=later)
        assert storage.revoke_api_key("nobody", later) is None
        assert storage.api_key("a" * 64) == reader._replace(revoked_at=later)
        assert storage.api_key("b" * 64) == writer  # the other key untouched

    def test_an_idempotent_request_is_claimed_once_answered_and_released(self, storage: Storage) -> None:
        first = IdempotentRequest("owner", "k1", "f1", AT)
        assert storage.claim_idempotent(first, stale_before=AT - dt.timedelta(minutes=1)) is None
        # A second claim while the first runs finds it unanswered; the same key of another owner is free.
        assert storage.claim_idempotent(first._replace(fingerprint="f2"), AT - dt.timedelta(minutes=1)) == first
        assert storage.claim_idempotent(first._replace(owner="other"), AT - dt.timedelta(minutes=1)) is None
        answered = first._replace(status=201, media_type="application/json", body='{"amount": "0.10"}')
        storage.answer_idempotent(answered)
        assert storage.claim_idempotent(first, stale_before=AT + dt.timedelta(days=1)) == answered  # never stale
        storage.release_idempotent("owner", "k1")  # an answered request is kept
        assert storage.claim_idempotent(first, stale_before=AT) == answered
        # An unanswered claim is released (its request failed), or taken over once stale (its process died).
        second = IdempotentRequest("owner", "k2", "f1", AT)
        assert storage.claim_idempotent(second, stale_before=AT) is None
        storage.release_idempotent("owner", "k2")
        assert storage.claim_idempotent(second, stale_before=AT) is None
        taken = second._replace(started_at=AT + dt.timedelta(minutes=5))
        assert storage.claim_idempotent(taken, stale_before=AT + dt.timedelta(minutes=1)) is None
        assert storage.claim_idempotent(second, stale_before=AT) == taken
