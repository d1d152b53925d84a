"""The rating engine: events in, charges and balanced ledger transactions out.

Every pricing model defines a period price ``P(q)``; the charge of an event is
``P(after) - P(before)`` over the period state of its customer, meter, group
and period. Per-event charges therefore always add up to the price of the
period's total, whatever the tiers and whatever the order of events.

- :meth:`Engine.quote` prices an event against stored state and writes nothing.
- :meth:`Engine.rate` prices and posts one event, idempotently.
- :meth:`Engine.rate_batch` does the same for a stream, in atomic chunks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from rating.accounts import customer_of
from rating.catalog import Catalog
from rating.charges import RatedEvent, StateKey
from rating.compiled import running_total_key
from rating.errors import EventConflict, EventError, RatingError, ReservationError
from rating.events import CHUNK_BYTES, Pause, Sourced, UsageEvent
from rating.ledger import Transaction
from rating.meters import PeriodState
from rating.money import MONEY_CONTEXT, ZERO, plain
from rating.periods import ONE_TICK, bounds_of, zone
from rating.pipeline import Mode, Pipeline, Wallet
from rating.policies import ClosedLookup, arrived_late
from rating.pricebook import Pricebook
from rating.pricer import Pricer, StateLookup, Terms, advance
from rating.refusals import Refusal
from rating.registry import Registry
from rating.statekeys import LATEST, SPEND
from rating.storage.base import Storage
from rating.wallet import Grant, Reservation, Wallets


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was not posted, where it came from, and why."""

    location: str
    code: Refusal
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.code}: {self.reason}"


@dataclass
class BatchReport:
    """What a batch did: how many events were posted or already there, what was rejected, totals."""

    posted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    totals: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    #: What plugins are told once the transaction around a strict batch commits (None: tell them at once).
    deferred: list[tuple[list[RatedEvent], dict[tuple[str, str], tuple[Decimal, Decimal]]]] | None = field(
        default=None, repr=False, compare=False
    )

    def _add(self, rating: RatedEvent) -> None:
        """Count ``rating`` in; call it in the money context (the totals may pass 28 digits)."""
        customer = rating.event.customer
        self.posted += 1
        self.events[customer] = self.events.get(customer, 0) + 1
        for charge in rating.charges:
            key = (customer, charge.asset)
            self.totals[key] = self.totals.get(key, ZERO) + charge.amount


class _Abandoned(Exception):
    """Rolls back the write transaction of a strict batch that refused a record."""


#: How running totals were named before charges had identities: ``total:HOLDER[INDEX]``, then ``:byok`` or not.
LEGACY_TOTAL = re.compile(r"total:([A-Za-z0-9_.\-]+)\[(\d+)\](:byok)?")


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


