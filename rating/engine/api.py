"""The engine's public API and its composition: chunks of events, read ahead, through the rating pipeline.

Every pricing model defines a period price ``P(q)``; the charge of an event is
``P(after) - P(before)`` over the period state of its customer, meter, group
and period. Per-event charges therefore always add up to the price of the
period's total, whatever the tiers and whatever the order of events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from decimal import Decimal, localcontext

from rating.core.charges import RatedEvent, StateKey
from rating.core.funding import Grant, Reservation
from rating.core.pipeline import ARRIVAL, Mode, Pipeline, Wallet
from rating.core.policies import ClosedLookup, arrived_late
from rating.core.pricer import Pricer, StateLookup, Terms, advance
from rating.engine.legacy import legacy_renames
from rating.engine.metered import MeteredRequests
from rating.engine.notifications import Notifications
from rating.engine.reports import BatchReport, Rejection
from rating.engine.writer import BatchWriter
from rating.errors import EventConflict, EventError, StorageError
from rating.events import UsageEvent
from rating.ledger import Transaction
from rating.money import MONEY_CONTEXT, ZERO
from rating.periods import ONE_TICK, bounds_of, zone
from rating.pricebook.catalog import Catalog
from rating.pricebook.meters import PeriodState
from rating.pricebook.model import Pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.statekeys import LATEST
from rating.storage.base import Storage


class Engine(MeteredRequests, BatchWriter):
    """Rates events by one pricebook (or its versions, a
    :class:`~rating.pricebook.catalog.Catalog`) into one storage."""

    def __init__(
        self,
        pricebook: Pricebook | Catalog,
        storage: Storage,
        registry: Registry | None = None,
        *,
        future_tolerance: dt.timedelta | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        pause_gc: bool = False,
    ) -> None:
        """``pause_gc``: pause the process-wide cyclic garbage collector while each chunk is rated and stored
        (a large batch takes about a third less time); off by default, since it is a global side effect an embedding
        application may not want. The ``rating rate`` command sets it. Building an engine writes nothing:
        a database whose running totals are from before charges had identities is refused
        (``schema_outdated``) until ``rating db migrate -p PRICEBOOK`` (or
        :func:`~rating.engine.adopt_legacy_totals`) has given them their identities."""
        self.catalog = pricebook if isinstance(pricebook, Catalog) else Catalog([pricebook])
        if legacy_renames(storage, self.catalog):  # rating on would start those totals again from zero
            raise StorageError(
                "its running totals are from before charges had identities: run `rating db migrate -p PRICEBOOK`"
                " (or rating.engine.adopt_legacy_totals) before rating into it",
                "schema_outdated",
            )
        self.storage = storage
        self.registry = registry or Registry.load()
        self.clock = clock
        self.pause_gc = pause_gc
        #: The pricebook's versions as given, customers: blocks as seeds (the stored customers win over them).
        self.seed = self.catalog
        #: The storage's customers_version() the pricer was built at (None: the storage keeps no customers).
        self._customers_seen: int | None = None
        self._build(self.catalog, future_tolerance)
        self.refresh_customers()

    def _build(self, catalog: Catalog, future_tolerance: dt.timedelta | None) -> None:
        """The pricer, notifications and pipelines for ``catalog`` (new rate card caches)."""
        self.catalog = catalog
        hooks = self.registry.manager.hook
        #: The pure pricer this engine composes with policies and the poster.
        enrich = hooks.rating_enrich_event if self.registry.enriches_events else None
        self.pricer = Pricer(catalog, enrich, check_inputs=True)
        self.notifications = Notifications(self.registry, catalog, self.pricer)
        #: Billing and quotes: the same pipeline, two declared subsets of its policies.
        now = lambda: self.clock()  # noqa: E731 -- the engine's clock, even when a caller replaces it
        self.pipeline = Pipeline(self.pricer, Mode.BILL, future_tolerance=future_tolerance, clock=now)
        self.quoting = Pipeline(self.pricer, Mode.QUOTE, clock=now)

    def refresh_customers(self) -> bool:
        """Rate with the customers stored as data (:mod:`rating.customers`) merged over the pricebook's, rebuilding
        the pricer (with new rate cards) when the storage's customers moved since last looked; True if it did.

        One cheap read (:meth:`~rating.storage.Storage.customers_version`), done once per chunk and per quote: a
        change made by another process is seen by the next chunk.
        """
        seen = self._stored_customers()
        if seen == self._customers_seen:
            return False
        from rating.customers import Customers  # a sibling of the wallet, above storage

        catalog = Customers(self.storage, self.seed, self.clock).catalog_now()
        self._build(catalog, self.future_tolerance)
        self._customers_seen = seen
        return True

    def customers_moved(self) -> bool:
        """Whether the stored customers changed since the pricer was built (inside a write scope: a chunk priced
        before it by the customers of then is priced again)."""
        return self._stored_customers() != self._customers_seen

    def _stored_customers(self) -> int | None:
        """The storage's customers version; None for a third-party storage that keeps no customers (the
        pricebook's only)."""
        try:
            return self.storage.customers_version()
        except NotImplementedError:
            return None

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
        self.refresh_customers()
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

    # -- composition ---------------------------------------------------------------

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
        self.refresh_customers()  # before anything of the chunk is priced: another process may have changed some
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

        customer_grants: dict[str, list[Grant]] | None = None

        def grants_of(customer: str) -> list[Grant]:
            nonlocal customer_grants
            if customer_grants is None:  # the first wallet payer of the chunk reads the grants of all its customers
                customer_grants = storage.grants({event.customer for _, event in pending})
            return customer_grants.get(customer, [])

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

    def _reprice(self, late: dict[tuple[str, str], dt.datetime]) -> list[Rejection]:
        """Re-price the customer periods in ``late`` in place, inside the write scope that rated into them.

        The same re-pricing as an open-period rerate: every event of the period in time order, the difference
        posted per event as a correction dated at the event, the period state replaced by what it leaves.
        Rating then ends where rating the same events in time order would have. Returns what could not be
        re-priced (a wallet that cannot fund a correction): the caller refuses the late event then.
        """
        if late:
            from rating.engine import reprice_in_place  # the package holds the engine's one upward import

            since, until = min(late.values()), max(late.values()) + ONE_TICK
            return reprice_in_place(self.storage, self.catalog, self.registry, since, until, set(late), self.clock)
        return []

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
        otherwise nothing is resolved ahead. The keys are the pricer's (:meth:`Pricer.state_keys`) and, when
        the pipeline tracks arrival order, the period's latest event time (``policy:latest``) that
        :func:`~rating.core.policies.track_arrival` reads for every event: left to the lookup, it cost one
        query per event (a single event's rating, a round trip more).
        """
        ids = [event.id for _, event in pending] if rated else []
        if not self.storage.reads_ahead:
            return self.storage.rated_events(ids) if ids else {}, [None] * len(pending), {}, {}
        resolved: list[Terms | EventError | None] = []
        keys: set[StateKey] = set()
        arrival = ARRIVAL in self.pipeline.policies  # the latest event time of the period, read by every event
        for _, event in pending:
            try:
                terms = self.pipeline.terms(event)  # the pipeline's first step, for the whole chunk at once
            except EventError as error:
                resolved.append(error)
                continue
            resolved.append(terms)
            if arrival:
                keys.add(StateKey(event.customer, LATEST, (), terms.period))
            with contextlib.suppress(EventError):  # pricing raises it again, after the policies before it
                keys.update(Pricer.state_keys(terms))
        periods = {(terms.event.customer, terms.period) for terms in resolved if isinstance(terms, Terms)}
        already, stored, shut = self.storage.read_ahead(ids, keys, periods)
        states = {key: stored.get(key) or PeriodState(ZERO) for key in keys}
        return already, resolved, states, {pair: pair in shut for pair in periods}
