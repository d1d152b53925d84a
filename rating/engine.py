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

import dataclasses
import datetime as dt
import gc
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from rating.accounts import (
    PROVIDERS_ACCOUNT,
    cost_account,
    customer_of,
    prepaid_account,
    receivable_account,
    wallet_account,
)
from rating.catalog import Catalog
from rating.charges import BYOK_SUFFIX, Charge, RatedEvent, StateKey, Usage
from rating.compiled import CompiledVersion, running_total_key
from rating.errors import EventConflict, EventError, InsufficientFunds, PluginError, RatingError
from rating.events import Sourced, UsageEvent
from rating.ledger import Posting, Transaction
from rating.meters import PeriodState
from rating.money import MONEY_CONTEXT, ZERO
from rating.periods import bounds_of, zone
from rating.pricebook import Pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage.base import Storage
from rating.wallet import Grant, Wallets, draw_from, funding_sources

#: Period state of a customer's charges in the pricebook currency, for spend caps and alerts.
SPEND = "spend"


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

    def _add(self, rating: RatedEvent) -> None:
        """Count ``rating`` in; call it in the money context (the totals may pass 28 digits)."""
        customer = rating.event.customer
        self.posted += 1
        self.events[customer] = self.events.get(customer, 0) + 1
        for charge in rating.charges:
            key = (customer, charge.asset)
            self.totals[key] = self.totals.get(key, ZERO) + charge.amount


