"""The storage contract every adapter fulfils, and the checks they share.

- :meth:`Storage.record` and :meth:`Storage.append` are atomic: all of a batch is
  written or none of it.
- They are idempotent by id: the same event or transaction again (same content)
  is skipped; the same id with different content raises and writes nothing.
- Period state is written with a compare-and-set: a batch rated against state
  that another writer has since moved raises :class:`StaleState` and writes
  nothing, so the caller can re-rate it.
- Amounts are exact: adapters store decimal text or NUMERIC, never floats.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from functools import lru_cache

from rating.core.funding import (
    Grant,
    Reservation,
    forfeited_grant,
    grant_of,
    release_state,
    released,
    reservation_of,
)
from rating.errors import (
    CustomerError,
    EventConflict,
    InvalidAmount,
    LimitExceeded,
    PeriodClosed,
    RatingError,
    TransactionConflict,
)
from rating.events import UsageEvent
from rating.ids import TransactionKind, parse, payment_marker_id, release_id, reserve_id
from rating.ledger import Transaction
from rating.money import MONEY_CONTEXT, ZERO, exact
from rating.records import (
    ApiKeyRecord,
    ChargeRecord,
    CorrectionRecord,
    CustomerVersion,
    DeliveryRecord,
    EventRecord,
    IdempotentRequest,
    OutboxMessage,
    PeriodState,
    WebhookEndpoint,
)
from rating.refusals import CustomerRefusal
from rating.statekeys import StateKey


def _decimal(raw: object) -> Decimal | None:
    """A stored amount as a finite Decimal the ledger can add, or None when the row is damaged."""
    from rating.storage.verify import amount

    try:
        return amount(raw)
    except InvalidAmount:
        return None


class StaleState(RatingError):
    """A batch was rated against period state that changed before it was stored; re-rate it."""


class ScopeConflict(StaleState):
    """A write under customer locks needs more than its customers: it met a row another customer's writer stored
    meanwhile (an event id two customers use), or the engine found it must re-price late arrivals or draw another
    customer's wallet. Nothing of it was written; rate it again under the global scope (:meth:`Storage.writing`
    with None)."""


#: A write scope: the customers it locks, or None for the global scope (every writer waits for it).
Scope = frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Activity:
    """A rated event with what its meters read and what it was charged, for usage reports."""

    event: UsageEvent
    readings: tuple[tuple[str, Decimal | str], ...]
    amounts: tuple[tuple[str, Decimal], ...]
    costs: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class Payment:
    """A provider's payment id as the payment registry used it (:mod:`rating.wallet.payment_ids`): for what, whose,
    how much, and the marker transaction ``payment:ID`` stored with it."""

    payment_id: str
    purpose: str
    customer: str
    asset: str
    amount: Decimal
    transaction_id: str


#: The transaction kind of the payment registry's markers (``payment:ID``): each is also a :class:`Payment`.
PAYMENT_KIND = TransactionKind.PAYMENT


def payment_of(marker: Transaction) -> Payment:
    """The payment a registry marker ``payment:ID`` records (its metadata: purpose, asset, amount)."""
    meta = marker.metadata
    return Payment(
        parse(marker.id).payment,
        str(meta.get("purpose", "")),
        marker.customer or "",
        str(meta.get("asset", "")),
        Decimal(str(meta.get("amount", "0"))),
        marker.id,
    )


@dataclass(frozen=True, slots=True)
class StoredCharge:
    """A charge as kept in storage, with the event and customer it belongs to.

    ``charge.explanation`` is None where the text is rendered on read
    (:func:`rating.core.charges.explanation_of`, with the catalog).
    """

    event_id: str
    customer: str
    charge: ChargeRecord


def balance_moves(transactions: Sequence[Transaction]) -> dict[tuple[str, str], Decimal]:
    """How much ``transactions`` move each (account, asset): what adapters add to stored balances."""
    moves: dict[tuple[str, str], Decimal] = {}
    for transaction in transactions:
        for p in transaction.postings:
            moves[(p.account, p.asset)] = moves.get((p.account, p.asset), ZERO) + p.amount
    return moves


#: A period state row key as adapters store it: (customer, meter, group key text, period).
StoredKey = tuple[str, str, str, str]


@lru_cache(maxsize=65536)
def group_key(group: tuple[str, ...]) -> str:
    """Group values as adapters store them, a JSON array (cached: there are few groups and many rows)."""
    return json.dumps(list(group), separators=(",", ":"))


def final_states(
    ratings: Sequence[EventRecord],
) -> tuple[dict[StoredKey, tuple[Decimal, bool]], list[tuple[str, str, str, str, str]]]:
    """The period state ``ratings`` leave (quantity, is unique) per key, and the unique members they add."""
    final: dict[StoredKey, tuple[Decimal, bool]] = {}
    members = []
    for rating in ratings:
        for usage in rating.usage:
            key = (rating.event.customer, usage.meter, group_key(usage.group), usage.period)
            final[key] = (usage.after, isinstance(usage.reading, str))
            if isinstance(usage.reading, str):
                members.append((*key, usage.reading))
    return final, members


def stored_states(
    states: Mapping[StateKey, PeriodState],
) -> tuple[dict[StoredKey, tuple[Decimal, bool]], list[tuple[str, str, str, str, str]]]:
    """``states`` as :func:`final_states` gives them: (quantity, is unique) per stored key, and the unique members."""
    final: dict[StoredKey, tuple[Decimal, bool]] = {}
    members = []
    for (customer, meter, group, period), state in states.items():
        key = (customer, meter, group_key(group), period)
        final[key] = (state.quantity, state.members is not None)
        members += [(*key, member) for member in sorted(state.members or ())]
    return final, members


class Storage(abc.ABC):
    """Where the ledger, rated events and period state live."""

    url: str
    #: The thread inside :meth:`writing`, if any: only that thread joins the scope; others wait for it.
    _writer: int | None = None
    #: The scope the writer holds (meaningful only while ``_writer`` is set): its customers, or None for all.
    _scope: Scope = None
    #: Whether writers over disjoint customers can write side by side (PostgreSQL): only then is a customer
    #: scope narrower than the global one; elsewhere it is the global scope (one writer at a time).
    locks_customers = False
    #: Whether an error inside :meth:`writing` undoes everything written in it (a database transaction); the
    #: engine then stores a strict batch chunk by chunk in one scope instead of holding all of it.
    rolls_back = True
    #: Whether the adapter stores each charge's explanation text: then the records it is handed carry the text
    #: (else they carry what renders it on read, and the text is made only when someone reads it).
    keeps_explanations = True
    #: Whether the engine should read a chunk's period state and closed periods in one query up front
    #: (worth it where each read is a round trip to a server; in-process reads are cheaper one by one).
    reads_ahead = False

    # -- the contract ---------------------------------------------------------

    @contextmanager
    def writing(self, customers: Iterable[str] | None = None) -> Iterator[None]:
        """One write transaction around everything inside it, reads included.

        ``customers`` None (the default) is the global scope: every other
        writer waits until it ends, so nothing read inside can move before it is
        written (close, invoice numbering, rerate, payouts and wallets use it).
        A set of customers is a scope that only excludes writers of those
        customers and global ones (the engine rates a chunk in the scope of its
        customers): what it reads and writes must be theirs alone. Storage that
        does not :attr:`locks_customers` takes the global scope either way.
        Nested scopes, and :meth:`record` and :meth:`append` inside it, join the
        outer one (a nested scope wider than the outer one raises: it would run
        unlocked); everything is committed when it ends, or nothing on an error.
        """
        scope: Scope = None if customers is None else frozenset(customers)
        if self._writing:
            self._check_within(scope)
            yield
            return
        with self._atomic(scope), localcontext(MONEY_CONTEXT):
            self._writer, self._scope = threading.get_ident(), scope
            try:
                yield
            finally:
                self._writer, self._scope = None, None

    def _check_within(self, wanted: Scope) -> None:
        """Refuse a nested scope (or a write) needing locks the outer scope does not hold: a programming error."""
        held = self._scope
        if held is None or (wanted is not None and wanted <= held):
            return
        needs = "the global scope" if wanted is None else f"customers {sorted(wanted - held)}"
        raise RatingError(f"a write needs {needs} inside the write scope of customers {sorted(held)}")

    @contextmanager
    def _joined(self, customers: Iterable[str] | None = None) -> Iterator[None]:
        """The scope a write joins: the caller's, if it holds one (checked to cover ``customers``, those the write
        touches, when known), else a global scope of its own (a direct :meth:`record` or :meth:`append`)."""
        if self._writing:
            if customers is not None:
                self._check_within(frozenset(customers))
            yield
            return
        with self.writing():
            yield

    @property
    def in_write_scope(self) -> bool:
        """Whether the calling thread is inside :meth:`writing` (then a nested scope joins its scope)."""
        return self._writing

    @property
    def scoped_to(self) -> frozenset[str] | None:
        """The customers the calling thread's write scope is narrowed to: None outside a scope, in the global one
        and on storage that does not :attr:`locks_customers` (where every scope excludes every other writer)."""
        return self._scope if self._writing and self.locks_customers else None

    @property
    def _writing(self) -> bool:
        """Whether the calling thread is inside :meth:`writing` (another thread's scope is not its own)."""
        return self._writer == threading.get_ident()

    def record(
        self,
        ratings: Sequence[EventRecord],
        limits: Mapping[tuple[str, str], Decimal] | None = None,
        *,
        checked: bool = False,
    ) -> list[EventRecord]:
        """Store rated events and their transactions atomically; return those that were new.

        ``limits`` are checked as in :meth:`append` (wallets paying for usage).
        ``checked``: the caller rated ``ratings`` inside the :meth:`writing` scope
        it calls this in, from what it read there (the engine does), so rated
        events, closed periods and period state are not read again: they cannot
        have moved. Limits are checked all the same.
        """
        if checked and not self._writing:
            raise RatingError("checked ratings must be recorded inside the writing() scope that rated them")
        with self._joined({r.event.customer for r in ratings}):
            fresh = list(ratings) if checked else self._screen_ratings(ratings)
            if not checked:
                self._check_open(fresh)
                self._check_state(fresh)
                self._screen_transactions([r.transaction for r in fresh])
            transactions = [r.transaction for r in fresh]
            if limits:
                self._check_limits(transactions, limits)
            self._write_ratings(fresh)
        return fresh

    def append(
        self,
        transactions: Sequence[Transaction],
        limits: Mapping[tuple[str, str], Decimal] | None = None,
        *,
        checked: bool = False,
    ) -> list[Transaction]:
        """Store ledger transactions atomically; return those that were new.

        ``limits`` caps the balance of some (account, asset) pairs after the write
        (a wallet's is 0: it may never end in debit). The check runs inside the
        write transaction, so concurrent writers cannot both pass it; a breach
        raises :class:`~rating.errors.LimitExceeded` and writes nothing.
        ``checked``: the caller found inside the :meth:`writing` scope it calls
        this in that none of the ids is stored, so they are not looked up again.
        """
        if checked and not self._writing:
            raise RatingError("checked transactions must be appended inside the writing() scope that checked them")
        with self._joined(t.customer for t in transactions if t.customer is not None):
            fresh = list(transactions) if checked else self._screen_transactions(transactions)
            if limits:
                self._check_limits(fresh, limits)
            self._write_transactions(fresh)
        return fresh

    def correct(
        self,
        corrections: Sequence[CorrectionRecord],
        states: Mapping[StateKey, PeriodState],
        limits: Mapping[tuple[str, str], Decimal] | None = None,
    ) -> list[CorrectionRecord]:
        """Store corrections of rated events and the period states they leave, atomically; return those that were new.

        A correction whose transaction is already stored with the same content is
        skipped; ``states`` replace the stored state of their keys (re-rated open
        periods); ``limits`` are checked as in :meth:`append`.
        """
        with self._joined({c.customer for c in corrections}):
            fresh_ids = {t.id for t in self._screen_transactions([c.transaction for c in corrections])}
            fresh = [c for c in corrections if c.transaction.id in fresh_ids]
            if limits:
                self._check_limits([c.transaction for c in fresh], limits)
            self._write_corrections(fresh, states)
        return fresh

    def issue_document(
        self,
        series: str,
        kind: str,
        customer: str,
        period: str,
        build: Callable[[str], tuple[str, Sequence[Transaction]]],
    ) -> tuple[str, bool]:
        """Number and store a document (an invoice) once per (kind, customer, period); return its text and if new.

        The number ``SERIES-NNNNNN`` is the series' next, taken inside the write:
        concurrent issuers wait for each other, and a failed issue leaves no gap.
        ``build(number)`` gives the document's text and the transactions it posts.
        """
        with self.writing():
            existing = self._document_of(kind, customer, period)
            if existing is not None:
                return existing, False
            sequence = self._last_in_series(series) + 1
            number = f"{series}-{sequence:06d}"
            text, transactions = build(number)
            self.append(transactions)
            self._write_document(number, series, sequence, kind, customer, period, text)
        return text, True

    def _check_limits(self, transactions: Sequence[Transaction], limits: Mapping[tuple[str, str], Decimal]) -> None:
        moves: dict[tuple[str, str], Decimal] = {}
        for transaction in transactions:
            for posting in transaction.postings:
                key = (posting.account, posting.asset)
                if key in limits:
                    moves[key] = moves.get(key, ZERO) + posting.amount
        stored = self.balances({account for account, _ in moves})
        for (account, asset), move in moves.items():
            after = stored.get((account, asset), ZERO) + move
            if move > 0 and after > limits[account, asset]:
                raise LimitExceeded(account, asset, after, limits[account, asset])

    @abc.abstractmethod
    def rated_events(self, ids: Iterable[str]) -> dict[str, UsageEvent]:
        """The already rated events among ``ids``, by id."""

    @abc.abstractmethod
    def period_states(self, keys: Iterable[StateKey]) -> dict[StateKey, PeriodState]:
        """Stored period state of ``keys`` (absent keys are left out)."""

    def change_marker(self) -> object | None:
        """A value that differs once another writer has committed since it was taken (None: cannot tell).

        The engine takes one before it prices a chunk outside the write scope;
        the same value inside the scope proves that nothing it read has moved.
        """
        return None

    def read_ahead(
        self, ids: Iterable[str], keys: Iterable[StateKey], periods: Iterable[tuple[str, str]]
    ) -> tuple[dict[str, UsageEvent], dict[StateKey, PeriodState], set[tuple[str, str]]]:
        """What rating a chunk reads before it prices: which of ``ids`` are rated, the state of ``keys``
        and which ``periods`` are closed. Adapters where each read is a round trip answer all three in one."""
        return self.rated_events(ids), self.period_states(keys), self.closed_periods(periods)

    @abc.abstractmethod
    def transaction(self, id: str) -> Transaction | None:
        """The stored transaction with ``id``, or None."""

    def transactions_by_id(self, ids: Iterable[str]) -> dict[str, Transaction]:
        """The stored transactions among ``ids``, by id (one query where each is a round trip)."""
        found = {id: self.transaction(id) for id in ids}
        return {id: transaction for id, transaction in found.items() if transaction is not None}

    def payments(self, ids: Iterable[str]) -> dict[str, Payment]:
        """The provider payment ids among ``ids`` that a payment used, by id (:mod:`rating.wallet.payment_ids`).

        Written by the same write as their marker transactions; this default reads the markers themselves.
        """
        markers = self.transactions_by_id(map(payment_marker_id, ids))
        return {payment.payment_id: payment for payment in map(payment_of, markers.values())}

    @abc.abstractmethod
    def transactions(self) -> Iterator[Transaction]:
        """Every stored transaction, in the order it was stored."""

    @abc.abstractmethod
    def transactions_of(self, kind: str, customer: str | None = None) -> list[Transaction]:
        """The stored transactions of ``kind`` (:attr:`Transaction.kind`), in the order they were stored.

        With ``customer``, only those whose :attr:`Transaction.customer` it is. An exact, indexed match.
        """

    @abc.abstractmethod
    def balances(self, accounts: Iterable[str] | None = None) -> dict[tuple[str, str], Decimal]:
        """Balance per (account, asset) of exactly the named ``accounts``, or of every account (None)."""

    @abc.abstractmethod
    def closed_periods(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (customer, period) ``keys`` are closed (a ``close`` transaction is stored for them)."""

    @abc.abstractmethod
    def charges(self, customer: str | None = None) -> Iterator[StoredCharge]:
        """Stored charges, optionally of one customer, in the order they were stored."""

    @abc.abstractmethod
    def activity(self, since: dt.datetime, until: dt.datetime, customer: str | None = None) -> Iterator[Activity]:
        """Rated events with ``since <= timestamp < until``, optionally of one customer, in time order."""

    @abc.abstractmethod
    def account_totals(self, accounts: Iterable[str], until: dt.datetime) -> dict[tuple[str, str], Decimal]:
        """Per (account, asset) of the named ``accounts``: the sum of its postings dated before ``until``."""

    @abc.abstractmethod
    def period_totals(self, period: str) -> dict[tuple[str, str], Decimal]:
        """Sum of the stored charges of billing period ``period``, per (customer, asset)."""

    #: Exceptions of the adapter's driver that mean the database itself is damaged or unreadable.
    damage_errors: tuple[type[Exception], ...] = ()

    @exact
    def verify(self) -> list[str]:
        """Problems with the stored ledger, one line each (empty when sound).

        Reads the raw rows, not :class:`Transaction` objects (which could not even
        be built from a corrupted row): every amount must be a decimal, every
        metadata JSON, every transaction must balance per asset, every id must be
        unique, and every stored balance must equal the sum of its postings. A
        damaged database (a dropped table, a corrupted file) is named, not raised.
        Then every row any command reads must read (:mod:`rating.storage.verify`):
        whatever a command would trip on, verify names first.
        """
        from rating.storage.verify import unreadable

        try:
            problems = self._verify()
            return problems + unreadable(self, known=problems)
        except self.damage_errors as error:
            return [f"the database is damaged: {str(error).strip().splitlines()[0]}"]

    def count_transactions(self) -> int:
        """How many transactions are stored."""
        return len(self._all_transaction_ids())

    def _verify(self) -> list[str]:
        problems = []
        ids = self._all_transaction_ids()
        seen: set[str] = set()
        for id in ids:
            if id in seen:
                problems.append(f"transaction id {id} is stored more than once")
            seen.add(id)
        for id, metadata in self._raw_metadata():
            try:
                if not isinstance(json.loads(metadata), dict):
                    problems.append(f"transaction {id} has metadata that is not a JSON object: {metadata[:40]!r}")
            except (ValueError, TypeError):
                problems.append(f"transaction {id} has metadata that is not JSON: {str(metadata)[:40]!r}")
        per_transaction: dict[tuple[str, str], Decimal] = {}
        per_account: dict[tuple[str, str], Decimal] = {}
        for transaction_id, account, asset, raw in self._all_postings():
            amount = _decimal(raw)
            if amount is None:
                problems.append(f"a posting of transaction {transaction_id} to {account} has amount {raw!r}")
                continue
            per_transaction[transaction_id, asset] = per_transaction.get((transaction_id, asset), ZERO) + amount
            per_account[account, asset] = per_account.get((account, asset), ZERO) + amount
        for (transaction_id, asset), total in sorted(per_transaction.items()):
            if total != 0:
                problems.append(f"transaction {transaction_id} does not balance: {asset} off by {total}")
        stored: dict[tuple[str, str], Decimal] = {}
        for account, asset, raw in self._raw_balances():
            amount = _decimal(raw)
            if amount is None:
                problems.append(f"the balance of {account} in {asset} is {raw!r}, not a decimal")
            else:  # a balance kept in shards is their sum
                stored[account, asset] = stored.get((account, asset), ZERO) + amount
        for key in sorted(set(stored) | set(per_account)):
            balance, postings = stored.get(key, ZERO), per_account.get(key, ZERO)
            if balance != postings:
                problems.append(f"balance of {key[0]} in {key[1]} is {balance}, its postings sum to {postings}")
        return problems

    @abc.abstractmethod
    def _all_transaction_ids(self) -> list[str]:
        """Every stored transaction id, as stored (duplicates included, should there be any)."""

    @abc.abstractmethod
    def _all_postings(self) -> Iterator[tuple[str, str, str, object]]:
        """Every stored posting as (transaction id, account, asset, amount as stored), straight from storage."""

    def _raw_balances(self) -> Iterator[tuple[str, str, object]]:
        """Every stored balance as (account, asset, amount as stored)."""
        for (account, asset), amount in self.balances().items():
            yield account, asset, amount

    def _raw_metadata(self) -> Iterator[tuple[str, str]]:
        """(transaction id, metadata text) where the adapter keeps metadata as text; none by default."""
        return iter(())

    def _raw_rows(self, table: str, columns: str) -> Iterator[tuple[object, ...]]:
        """The ``columns`` of every row of ``table``, as stored, for :meth:`verify`; none where there are no tables."""
        return iter(())

    def legacy_running_totals(self) -> list[tuple[str, str, str, Decimal]]:
        """Running totals stored under positional names by older schemas: (customer, name, period, quantity).

        Databases written before charges had stable identities kept totals as
        ``total:PLAN[INDEX]``; migrating set them aside until an engine, which knows
        the pricebook, gives them their identities (:meth:`adopt_running_totals`).
        """
        return []

    def adopt_running_totals(self, renames: Mapping[tuple[str, str, str], str]) -> None:  # noqa: B027
        """Store legacy running totals under their new names: (customer, old name, period) -> new name."""

    def close(self) -> None:  # noqa: B027 - optional for adapters without a connection
        """Release the connection, if any."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what adapters implement -----------------------------------------------

    @abc.abstractmethod
    def _atomic(self, customers: Scope = None) -> AbstractContextManager[None]:
        """A write transaction: everything inside is committed together or not at all. ``customers``: the scope's
        (None: global); adapters that do not :attr:`locks_customers` take one writer at a time either way."""

    @abc.abstractmethod
    def _fingerprints(self, ids: Iterable[str]) -> dict[str, str]:
        """Fingerprints of the stored transactions among ``ids``."""

    @abc.abstractmethod
    def _write_transactions(self, transactions: Sequence[Transaction]) -> None:
        """Write new transactions and update balances (inside :meth:`_atomic`)."""

    @abc.abstractmethod
    def _write_ratings(self, ratings: Sequence[EventRecord]) -> None:
        """Write new rated events, their transactions, usage, charges and period state."""

    @abc.abstractmethod
    def _write_corrections(
        self, corrections: Sequence[CorrectionRecord], states: Mapping[StateKey, PeriodState]
    ) -> None:
        """Write new corrections (their transactions and charge records) and replace the period ``states``."""

    @abc.abstractmethod
    def documents(self, number: str | None = None, customer: str | None = None) -> list[str]:
        """Stored documents (invoices) as issued, by number or customer, in the order issued."""

    @abc.abstractmethod
    def _document_of(self, kind: str, customer: str, period: str) -> str | None:
        """The document of ``kind`` issued for ``customer`` and ``period``, if any."""

    @abc.abstractmethod
    def _last_in_series(self, series: str) -> int:
        """The highest sequence number issued in ``series`` (0 for none)."""

    @abc.abstractmethod
    def _write_document(
        self, number: str, series: str, sequence: int, kind: str, customer: str, period: str, text: str
    ) -> None:
        """Store an issued document, ``sequence`` in its series (inside :meth:`_atomic`); duplicates are refused
        by the schema."""

    # -- shared checks -----------------------------------------------------------

    def _screen_ratings(self, ratings: Sequence[EventRecord]) -> list[EventRecord]:
        stored = self.rated_events(r.event.id for r in ratings)
        in_batch: dict[str, UsageEvent] = {}
        fresh = []
        for rating in ratings:
            event_id = rating.event.id
            previous = stored.get(event_id) or in_batch.get(event_id)
            if previous is None:
                in_batch[event_id] = rating.event
                fresh.append(rating)
            elif previous.canonical_json() != rating.event.canonical_json():
                raise EventConflict(f"event {event_id} was already rated with different content")
        return fresh

    def _screen_transactions(self, transactions: Sequence[Transaction]) -> list[Transaction]:
        # Fingerprints are computed only for ids seen before: new ids need none.
        stored = self._fingerprints(t.id for t in transactions)
        in_batch: dict[str, Transaction] = {}
        fresh = []
        for transaction in transactions:
            id = transaction.id
            if id in stored:
                previous = stored[id]
            elif id in in_batch:
                previous = in_batch[id].fingerprint()
            else:
                in_batch[id] = transaction
                fresh.append(transaction)
                continue
            if previous != transaction.fingerprint():
                raise TransactionConflict(f"transaction {id} is already stored with different content")
        return fresh

    def _check_open(self, ratings: Sequence[EventRecord]) -> None:
        """No rating may post usage into a closed period: atomic with the write, on every adapter."""
        closed = self.closed_periods({(r.event.customer, r.period) for r in ratings})
        if closed:
            customer, period = sorted(closed)[0]
            raise PeriodClosed(f"period {period} of customer {customer!r} is closed; nothing of the batch was written")

    def _check_state(self, ratings: Sequence[EventRecord]) -> None:
        """Each state key's first reading in the batch must start from the stored quantity."""
        first_before: dict[StateKey, Decimal] = {}
        for rating in ratings:
            for usage in rating.usage:
                first_before.setdefault(usage.key(rating.event.customer), usage.before)
        stored = self.period_states(first_before)
        for key, before in first_before.items():
            current = stored[key].quantity if key in stored else ZERO
            if current != before:
                raise StaleState(f"period state {key} is {current}, the batch was rated from {before}")

    # -- customers as data (rating.customers) -------------------------------------------------------------

    def append_customer_version(self, version: CustomerVersion) -> bool:
        """Store a customer's next version; True if new, False for the same version again (a replay).

        Idempotent by (customer, sequence): the same content again is skipped; other content under a stored
        sequence, or a sequence that is not the customer's next, raises :class:`~rating.errors.CustomerError`
        ``conflict`` and stores nothing (another writer changed the customer first: read it and try again).
        """
        with self.writing():
            stored = self.customer_versions(version.customer)
            if len(stored) >= version.sequence >= 1:
                if stored[version.sequence - 1].same_content(version):
                    return False
                raise CustomerError(
                    CustomerRefusal.CONFLICT,
                    f"customer {version.customer!r} version {version.sequence} is already stored with other content",
                )
            if version.sequence != len(stored) + 1:
                raise CustomerError(
                    CustomerRefusal.CONFLICT,
                    f"customer {version.customer!r} is at version {len(stored)}, not {version.sequence - 1}",
                )
            self._write_customer_version(version)
        return True

    def customer_versions(self, customer: str) -> list[CustomerVersion]:
        """Every stored version of ``customer``, by sequence (empty for none)."""
        return [v for v in self._customer_rows(customer) if v.customer == customer]

    def latest_customers(self) -> dict[str, CustomerVersion]:
        """The latest stored version of every customer kept as data, by customer id."""
        return {customer: history[-1] for customer, history in self.customer_histories().items()}

    def customer_histories(self) -> dict[str, list[CustomerVersion]]:
        """Every stored version of every customer kept as data, by customer id, oldest first (one read)."""
        histories: dict[str, list[CustomerVersion]] = {}
        for version in self._customer_rows(None):
            histories.setdefault(version.customer, []).append(version)  # rows come by customer and sequence
        return histories

    def customers_version(self) -> int:
        """A counter that moves whenever any customer version is stored (0 for none): one cheap read, compared
        by every process to notice a change another one made."""
        return len(self._customer_rows(None))

    def _customer_rows(self, customer: str | None) -> list[CustomerVersion]:
        """Stored customer versions (of ``customer``, or all), by customer and sequence."""
        raise NotImplementedError(f"{type(self).__name__} does not keep customers as data")

    def _write_customer_version(self, version: CustomerVersion) -> None:
        """Store a new customer version (inside :meth:`_atomic`)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep customers as data")

    # -- API keys (rating.apikeys) and idempotent requests (rating.server.idempotency) -----------------------

    def add_api_key(self, key: ApiKeyRecord) -> bool:
        """Store a new API key; False (nothing stored) when its name or its hash is already stored."""
        with self.writing():
            if any(k.name == key.name or k.sha256 == key.sha256 for k in self._api_key_rows()):
                return False
            self._write_api_key(key)
        return True

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every stored API key, revoked ones included, by name."""
        return sorted(self._api_key_rows(), key=lambda k: k.name)

    def api_key(self, sha256: str) -> ApiKeyRecord | None:
        """The stored key whose SHA-256 (hex) is ``sha256``, revoked or not; None for none."""
        return next((k for k in self._api_key_rows() if k.sha256 == sha256), None)

    def revoke_api_key(self, name: str, at: dt.datetime) -> ApiKeyRecord | None:
        """Revoke the key named ``name`` from ``at`` on (a key already revoked stays revoked from its first
        time); the key as now stored, or None when there is no key of that name."""
        with self.writing():
            found = next((k for k in self._api_key_rows() if k.name == name), None)
            if found is None or found.revoked_at is not None:
                return found
            self._write_revocation(name, at)
        return found._replace(revoked_at=at)

    def claim_idempotent(self, request: IdempotentRequest, stale_before: dt.datetime) -> IdempotentRequest | None:
        """Claim ``(request.owner, request.key)`` for a request about to run: None when claimed (nothing was
        stored, or only an unanswered claim started before ``stale_before``, whose process is taken as gone);
        else what is stored under it (answered, or still being answered), for the caller to judge."""
        with self.writing():
            stored = self._idempotent_row(request.owner, request.key)
            if stored is not None and (stored.status is not None or stored.started_at >= stale_before):
                return stored
            if stored is not None:
                self._delete_idempotent(request.owner, request.key)
            self._write_idempotent(request)
        return None

    def answer_idempotent(self, answered: IdempotentRequest) -> None:
        """Keep the answer of a claimed request (its ``status``, ``media_type`` and ``body``)."""
        with self.writing():
            self._delete_idempotent(answered.owner, answered.key)
            self._write_idempotent(answered)

    def release_idempotent(self, owner: str, key: str) -> None:
        """Drop an unanswered claim (the request failed in a way its retry should run again)."""
        with self.writing():
            stored = self._idempotent_row(owner, key)
            if stored is not None and stored.status is None:
                self._delete_idempotent(owner, key)

    def purge_idempotent(self, before: dt.datetime) -> int:
        """Drop every idempotent request started before ``before``, answered or not (its key may then run
        afresh); how many were dropped."""
        with self.writing():
            return self._purge_idempotent(before)

    def _api_key_rows(self) -> list[ApiKeyRecord]:
        """Every stored API key."""
        raise NotImplementedError(f"{type(self).__name__} does not keep API keys")

    def _write_api_key(self, key: ApiKeyRecord) -> None:
        """Store a new API key (inside :meth:`_atomic`)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep API keys")

    def _write_revocation(self, name: str, at: dt.datetime) -> None:
        """Mark the key ``name`` revoked from ``at`` (inside :meth:`_atomic`)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep API keys")

    def _idempotent_row(self, owner: str, key: str) -> IdempotentRequest | None:
        """The request stored under ``(owner, key)``, or None."""
        raise NotImplementedError(f"{type(self).__name__} does not keep idempotent requests")

    def _write_idempotent(self, request: IdempotentRequest) -> None:
        """Store ``request`` (inside :meth:`_atomic`; nothing is stored under its owner and key)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep idempotent requests")

    def _delete_idempotent(self, owner: str, key: str) -> None:
        """Drop what is stored under ``(owner, key)`` (inside :meth:`_atomic`)."""
        raise NotImplementedError(f"{type(self).__name__} does not keep idempotent requests")

    def _purge_idempotent(self, before: dt.datetime) -> int:
        """Drop the requests started before ``before`` (inside :meth:`_atomic`); how many."""
        raise NotImplementedError(f"{type(self).__name__} does not keep idempotent requests")

    # -- webhooks out (rating.outbox, rating.webhooks) -------------------------------------------------------

    def announce(self, messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
        """Write outbox ``messages`` in the caller's write scope (the write of the change they announce); return
        those that were new. Idempotent by id: a message already stored is skipped, whatever its content (the
        change was announced once; a replayed write announces nothing new)."""
        with self._joined():
            stored = self._outbox_ids(m.id for m in messages)
            fresh: dict[str, OutboxMessage] = {}
            for message in messages:
                if message.id not in stored and message.id not in fresh:
                    fresh[message.id] = message
            self._write_outbox(list(fresh.values()))
        return list(fresh.values())

    def outbox(self, ids: Iterable[str] | None = None) -> list[OutboxMessage]:
        """The stored outbox messages (those among ``ids``, or all), in the order written."""
        raise NotImplementedError(f"{type(self).__name__} keeps no outbox")

    def _outbox_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are stored outbox messages."""
        return {m.id for m in self.outbox(ids)}

    def _write_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Store new outbox messages (inside :meth:`_atomic`)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no outbox")

    def log_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        """Append lines to the delivery log (in a write scope of their own when the caller holds none)."""
        with self._joined():
            self._write_deliveries(records)

    def deliveries(self, messages: Iterable[str] | None = None) -> list[DeliveryRecord]:
        """The delivery log (of ``messages``, or all), in the order written."""
        raise NotImplementedError(f"{type(self).__name__} keeps no delivery log")

    def _write_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        raise NotImplementedError(f"{type(self).__name__} keeps no delivery log")

    def undelivered(self, endpoint: str, since: dt.datetime, types: Sequence[str] = ()) -> int:
        """How many outbox messages written from ``since`` on (of ``types``, or of any type) are not delivered to
        ``endpoint``: not sent yet, waiting out a backoff, given up, or replayed since their delivery. SQL storages
        count in one query; this reads the outbox and its log."""
        wanted = set(types)
        messages = {m.id for m in self.outbox() if m.created >= since and (not wanted or m.type in wanted)}
        delivered: set[str] = set()
        for line in self.deliveries(messages):
            if line.endpoint == endpoint and line.state == "delivered":
                delivered.add(line.message)
            elif line.endpoint == endpoint and line.state == "replayed":
                delivered.discard(line.message)
        return len(messages - delivered)

    def append_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store an endpoint's next version (the first adds it; an inactive one removes it). A version that is not
        the endpoint's next raises :class:`~rating.errors.RatingError` and stores nothing."""
        with self.writing():
            stored = [e for e in self.webhook_endpoint_versions() if e.id == endpoint.id]
            if endpoint.version != len(stored) + 1:
                raise RatingError(
                    f"webhook endpoint {endpoint.id!r} is at version {len(stored)}, not {endpoint.version - 1}"
                )
            self._write_webhook_endpoint(endpoint)

    def webhook_endpoint_versions(self) -> list[WebhookEndpoint]:
        """Every stored version of every webhook endpoint, by endpoint and version."""
        raise NotImplementedError(f"{type(self).__name__} keeps no webhook endpoints")

    def _write_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        raise NotImplementedError(f"{type(self).__name__} keeps no webhook endpoints")

    # -- grants and reservations (rating.core.funding) ------------------------------------------------------

    def grants(self, customers: Iterable[str] | None = None) -> dict[str, list[Grant]]:
        """The grants of ``customers`` (of every customer when None) in the order they were issued, per customer
        (customers without any are left out), each with how many forfeitures of it were posted.

        Adapters with tables keep grants as rows written in the same write as the transactions that issue and
        forfeit them; this default derives them from those transactions.
        """
        wanted = None if customers is None else sorted(set(customers))
        if wanted is None:
            issued, forfeits = (
                self.transactions_of(TransactionKind.GRANT),
                self.transactions_of(TransactionKind.FORFEIT),
            )
        else:
            issued = [t for customer in wanted for t in self.transactions_of(TransactionKind.GRANT, customer)]
            forfeits = [t for customer in wanted for t in self.transactions_of(TransactionKind.FORFEIT, customer)]
        counted: dict[tuple[str, str], int] = {}
        for forfeit in forfeits:
            key = forfeited_grant(forfeit)
            counted[key] = counted.get(key, 0) + 1
        found: dict[str, list[Grant]] = {}
        for transaction in issued:
            grant = grant_of(transaction)
            grant = replace(grant, forfeits=counted.get((grant.customer, grant.id), 0))
            found.setdefault(grant.customer, []).append(grant)
        return found

    def reservations(self, ids: Iterable[str]) -> dict[str, Reservation]:
        """The reservations among ``ids``, held or released, by id (one read where each is a round trip).

        Adapters with tables keep them as rows written in the same write as their ``reserve:`` and ``release:``
        transactions; this default derives them from those transactions.
        """
        wanted = list(dict.fromkeys(ids))
        found = self.transactions_by_id([reserve_id(id) for id in wanted] + [release_id(id) for id in wanted])
        result = {}
        for id in wanted:
            opened = found.get(reserve_id(id))
            if opened is None:
                continue
            release = found.get(release_id(id))
            result[id] = reservation_of(opened) if release is None else released(reservation_of(opened), release)
        return result

    def held_reservations(self) -> list[Reservation]:
        """Every reservation still held (neither settled, voided nor expired), in the order held."""
        gone = {release_state(t)[0] for t in self.transactions_of(TransactionKind.RELEASE)}
        opened = self.transactions_of(TransactionKind.RESERVE)
        return [r for r in map(reservation_of, opened) if r.id not in gone]