class Engine:
    """Rates events by one pricebook (or its versions, a :class:`~rating.catalog.Catalog`) into one storage."""

    def __init__(
        self,
        pricebook: Pricebook | Catalog,
        storage: Storage,
        registry: Registry | None = None,
        *,
        future_tolerance: dt.timedelta | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.catalog = pricebook if isinstance(pricebook, Catalog) else Catalog([pricebook])
        self.storage = storage
        self.registry = registry or Registry.load()
        self.clock = clock
        hooks = self.registry.manager.hook
        #: The pure pricer this engine composes with policies and the poster.
        enrich = hooks.rating_enrich_event if self.registry.enriches_events else None
        self.pricer = Pricer(self.catalog, enrich, describe=storage.keeps_explanations, check_inputs=True)
        self._posted = hooks.rating_transaction_posted if hooks.rating_transaction_posted.get_hookimpls() else None
        self._alerts = bool(hooks.rating_spend_alert.get_hookimpls())
        self._top_ups = bool(hooks.rating_top_up_needed.get_hookimpls())
        #: Billing and quotes: the same pipeline, two declared subsets of its policies.
        now = lambda: self.clock()  # noqa: E731 -- the engine's clock, even when a caller replaces it
        self.pipeline = Pipeline(self.pricer, Mode.BILL, future_tolerance=future_tolerance, clock=now)
        self.quoting = Pipeline(self.pricer, Mode.QUOTE, clock=now)
        self._adopt_legacy_totals()

    @property
    def future_tolerance(self) -> dt.timedelta | None:
        """Events stamped further in the future than this (by ``clock``) are refused; None accepts any time
        (back-filling and simulations rate whatever they are given)."""
        return self.pipeline.future_tolerance

    @future_tolerance.setter
    def future_tolerance(self, tolerance: dt.timedelta | None) -> None:
        self.pipeline.future_tolerance = tolerance

    @property
    def pricebook(self) -> Pricebook:
        """The latest version of the pricebook."""
        return self.catalog.latest

    # -- public API ------------------------------------------------------------

    def quote(self, event: UsageEvent) -> RatedEvent:
        """Price ``event`` against the stored period state, without writing anything."""
        with localcontext(MONEY_CONTEXT):
            _, resolved, states, closed = self._read_ahead([("quote", event)], rated=False)
            lookup, is_closed = self._lookups(states, closed)
            return self.quoting.run(event, lookup, is_closed, resolved[0]).rating

    def rate(self, event: UsageEvent) -> RatedEvent | None:
        """Price and post ``event``. Returns None when it was already posted with the same content.

        Raises :class:`~rating.errors.EventError` for an event that cannot be
        rated and :class:`~rating.errors.EventConflict` for an id reused with
        different content; nothing is posted then.
        """
        report = BatchReport()
        ratings = self._post([("event", event)], report, strict=True, raise_rejects=True)
        return ratings[0] if ratings else None

    def authorize(
        self, estimate: UsageEvent, reservation: str | None = None, timeout: dt.timedelta = dt.timedelta(minutes=5)
    ) -> Reservation:
        """Hold the quoted price of a metered request before the work runs; its first phase.

        ``estimate`` is the request as expected (the tokens asked for, say); its
        price, quoted against the stored state, is reserved from the customer's
        wallet under ``reservation`` (default: the event id) for ``timeout``. The
        second phase is :meth:`rate_reserved` with the event as it ran. Raises
        :class:`~rating.errors.ReservationError` for a price in several assets or
        of zero (a reservation holds one positive amount of one asset), and
        :class:`~rating.errors.InsufficientFunds` when the wallet cannot hold it;
        nothing is posted then. A retry with the same id returns the same hold.
        """
        totals = self.quote(estimate).total()
        if len(totals) > 1:
            raise ReservationError(
                f"request {estimate.id} is priced in {', '.join(sorted(totals))}: a reservation holds one asset"
            )
        asset, amount = next(iter(totals.items()), ("", ZERO))
        if amount <= 0:
            raise ReservationError(
                f"request {estimate.id} is priced at {plain(amount)}{' ' + asset if asset else ''}: nothing to hold"
            )
        wallets = Wallets(self.storage, self.clock)
        return wallets.reserve(estimate.customer, asset, amount, reservation or estimate.id, timeout)

    def rate_reserved(self, event: UsageEvent, reservation: str) -> RatedEvent | None:
        """Rate a metered request's event and pay it from its reservation, in one commit.

        The second phase of a metered request (the first is
        :meth:`Wallets.reserve <rating.wallet.Wallets.reserve>` of the estimate
        before the work): the held funds pay the rated charges, the rest is
        released to where it was drawn from, and what exceeds the hold is paid as
        any rating is (the wallet, or owed on the receivable). Raises
        :class:`~rating.errors.ReservationError` when the reservation is unknown,
        expired or another customer's, and :class:`~rating.errors.EventError` when
        the event is refused; nothing is posted then and the reservation stays
        open. Returns None for a replay of a request already rated and settled.
        """
        with self.storage.writing():
            held = Wallets(self.storage, self.clock).reservation(reservation)
            if held is None:
                already = self.storage.rated_events([event.id]).get(event.id)
                if already is not None and already.canonical_json() == event.canonical_json():
                    return None
                raise ReservationError(f"reservation {reservation} is unknown, or already settled or voided")
            if held.customer != event.customer:
                raise ReservationError(
                    f"reservation {reservation} holds funds of {held.customer!r}, not of {event.customer!r}"
                )
            if held.expires_at <= self.clock():
                raise ReservationError(f"reservation {reservation} expired at {held.expires_at.isoformat()}")
            ratings = self._post([("event", event)], BatchReport(), strict=True, raise_rejects=True, held=held)
        return ratings[0] if ratings else None

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

    # -- internals ---------------------------------------------------------------

    def _adopt_legacy_totals(self) -> None:
        """Give running totals of a migrated database (kept as ``total:HOLDER[INDEX]``) their charge identities.

        The index is read in the version in force when the total's period started; a total
        whose charge that version does not have is left aside, never guessed.
        """
        renames = {}
        for customer, old, period, _ in self.storage.legacy_running_totals():
            match = LEGACY_TOTAL.fullmatch(old)
            if match is None:
                continue
            holder, index, suffix = match.group(1), int(match.group(2)), match.group(3) or ""
            book = self.catalog.latest
            try:
                _, start, _ = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
            except ValueError:
                continue
            version = self.catalog.in_force(start) or self.catalog.versions[0]
            holding = version.plans.get(holder) or version.contracts.get(holder)
            if holding is not None and index < len(holding.charges):
                renames[customer, old, period] = running_total_key(holder, holding.charges[index], version) + suffix
        if renames:
            self.storage.adopt_running_totals(renames)

    def _lookups(
        self,
        states: dict[StateKey, PeriodState],
        closed: dict[tuple[str, str], bool],
        read: dict[StateKey, Decimal] | None = None,
    ) -> tuple[StateLookup, ClosedLookup]:
        """Views of period state and closed periods: what was read ahead, else read from storage and kept
        (and into ``read``, the quantity each key had when read)."""
        storage = self.storage

        def lookup(key: StateKey) -> PeriodState:
            state = states.get(key)
            if state is None:
                state = states[key] = storage.period_states([key]).get(key) or PeriodState(ZERO)
                if read is not None:
                    read[key] = state.quantity
            return state

        def is_closed(customer: str, period: str) -> bool:
            found = closed.get((customer, period))
            if found is None:
                found = closed[customer, period] = bool(storage.closed_periods([(customer, period)]))
            return found

        return lookup, is_closed

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
        wallet limits, checked once more against the stored balances.
        """
        with self.storage.writing(), localcontext(MONEY_CONTEXT), cyclic_gc_paused():
            releases: list[Transaction] = []
            ratings, rejected, duplicates, wallets, late = self._rate_chunk(pending, raise_rejects, held, releases)
            if strict and (rejected or report.rejected):
                report.rejected.extend(rejected)
                return []
            fresh = self.storage.record(ratings, limits=dict.fromkeys(wallets, ZERO), checked=True)
            self.storage.append(releases, checked=held is not None)  # the reservation was found open, unreleased
            self._reprice(late)
        report.rejected.extend(rejected)
        self._stored(report, len(ratings) + duplicates, fresh, wallets)
        return fresh

    def _post_concurrently(self, pending: list[tuple[str, UsageEvent]], report: BatchReport) -> bool:
        """Rate ``pending`` outside the write scope and store it if nothing it read has moved; False if not stored.

        Writers over different customers then price at the same time and wait
        for each other only to write. Only a chunk rated without a refusal and
        paying from no wallet is stored this way (a refusal or a wallet draw may
        depend on what another writer is changing), and only when, inside the
        write scope, none of its events has been rated, none of its periods
        closed and no period state it read moved meanwhile (not even looked at
        when the storage's :meth:`~rating.storage.Storage.change_marker` shows
        that no other writer committed). Otherwise nothing is stored and False
        tells the caller to rate the chunk inside the write scope.
        """
        read: dict[StateKey, Decimal] = {}
        marker = self.storage.change_marker()
        with localcontext(MONEY_CONTEXT), cyclic_gc_paused():
            ratings, rejected, duplicates, wallets, late = self._rate_chunk(pending, raise_rejects=False, read=read)
            if rejected or wallets or late:
                return False
            with self.storage.writing():
                unmoved = marker is not None and self.storage.change_marker() == marker  # no one else wrote
                if not unmoved and self._overtaken(ratings, read):
                    return False
                fresh = self.storage.record(ratings, checked=True)
        self._stored(report, len(ratings) + duplicates, fresh, wallets)
        return True

    def _overtaken(self, ratings: list[RatedEvent], read: dict[StateKey, Decimal]) -> bool:
        """Whether another writer stored what ``ratings`` were rated without: one of their events, the close
        of one of their periods, or a move of a period state they ``read`` (rollover carries and caps read
        keys no rating records)."""
        storage = self.storage
        if storage.rated_events(r.event.id for r in ratings):
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

    def _notify(self, fresh: list[RatedEvent], wallets: dict[tuple[str, str], tuple[Decimal, Decimal]]) -> None:
        """Tell plugins of stored ratings, spend alerts crossed and wallets to top up."""
        if self._posted is not None:
            for rating in fresh:
                self._posted(transaction=rating.transaction)
        self._alert(fresh, wallets)

    def _rate_chunk(
        self,
        pending: list[tuple[str, UsageEvent]],
        raise_rejects: bool,
        held: Reservation | None = None,
        releases: list[Transaction] | None = None,
        read: dict[StateKey, Decimal] | None = None,
    ) -> tuple[
        list[RatedEvent],
        list[Rejection],
        int,
        dict[tuple[str, str], tuple[Decimal, Decimal]],
        dict[tuple[str, str], dt.datetime],
    ]:
        """Rate ``pending`` against storage, in time order; ``read`` receives the quantity of each period state
        key it read.

        Also returns the customer periods to re-price, with the start of each: those where an event arrived
        before events already rated in them and their order decides the bill (see :meth:`_note_late`).
        """
        # Time order (ties by id) within the chunk; rejections are reported in the order of the input.
        order = {id(item): index for index, item in enumerate(pending)}
        pending = sorted(pending, key=lambda item: (item[1].timestamp, item[1].id))
        storage = self.storage
        pipeline = self.pipeline
        latest = pipeline.latest()
        already, resolved, states, closed = self._read_ahead(pending)
        if read is not None:
            read.update((key, state.quantity) for key, state in states.items())
        lookup, is_closed = self._lookups(states, closed, read)
        wallets: dict[tuple[str, str], Decimal] = {}  # wallet balances as this chunk leaves them
        opening: dict[tuple[str, str], Decimal] = {}  # and as it found them

        customer_grants: dict[str, list[Grant]] = {}

        def grants_of(customer: str) -> list[Grant]:
            if customer not in customer_grants:
                customer_grants[customer] = Wallets(storage).grants(customer)
            return customer_grants[customer]

        def wallet_balance(account: str, asset: str) -> Decimal:
            if (account, asset) not in wallets:
                wallets[account, asset] = storage.balances([account]).get((account, asset), ZERO)
                opening[account, asset] = wallets[account, asset]
            return wallets[account, asset]

        wallet = Wallet(wallet_balance, grants_of)
        ratings: list[RatedEvent] = []
        rejected: list[tuple[int, Rejection]] = []
        late: dict[tuple[str, str], dt.datetime] = {}
        duplicates = 0
        for item, terms in zip(pending, resolved, strict=True):
            location, event = item
            previous = already.get(event.id)
            if previous is not None:
                if previous.canonical_json() != event.canonical_json():
                    reason = f"event {event.id} was already rated with different content"
                    if raise_rejects:
                        raise EventConflict(reason)
                    rejected.append((order[id(item)], Rejection(location, Refusal.DUPLICATE_CONFLICT, reason)))
                else:
                    duplicates += 1
                continue
            try:
                rating, release, funding = pipeline.run(
                    event, lookup, is_closed, terms, latest=latest, held=held, wallet=wallet
                )
            except ArithmeticError as error:  # decimal overflow or invalid operation on absurd prices
                refused = EventError(Refusal.NOT_EXACT, f"cannot be priced exactly: {type(error).__name__}")
                if raise_rejects:
                    raise refused from None
                rejected.append((order[id(item)], Rejection(location, refused.code, str(refused))))
                continue
            except EventError as error:
                if raise_rejects:
                    raise
                rejected.append((order[id(item)], Rejection(location, error.code, str(error))))
                continue
            if funding is not None:
                wallets.update(funding.balances)
            if release is not None and releases is not None:
                releases.append(release)
            advance(lookup, event.customer, rating.usage)
            already[event.id] = event
            ratings.append(rating)
            self._note_late(rating, late)
        rejected.sort(key=lambda numbered: numbered[0])
        refusals = [rejection for _, rejection in rejected]
        return ratings, refusals, duplicates, {key: (opening[key], wallets[key]) for key in wallets}, late

    def _note_late(self, rating: RatedEvent, late: dict[tuple[str, str], dt.datetime]) -> None:
        """Add ``rating``'s customer period to ``late`` when its event arrived before events already rated there
        with other terms between, or under charges that price by what came before (late usage moved into a
        later period comes first in it, by its time, as rerate takes it)."""
        for arrival in reversed(rating.usage):  # policy lines come last
            if arrival.meter is LATEST:
                break
        latest = arrived_late(arrival)
        if latest is None:  # in time order: the common case
            return
        customer, at = rating.event.customer, rating.event.timestamp
        if (customer, rating.period) in late:
            return
        version = self.pricer.version_at(at)
        sensitive = version.order_sensitive or self.pricer.version_at(latest).order_sensitive
        if sensitive or self.pricer.terms_change_between(customer, at, latest):
            book = version.book
            _, start, _ = bounds_of(rating.period, zone(book.timezone_of(customer)), book.anchor_of(customer))
            late[customer, rating.period] = start

    def _reprice(self, late: dict[tuple[str, str], dt.datetime]) -> None:
        """Re-price the customer periods in ``late`` in place, inside the write scope that rated into them.

        The same re-pricing as an open-period rerate: every event of the period in time order, the difference
        posted per event as a correction dated at the event, the period state replaced by what it leaves.
        Rating then ends where rating the same events in time order would have.
        """
        if late:
            from rating.rerate import rerate  # rerate is a wing over the engine; only this mode reaches up

            since, until = min(late.values()), max(late.values()) + ONE_TICK
            rerate(
                self.storage, self.catalog, self.registry, since, until, clock=self.clock, only=set(late), arrival=True
            )

    def _read_ahead(
        self, pending: list[tuple[str, UsageEvent]], *, rated: bool = True
    ) -> tuple[
        dict[str, UsageEvent],
        list[Terms | EventError | None],
        dict[StateKey, PeriodState],
        dict[tuple[str, str], bool],
    ]:
        """Which events are already rated (when ``rated``), each event's terms (or why it has none), and the
        period state and closed periods they read.

        One :meth:`~rating.storage.Storage.read_ahead` for the whole chunk instead
        of a query per key, for storage that :attr:`~rating.storage.Storage.reads_ahead`
        (on PostgreSQL a round trip per key was over a third of a batch);
        otherwise nothing is resolved ahead.
        """
        ids = [event.id for _, event in pending] if rated else []
        if not self.storage.reads_ahead:
            return self.storage.rated_events(ids) if ids else {}, [None] * len(pending), {}, {}
        resolved: list[Terms | EventError | None] = []
        keys: set[StateKey] = set()
        for _, event in pending:
            try:
                terms = self.pricer.terms(event)
            except EventError as error:
                resolved.append(error)
                continue
            resolved.append(terms)
            with contextlib.suppress(EventError):  # pricing raises it again, after the policies before it
                keys.update(Pricer.state_keys(terms))
        periods = {(terms.event.customer, terms.period) for terms in resolved if isinstance(terms, Terms)}
        already, stored, shut = self.storage.read_ahead(ids, keys, periods)
        states = {key: stored.get(key) or PeriodState(ZERO) for key in keys}
        return already, resolved, states, {pair: pair in shut for pair in periods}

    def _alert(self, fresh: list[RatedEvent], wallets: dict[tuple[str, str], tuple[Decimal, Decimal]]) -> None:
        """Tell plugins of spend alerts crossed and wallets to top up by what was just stored."""
        hook = self.registry.manager.hook
        for rating in fresh if self._alerts else ():
            spec = self.pricebook.spec_of(rating.event.customer)
            alert = spec.spend_alert if spec is not None else None
            for usage in rating.usage:
                if usage.meter == SPEND and alert is not None and usage.before < alert <= usage.after:
                    hook.rating_spend_alert(
                        customer=rating.event.customer,
                        period=usage.period,
                        spent=usage.after,
                        threshold=alert,
                        asset=self.pricer.version_at(rating.event.timestamp).billed_asset[rating.plan],
                    )
        for (account, asset), (before, after) in wallets.items() if self._top_ups else ():
            customer = customer_of(account)
            assert customer is not None
            spec = self.pricebook.spec_of(customer)
            if spec is not None and spec.top_up is not None and -before >= spec.top_up.below > -after:
                hook.rating_top_up_needed(customer=customer, asset=asset, available=-after, amount=spec.top_up.amount)


__all__ = ["BatchReport", "Engine", "Rejection", "RatingError"]
