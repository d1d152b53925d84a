"""The batch writer: chunks of a stream rated and stored atomically, and its concurrency strategy.

A chunk is first rated outside the storage's write scope and stored only when
nothing it read has moved meanwhile (writers over different customers then
price at the same time); otherwise, or when it refuses a record or draws on a
wallet, it is rated again inside the write scope. A strict batch on storage
that rolls back is stored inside one write transaction, abandoned at the first
refusal. The process-wide garbage-collector pause is the engine's opt-in
``pause_gc``: an embedding application keeps its collector unless it asks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from rating.accounts import customer_of
from rating.core.charges import RatedEvent, StateKey, event_record
from rating.engine.notifications import Notifications, WalletMoves
from rating.engine.reports import BatchReport, Rejection
from rating.errors import EventError
from rating.events import CHUNK_BYTES, Pause, Sourced, UsageEvent
from rating.ledger import Transaction
from rating.money import MONEY_CONTEXT, ZERO
from rating.refusals import Refusal
from rating.storage.base import ScopeConflict, Storage
from rating.wallet.wallets import Reservation


class _Abandoned(Exception):
    """Rolls back the write transaction of a strict batch that refused a record."""


class _Unrepriced(Exception):
    """Rolls back a chunk whose late arrival's period could not be re-priced for the order of arrival (a wallet
    that cannot fund the correction): accepting the event would leave its period billed as it arrived."""

    def __init__(self, refused: list[Rejection]) -> None:
        super().__init__(refused[0].reason)
        self.refused = refused


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a chunk is rated and stored.

    Rating allocates many small objects without reference cycles; the collector
    finds nothing in them but keeps rescanning an ever larger heap (about 40%
    of batch time when measured). Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class BatchWriter:
    """The engine's writing half: :meth:`rate_batch` and the chunk writers behind every rating."""

    storage: Storage
    notifications: Notifications
    #: Pause the cyclic garbage collector while a chunk is rated and stored (see :func:`cyclic_gc_paused`).
    pause_gc: bool

    if TYPE_CHECKING:

        def _rate_chunk(
            self,
            pending: list[tuple[str, UsageEvent]],
            raise_rejects: bool,
            held: Reservation | None = None,
            releases: list[Transaction] | None = None,
            read: dict[StateKey, Decimal] | None = None,
        ) -> tuple[list[RatedEvent], list[Rejection], int, WalletMoves, dict[tuple[str, str], dt.datetime]]: ...

        def _reprice(self, late: dict[tuple[str, str], dt.datetime]) -> list[Rejection]: ...

        def customers_moved(self) -> bool: ...

    def _gc_paused(self) -> contextlib.AbstractContextManager[None]:
        return cyclic_gc_paused() if self.pause_gc else contextlib.nullcontext()

    def rate_batch(
        self,
        items: Iterable[UsageEvent | Sourced | Pause],
        *,
        strict: bool = False,
        chunk_size: int = 5_000,
        chunk_bytes: int = CHUNK_BYTES,
        progress: Callable[[int], None] | None = None,
    ) -> BatchReport:
        """Rate and post a stream of events (or records from :mod:`rating.events` readers).

        Not strict: valid events are posted in atomic chunks of ``chunk_size`` records
        or ``chunk_bytes`` bytes of records as read (a chunk ends early at a
        :data:`~rating.events.PAUSE` of a live stream) and the others listed
        in ``rejected``. Strict: one bad record and nothing at all is posted.
        ``progress`` is called with the number of records read after each chunk.
        """
        if strict and self.storage.rolls_back:
            return self._rate_strictly(items, chunk_size, chunk_bytes, progress)
        report = BatchReport()
        concurrent = True  # chunks are priced outside the write scope until one has to be priced inside it
        for chunk, read in self._chunks(items, report, chunk_size, chunk_bytes, whole=strict):
            if strict and report.rejected:  # price the valid ones too, posting nothing: every refusal in one pass
                self._post(chunk, report, strict=True)
            else:
                concurrent = concurrent and not strict and self._post_concurrently(chunk, report)
                if not concurrent:
                    self._post(chunk, report, strict=strict)
            if progress:
                progress(read)
        return report

    def _rate_strictly(
        self,
        items: Iterable[UsageEvent | Sourced | Pause],
        chunk_size: int,
        chunk_bytes: int,
        progress: Callable[[int], None] | None,
    ) -> BatchReport:
        """All or nothing in bounded memory: every chunk is stored inside one write transaction, rolled back
        when any record is refused (every refusal is still found, in one pass). Plugins hear of the ratings
        only once the transaction commits."""
        report = BatchReport()
        report.deferred = []
        try:
            with self.storage.writing():
                for chunk, read in self._chunks(items, report, chunk_size, chunk_bytes, whole=False):
                    self._post(chunk, report, strict=True)
                    if progress:
                        progress(read)
                if report.rejected:
                    raise _Abandoned
        except _Abandoned:
            return BatchReport(rejected=report.rejected)
        deferred, report.deferred = report.deferred, None
        for fresh, wallets in deferred:
            self._notify(fresh, wallets)
        return report

    @staticmethod
    def _chunks(
        items: Iterable[UsageEvent | Sourced | Pause],
        report: BatchReport,
        chunk_size: int,
        chunk_bytes: int,
        *,
        whole: bool,
    ) -> Iterator[tuple[list[tuple[str, UsageEvent]], int]]:
        """The events of ``items`` in chunks (with the records read so far), ``report`` taking the invalid
        records: a chunk ends at ``chunk_size`` records, ``chunk_bytes`` bytes of them as read, or a
        :data:`~rating.events.PAUSE` of a live stream; ``whole``: one chunk of everything."""
        pending: list[tuple[str, UsageEvent]] = []
        pending_bytes = 0  # of the pending records in their source: large records end a chunk sooner
        read = 0
        for item in items:
            if isinstance(item, Pause):
                if pending and not whole:
                    yield pending, read
                    pending, pending_bytes = [], 0
                continue
            read += 1
            if isinstance(item, UsageEvent):
                pending.append((f"event {item.id}", item))
            elif item.event is not None:
                pending.append((item.location, item.event))
                pending_bytes += item.size
            else:
                report.rejected.append(Rejection(item.location, Refusal.INVALID_RECORD, item.error or "invalid record"))
            if (len(pending) >= chunk_size or pending_bytes >= chunk_bytes) and not whole:
                yield pending, read
                pending, pending_bytes = [], 0
        yield pending, read

    def _post(
        self,
        pending: list[tuple[str, UsageEvent]],
        report: BatchReport,
        *,
        strict: bool,
        raise_rejects: bool = False,
        held: Reservation | None = None,
    ) -> list[RatedEvent]:
        """Rate ``pending`` and store it in one write transaction.

        Rating reads period state, closed periods and wallet balances inside the
        storage's write scope, where no other writer can move them, so concurrent
        writers wait for each other instead of re-rating and never give up; what
        it read there is not read again as it writes (``checked``), except the
        wallet limits, checked once more against the stored balances. The scope
        is the chunk's customers where storage locks customers; a chunk that
        needs more (see :meth:`_post_in`) is rated again under the global scope.
        """
        storage = self.storage
        nested = storage.in_write_scope  # the caller's scope: joined, the chunk's customers checked against it
        try:
            if nested or storage.locks_customers:
                try:
                    return self._post_in(
                        frozenset(event.customer for _, event in pending), pending, report, strict, raise_rejects, held
                    )
                except ScopeConflict:
                    if nested:
                        raise  # the caller's scope is rolled back: its owner rates again under the global scope
            return self._post_in(None, pending, report, strict, raise_rejects, held)
        except _Unrepriced as unrepriced:
            if nested or len(pending) == 1:  # nothing of it stands alone: the strict batch around it is abandoned
                return self._refuse_unrepriced(pending, report, unrepriced.refused, raise_rejects)
            # Rolled back: each event again on its own, so that only the late one is refused.
            return [rated for item in pending for rated in self._post([item], report, strict=strict, held=held)]

    @staticmethod
    def _refuse_unrepriced(
        pending: list[tuple[str, UsageEvent]], report: BatchReport, refused: list[Rejection], raise_rejects: bool
    ) -> list[RatedEvent]:
        """Refuse ``pending`` (one late event, or a strict chunk) with what re-pricing its period refused."""
        first = refused[0]
        reason = f"its period cannot be re-priced for the order of arrival ({first.location}: {first.reason})"
        if raise_rejects:
            raise EventError(first.code, reason)
        report.rejected.extend(Rejection(location, first.code, reason) for location, _ in pending)
        return []

    def _post_in(
        self,
        customers: frozenset[str] | None,
        pending: list[tuple[str, UsageEvent]],
        report: BatchReport,
        strict: bool,
        raise_rejects: bool,
        held: Reservation | None,
    ) -> list[RatedEvent]:
        """:meth:`_post` in the write scope of ``customers`` (None: global). Under customer locks a chunk that
        re-prices late arrivals (a rerate, which takes the global scope) or draws another customer's wallet
        raises :class:`~rating.storage.ScopeConflict`, nothing written, for the caller to rate it globally."""
        with self.storage.writing(customers), localcontext(MONEY_CONTEXT), self._gc_paused():
            releases: list[Transaction] = []
            ratings, rejected, duplicates, wallets, late = self._rate_chunk(pending, raise_rejects, held, releases)
            if strict and (rejected or report.rejected):
                report.rejected.extend(rejected)
                return []
            scope = self.storage.scoped_to
            if scope is not None and (late or any(customer_of(account) not in scope for account, _ in wallets)):
                raise ScopeConflict("the chunk reads or writes beyond its customers: rate it under the global scope")
            fresh = self._record(ratings, dict.fromkeys(wallets, ZERO))
            self.storage.append(releases, checked=held is not None)  # the reservation was found open, unreleased
            self._announce(fresh, wallets)
            refused = self._reprice(late)
            if refused:
                raise _Unrepriced(refused)
        report.rejected.extend(rejected)
        self._stored(report, len(ratings) + duplicates, fresh, wallets)
        return fresh

    def _post_concurrently(self, pending: list[tuple[str, UsageEvent]], report: BatchReport) -> bool:
        """Rate ``pending`` outside the write scope and store it if nothing it read has moved; False if not stored.

        Writers over different customers then price at the same time, and write
        side by side where storage locks customers (the write scope is the
        chunk's customers). Only a chunk rated without a refusal and
        paying from no wallet is stored this way (a refusal or a wallet draw may
        depend on what another writer is changing), and only when, inside the
        write scope, none of its events has been rated, none of its periods
        closed and no period state it read moved meanwhile (not even looked at
        when the storage's :meth:`~rating.storage.Storage.change_marker` shows
        that no other writer committed), and no other customer's writer stored
        one of its event ids meanwhile. Otherwise nothing is stored and False
        tells the caller to rate the chunk inside the write scope.
        """
        read: dict[StateKey, Decimal] = {}
        marker = self.storage.change_marker()
        with localcontext(MONEY_CONTEXT), self._gc_paused():
            ratings, rejected, duplicates, wallets, late = self._rate_chunk(pending, raise_rejects=False, read=read)
            if rejected or wallets or late:
                return False
            try:
                with self.storage.writing({rating.event.customer for rating in ratings}):
                    unmoved = marker is not None and self.storage.change_marker() == marker  # no one else wrote
                    if not unmoved and self._overtaken(ratings, read):
                        return False
                    fresh = self._record(ratings)
                    self._announce(fresh, wallets)
            except ScopeConflict:
                return False
        self._stored(report, len(ratings) + duplicates, fresh, wallets)
        return True

    def _record(
        self, ratings: list[RatedEvent], limits: dict[tuple[str, str], Decimal] | None = None
    ) -> list[RatedEvent]:
        """Store ``ratings``, rated inside the current write scope, as the records storage keeps; those new.

        The boundary between pricing and storage: the records hold data only, and explanation text only
        for storage that keeps it (the rest is rendered from the catalog when read).
        """
        text = self.storage.keeps_explanations
        records = [event_record(rating, text) for rating in ratings]
        fresh = self.storage.record(records, limits, checked=True)
        if len(fresh) == len(ratings):  # checked: all of them, as the storage was handed them
            return ratings
        rated = {id(record): rating for record, rating in zip(records, ratings, strict=True)}
        return [rated[id(record)] for record in fresh]

    def _overtaken(self, ratings: list[RatedEvent], read: dict[StateKey, Decimal]) -> bool:
        """Whether another writer stored what ``ratings`` were rated without: a change of the stored customers
        (their terms may have changed), one of their events, the close of one of their periods, or a move of a
        period state they ``read`` (rollover carries and caps read keys no rating records)."""
        storage = self.storage
        if self.customers_moved() or storage.rated_events(r.event.id for r in ratings):
            return True
        if storage.closed_periods({(r.event.customer, r.period) for r in ratings}):
            return True
        stored = storage.period_states(read)
        return any((stored[key].quantity if key in stored else ZERO) != quantity for key, quantity in read.items())

    def _stored(
        self,
        report: BatchReport,
        accepted: int,
        fresh: list[RatedEvent],
        wallets: dict[tuple[str, str], tuple[Decimal, Decimal]],
    ) -> None:
        """Count what a chunk stored (``fresh`` of ``accepted``) and tell plugins about it (later, when the
        report defers it until a transaction around several chunks commits)."""
        report.duplicates += accepted - len(fresh)
        with localcontext(MONEY_CONTEXT):
            for rating in fresh:
                report._add(rating)
        if report.deferred is not None:
            report.deferred.append((fresh, wallets))
        else:
            self._notify(fresh, wallets)

    def _announce(self, fresh: list[RatedEvent], wallets: WalletMoves) -> None:
        """Write the webhook messages of what ``fresh`` crossed, in the write scope that stores it."""
        messages = self.notifications.announcements(fresh, wallets)
        if messages:
            self.storage.announce(messages)

    def _notify(self, fresh: list[RatedEvent], wallets: WalletMoves) -> None:
        self.notifications.notify(fresh, wallets)