StateLookup = Callable[[StateKey], PeriodState]
#: How running totals were named before charges had identities: ``total:HOLDER[INDEX]``, then ``:byok`` or not.
LEGACY_TOTAL = re.compile(r"total:([A-Za-z0-9_.\-]+)\[(\d+)\](:byok)?")
#: Whether a customer's period is closed.
ClosedLookup = Callable[[str, str], bool]


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
        #: Events stamped further in the future than this (by ``clock``) are refused; None accepts any time
        #: (back-filling and simulations rate whatever they are given).
        self.future_tolerance = future_tolerance
        self.clock = clock
        self._versions = [CompiledVersion(book) for book in self.catalog.versions]
        hooks = self.registry.manager.hook
        self._enrich = hooks.rating_enrich_event if self.registry.enriches_events else None
        self._posted = hooks.rating_transaction_posted if hooks.rating_transaction_posted.get_hookimpls() else None
        self._alerts = bool(hooks.rating_spend_alert.get_hookimpls())
        self._top_ups = bool(hooks.rating_top_up_needed.get_hookimpls())
        self._adopt_legacy_totals()

    @property
    def pricebook(self) -> Pricebook:
        """The latest version of the pricebook."""
        return self.catalog.latest

    # -- public API ------------------------------------------------------------

    def quote(self, event: UsageEvent) -> RatedEvent:
        """Price ``event`` against the stored period state, without writing anything."""
        with localcontext(MONEY_CONTEXT):
            return self._price(event, self._stored_state, self._stored_closed)

    def rate(self, event: UsageEvent) -> RatedEvent | None:
        """Price and post ``event``. Returns None when it was already posted with the same content.

        Raises :class:`~rating.errors.EventError` for an event that cannot be
        rated and :class:`~rating.errors.EventConflict` for an id reused with
        different content; nothing is posted then.
        """
        report = BatchReport()
        ratings = self._post([("event", event)], report, strict=True, raise_rejects=True)
        return ratings[0] if ratings else None

    def rate_batch(
        self,
        items: Iterable[UsageEvent | Sourced],
        *,
        strict: bool = False,
        chunk_size: int = 5_000,
        progress: Callable[[int], None] | None = None,
    ) -> BatchReport:
        """Rate and post a stream of events (or records from :mod:`rating.events` readers).

        Not strict: valid events are posted in atomic chunks and the others listed
        in ``rejected``. Strict: one bad record and nothing at all is posted.
        ``progress`` is called with the number of records read after each chunk.
        """
        report = BatchReport()
        pending: list[tuple[str, UsageEvent]] = []
        read = 0
        for item in items:
            read += 1
            if isinstance(item, UsageEvent):
                pending.append((f"event {item.id}", item))
            elif item.event is not None:
                pending.append((item.location, item.event))
            else:
                report.rejected.append(Rejection(item.location, Refusal.INVALID_RECORD, item.error or "invalid record"))
            if len(pending) >= chunk_size and not strict:
                self._post(pending, report, strict=False)
                pending = []
                if progress:
                    progress(read)
        if not (strict and report.rejected):
            self._post(pending, report, strict=strict)
        if progress:
            progress(read)
        return report

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

    def _stored_closed(self, customer: str, period: str) -> bool:
        return bool(self.storage.closed_periods([(customer, period)]))

    def _stored_state(self, key: StateKey) -> PeriodState:
        return self.storage.period_states([key]).get(key) or PeriodState(ZERO)

    def _post(
        self,
        pending: list[tuple[str, UsageEvent]],
        report: BatchReport,
        *,
        strict: bool,
        raise_rejects: bool = False,
    ) -> list[RatedEvent]:
        """Rate ``pending`` and store it in one write transaction.

        Rating reads period state, closed periods and wallet balances inside the
        storage's write scope, where no other writer can move them, so concurrent
        writers wait for each other instead of re-rating and never give up. The
        storage still re-checks state, closed periods and wallet limits as it writes.
        """
        with self.storage.writing(), localcontext(MONEY_CONTEXT), cyclic_gc_paused():
            ratings, rejected, duplicates, wallets = self._rate_chunk(pending, raise_rejects)
            if strict and (rejected or report.rejected):
                report.rejected.extend(rejected)
                return []
            fresh = self.storage.record(ratings, limits=dict.fromkeys(wallets, ZERO))
        report.rejected.extend(rejected)
        report.duplicates += duplicates + len(ratings) - len(fresh)
        with localcontext(MONEY_CONTEXT):
            for rating in fresh:
                report._add(rating)
        if self._posted is not None:
            for rating in fresh:
                self._posted(transaction=rating.transaction)
        self._alert(fresh, wallets)
        return fresh

    def _rate_chunk(
        self, pending: list[tuple[str, UsageEvent]], raise_rejects: bool
    ) -> tuple[list[RatedEvent], list[Rejection], int, dict[tuple[str, str], tuple[Decimal, Decimal]]]:
        storage = self.storage
        latest = None if self.future_tolerance is None else self.clock() + self.future_tolerance
        already = storage.rated_events(event.id for _, event in pending)
        states: dict[StateKey, PeriodState] = {}
        wallets: dict[tuple[str, str], Decimal] = {}  # wallet balances as this chunk leaves them
        opening: dict[tuple[str, str], Decimal] = {}  # and as it found them

        closed: dict[tuple[str, str], bool] = {}

        def is_closed(customer: str, period: str) -> bool:
            found = closed.get((customer, period))
            if found is None:
                found = closed[customer, period] = self._stored_closed(customer, period)
            return found

        def lookup(key: StateKey) -> PeriodState:
            state = states.get(key)
            if state is None:
                state = states[key] = self._stored_state(key)
            return state

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

        ratings: list[RatedEvent] = []
        rejected: list[Rejection] = []
        duplicates = 0
        for location, event in pending:
            previous = already.get(event.id)
            if previous is not None:
                if previous.canonical_json() != event.canonical_json():
                    reason = f"event {event.id} was already rated with different content"
                    if raise_rejects:
                        raise EventConflict(reason)
                    rejected.append(Rejection(location, Refusal.DUPLICATE_CONFLICT, reason))
                else:
                    duplicates += 1
                continue
            try:
                if latest is not None and event.timestamp > latest:
                    raise EventError(
                        Refusal.FUTURE_TIMESTAMP,
                        f"timestamp {event.timestamp.isoformat()} is in the future beyond the"
                        f" {self.future_tolerance} tolerance",
                    )
                rating, paid = self._pay_from_wallet(self._price(event, lookup, is_closed), wallet_balance, grants_of)
            except ArithmeticError as error:  # decimal overflow or invalid operation on absurd prices
                refused = EventError(Refusal.NOT_EXACT, f"cannot be priced exactly: {type(error).__name__}")
                if raise_rejects:
                    raise refused from None
                rejected.append(Rejection(location, refused.code, str(refused)))
                continue
            except EventError as error:
                if raise_rejects:
                    raise
                rejected.append(Rejection(location, error.code, str(error)))
                continue
            for key, balance in paid.items():
                wallets[key] = balance
            for usage in rating.usage:
                state = lookup(usage.key(event.customer))
                state.quantity = usage.after
                if isinstance(usage.reading, str):
                    if state.members is None:
                        state.members = set()
                    state.members.add(usage.reading)
            already[event.id] = event
            ratings.append(rating)
        return ratings, rejected, duplicates, {key: (opening[key], wallets[key]) for key in wallets}

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
                        asset=self._version_at(rating.event.timestamp).billed_asset[rating.plan],
                    )
        for (account, asset), (before, after) in wallets.items() if self._top_ups else ():
            customer = customer_of(account)
            assert customer is not None
            spec = self.pricebook.spec_of(customer)
            if spec is not None and spec.top_up is not None and -before >= spec.top_up.below > -after:
                hook.rating_top_up_needed(customer=customer, asset=asset, available=-after, amount=spec.top_up.amount)

    @staticmethod
    def _pay_from_wallet(
        rating: RatedEvent, balance: Callable[[str, str], Decimal], grants: Callable[[str], list[Grant]]
    ) -> tuple[RatedEvent, dict[tuple[str, str], Decimal]]:
        """``rating`` with its wallet debit drawn from grants in force and purchased funds, and their new balances.

        Raises :class:`EventError` when they cannot pay it. Funding accounts hold
        credit balances (negative): none may end above zero.
        """
        customer = rating.event.customer
        wallet = wallet_account(customer)
        debits = {p.asset: p.amount for p in rating.transaction.postings if p.account == wallet and p.amount > 0}
        if not debits:
            return rating, {}
        postings = [p for p in rating.transaction.postings if not (p.account == wallet and p.asset in debits)]
        after: dict[tuple[str, str], Decimal] = {}
        for asset, need in debits.items():
            sources = funding_sources(customer, asset, rating.event.timestamp, grants(customer), balance)
            draw = draw_from(sources, need)
            if draw is None:
                have = sum((funds for _, funds in sources), ZERO)
                raise InsufficientFunds(f"customer {customer!r} has {have} {asset} available, {need} needed")
            for account, taken in draw:
                postings.append(Posting(account, asset, taken))
                after[account, asset] = balance(account, asset) + taken
        paid = dataclasses.replace(rating.transaction, postings=tuple(postings))
        return rating._replace(transaction=paid), after

    def _version_at(self, timestamp: dt.datetime) -> CompiledVersion:
        index = self.catalog.index_at(timestamp)
        if index is None:
            first = self.catalog.versions[0].version.isoformat()
            raise EventError(
                Refusal.NO_VERSION_IN_FORCE,
                f"no version of pricebook {self.catalog.name} is in force yet (the first takes effect {first})",
            )
        return self._versions[index]

    def _price(self, received: UsageEvent, lookup: StateLookup, is_closed: ClosedLookup) -> RatedEvent:
        # The event is stored as received, so a replay compares equal; enrichment is redone.
        event = received if self._enrich is None else self._enriched(received)
        version = self._version_at(event.timestamp)
        book = version.book
        customer = event.customer
        plan = version.plan_at(customer, event.timestamp)
        meters = version.meters_by_type.get(event.type)
        if not meters:
            raise EventError(Refusal.UNKNOWN_EVENT_TYPE, f"no meter counts events of type {event.type!r}")
        if version.filtered:
            meters = [(name, meter) for name, meter in meters if not meter.where or meter.counts(event)]
            if not meters:
                raise EventError(
                    Refusal.EXCLUDED_BY_FILTER,
                    f"no meter counts this {event.type} event (every meter's where filter excludes it)",
                )
        charges_by_meter, contract, contract_name = version.charges_for(customer, plan, event.timestamp)
        period = version.period(plan, customer, event.timestamp)
        if is_closed(customer, period):
            raise EventError(
                Refusal.CLOSED_PERIOD, f"period {period} of customer {customer!r} is closed; it takes no more usage"
            )
        currency = book.currency
        usage: list[Usage] = []
        charges: list[Charge] = []
        costs: list[Posting] = []
        source = event.billing_source
        # BYOK usage is metered in state of its own: it never moves platform usage up a tier.
        suffix = "" if source == "platform" else BYOK_SUFFIX
        for name, meter in meters:
            group = meter.group_of(event)
            reading = meter.reading(event)
            state_name = name + suffix
            state = lookup((customer, state_name, group, period))
            before = state.quantity
            after = meter.advance(state, reading)
            usage.append(Usage(state_name, group, period, reading, before, after))
            unit = meter.unit or name
            for cost in version.costs_by_meter.get(name, ()):
                if source in cost.billing_sources:
                    costs.append(
                        Posting(cost_account(name), cost.asset or currency, cost.for_group(group).charge(before, after))
                    )
            for total_key, charge in charges_by_meter.get(name, ()):
                if source not in charge.billing_sources:
                    continue
                pricing = charge.for_group(group)
                if pricing.rollover:
                    previous = version.previous_period(plan, customer, event.timestamp)
                    pricing = pricing.with_carry(lookup((customer, state_name, group, previous)).quantity)
                amount = uncapped = pricing.charge(before, after)
                if charge.tracks_total:
                    total_key += suffix
                    running = lookup((customer, total_key, (), period)).quantity
                    usage.append(Usage(total_key, (), period, uncapped, running, running + uncapped))
                    amount = charge.adjusted_total(running + uncapped) - charge.adjusted_total(running)
                charges.append(
                    Charge(
                        plan,
                        name,
                        group,
                        period,
                        pricing.name,
                        before,
                        after,
                        amount,
                        pricing.asset or currency,
                        unit,
                        pricing,
                        uncapped,
                    )
                )
        spec = book.spec_of(customer)
        if spec is not None and (spec.spend_cap is not None or spec.spend_alert is not None):
            billed = version.billed_asset[plan]
            spent = sum((c.amount for c in charges if c.asset == billed), ZERO)
            running = lookup((customer, SPEND, (), period)).quantity
            if spec.spend_cap is not None and spent > 0 and running + spent > spec.spend_cap:
                raise EventError(
                    Refusal.SPEND_CAP_REACHED,
                    f"spend cap reached: customer {customer!r} has spent {running} of {spec.spend_cap} {billed}"
                    f" in {period}; this event costs {spent}",
                )
            usage.append(Usage(SPEND, (), period, spent, running, running + spent))
        terms = drawn = None
        if contract is not None:
            terms = contract.terms(contract_name)
            if contract.prepaid is not None:
                drawn = self._draw_down(customer, contract_name, contract.prepaid, charges, currency, usage, lookup)
        transaction = self._transaction(event, plan, charges, version, terms, drawn, costs)
        return RatedEvent(received, plan, period, tuple(usage), tuple(charges), transaction)

    def _enriched(self, event: UsageEvent) -> UsageEvent:
        assert self._enrich is not None
        result = self._enrich(event=event) or event
        if result.id != event.id or result.customer != event.customer:
            raise PluginError(f"a rating_enrich_event plugin changed the id or customer of event {event.id}")
        return result

    @staticmethod
    def _draw_down(
        customer: str,
        contract: str,
        prepaid: Decimal,
        charges: list[Charge],
        currency: str,
        usage: list[Usage],
        lookup: StateLookup,
    ) -> tuple[str, Decimal] | None:
        """How much of this event's charges the contract's prepaid commitment covers.

        The running total spent under the contract is state (period ``term``), so the
        prepaid part is ``min(prepaid, after) - min(prepaid, before)``: exact in any order.
        """
        spent = sum((c.amount for c in charges if c.asset == currency), ZERO)
        if not spent:
            return None
        key = f"prepaid:{contract}"
        running = lookup((customer, key, (), "term")).quantity
        usage.append(Usage(key, (), "term", spent, running, running + spent))
        return currency, min(prepaid, running + spent) - min(prepaid, running)

    def _transaction(
        self,
        event: UsageEvent,
        plan: str,
        charges: list[Charge],
        version: CompiledVersion,
        terms: dict[str, str] | None,
        drawn: tuple[str, Decimal] | None,
        costs: list[Posting],
    ) -> Transaction:
        postings: list[Posting] = []
        owed: dict[str, Decimal] = {}
        for charge in charges:
            if charge.amount:
                postings.append(Posting(version.revenue[plan, charge.meter], charge.asset, -charge.amount))
                owed[charge.asset] = owed.get(charge.asset, ZERO) + charge.amount
        debits = []
        if drawn is not None and drawn[1]:
            asset, amount = drawn
            debits.append(Posting(prepaid_account(event.customer), asset, amount))
            owed[asset] -= amount
        book = version.book
        payer = (
            wallet_account(event.customer)
            if book.pays_from_wallet(event.customer)
            else receivable_account(event.customer)
        )
        debits += [Posting(payer, asset, total) for asset, total in owed.items() if total]
        agent = book.agents.get(event.attribution.agent or "") if book.revenue_split else None
        shares: list[Posting] = []
        if agent is not None and book.revenue_split is not None:
            charged = sum((c.amount for c in charges if c.asset == book.currency), ZERO)
            shares = book.revenue_split.postings(charged, book.currency, agent.creator)
            terms = {**(terms or {}), "creator": agent.creator}
        return Transaction(
            id=f"rating:{event.id}",
            timestamp=event.timestamp,
            description=f"{event.type} {event.id}",
            postings=tuple(p for p in debits + postings + shares + _owed_to_providers(costs) if p.amount),
            metadata={
                "event_id": event.id,
                "customer": event.customer,
                "plan": plan,
                "pricebook": version.label,
                **(terms or {}),
            },
        )


def _owed_to_providers(costs: list[Posting]) -> list[Posting]:
    """Cost postings and, per asset, what they leave owed to the providers."""
    if not costs:
        return costs
    owed: dict[str, Decimal] = {}
    for cost in costs:
        owed[cost.asset] = owed.get(cost.asset, ZERO) + cost.amount
    return costs + [Posting(PROVIDERS_ACCOUNT, asset, -amount) for asset, amount in owed.items()]


__all__ = ["BatchReport", "Engine", "Rejection", "RatingError"]
