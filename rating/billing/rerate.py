"""Correcting history with the billing pricer: ``rating rerate``.

When a pricebook fix changes what past usage should have cost,
:func:`rerate` re-prices whole billing periods with the fixed pricebook and
posts, per event, the difference from what is posted for it, as new
transactions; nothing posted before is edited.

- **Which events**: every rated event of the billing periods (of each
  customer's plan, by the fixed pricebook) that start in ``[since, until)``:
  whole periods, so tiers, allowances and caps count as they did. Each event
  counts in the period billing put it in (its charge records say which): late
  usage that ``late_usage: next_period`` moved into a later period
  (``late_for`` on its transaction) is re-priced there, never in its own.
- **Periods stay as billed**: when the fixed pricebook would bill an event in
  another period than billing did, or ends a closed period elsewhere (another
  period kind, anchor or time zone), the whole re-rating is refused with
  ``period_mismatch`` (:class:`~rating.errors.RerateRefused`) and nothing is
  posted, for open and closed periods alike. It is checked before anything is
  priced, on every event stamped in the window and every closed period around
  it (:func:`_refuse_other_periods`), and again on each event billed in the
  window as it is priced.
- **What is priced**: each event, in time order, against the period state its
  period had before its first event, exactly as ``rating rate`` would have
  priced it under the fixed pricebook. Policies that refuse usage (spend caps)
  are not applied again: the usage happened.
- **The correction** ``rerate:EVENT:N`` (``N`` counts the event's corrections)
  moves every platform account (revenue, shares) by the new price minus what
  the event's rating and earlier corrections posted there; the customer's payer
  takes the net: the receivable, or for wallet customers the wallet (an
  increase is drawn from grants and funds as usage is, and refused with
  ``insufficient_funds`` when they cannot pay it; a decrease is credited to the
  wallet's purchased funds). Its charge records reverse the event's charges as
  they stood and add the new ones, so period totals, usage reports and the
  ledger baseline of ``rating simulate`` see the corrected figures. Provider
  costs and a contract's prepaid draw-down are left as posted: a price fix does
  not change what the providers charged. (A re-pricing for the order of
  arrival, by the engine or by ``close-period``, corrects both; one made by a
  close is marked ``settles: PERIOD``.)
- **Open periods** are corrected in place: the correction is dated at the event
  and its charges count in the event's period; the period state is replaced by
  what the new prices leave, so later usage continues from it and
  ``close-period`` bills the corrected totals.
- **Closed periods** stay as billed: the difference is dated now and counts in
  the customer's current open period, marked ``adjusts: PERIOD`` (a visible
  adjustment on the next bill). The closed period's fees, minimums and rounding
  are not recomputed. When the current period is closed too, the correction is
  refused with ``closed_period``.
- **Idempotent**: re-rating with the same pricebook again posts nothing (every
  difference is zero); everything is written in one atomic write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext

from rating.accounts import (
    PROVIDERS_ACCOUNT,
    customer_of,
    is_cost,
    prepaid_account,
)
from rating.core.charges import Charge, StateKey, rendered
from rating.core.pipeline import Mode, Pipeline, Wallet
from rating.core.pricer import Pricer, Terms, advance
from rating.engine import Rejection
from rating.errors import EventError, RerateRefused
from rating.events import UsageEvent
from rating.ids import TransactionKind, closing_id, rating_id, rerate_id
from rating.ledger import Posting, Transaction
from rating.money import MONEY_CONTEXT, ZERO
from rating.periods import ONE_TICK, PeriodKind, bounds_of, parse_period, period_bounds, zone
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook
from rating.records import ChargeRecord, CorrectionRecord, PeriodState
from rating.refusals import Refusal, RerateRefusal
from rating.registry import Registry
from rating.statekeys import TERM, prepaid_contract, prepaid_state
from rating.storage.base import Activity, Storage
from rating.wallet.wallets import Grant, Wallets

#: The kind of a correction's transaction id: ``rerate:EVENT:N`` (:mod:`rating.ids`; kept for one release).
RERATE = TransactionKind.RERATE
#: How far after ``until`` the events of a period that starts before it may lie (the longest period is a year).
LONGEST_PERIOD = dt.timedelta(days=367)
#: More than the widest difference between two time zones' midnights (26 hours): how far a period's end in one
#: customer zone may lie from a window's bound in the pricebook's.
ZONE_SLACK = dt.timedelta(days=2)


@dataclass
class RerateReport:
    """What a re-rating found and posted (or, on a dry run, would post)."""

    #: Events of the selected periods that the fixed pricebook priced.
    repriced: int = 0
    #: The corrections, one per event whose price changed.
    corrections: list[CorrectionRecord] = field(default_factory=list)
    #: Events or corrections that could not be re-rated, with their codes; their postings stand.
    refused: list[Rejection] = field(default_factory=list)
    #: Per (customer, asset): the charges of the re-priced events as they stood, and as re-priced.
    before: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    after: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def rows(self) -> list[dict[str, object]]:
        """Per customer and asset: what stood, what the fixed pricebook charges, and the difference."""
        return [
            {
                "customer": customer,
                "asset": asset,
                "posted": self.before.get((customer, asset), ZERO),
                "rerated": self.after.get((customer, asset), ZERO),
                "difference": self.after.get((customer, asset), ZERO) - self.before.get((customer, asset), ZERO),
            }
            for customer, asset in sorted(set(self.before) | set(self.after))
        ]


def rerate(
    storage: Storage,
    catalog: Catalog,
    registry: Registry,
    since: dt.datetime,
    until: dt.datetime,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    dry_run: bool = False,
    only: Collection[tuple[str, str]] | None = None,
    arrival: bool = False,
    settles: str | None = None,
) -> RerateReport:
    """Re-price the billing periods that start in ``[since, until)`` with ``catalog`` and post the differences.

    Reads and writes in one storage write scope: no rating interleaves. With
    ``dry_run`` everything is computed and nothing is written. ``only``: just
    these (customer, period) pairs (the engine re-prices a period in place when
    an event arrives before events already rated in it). ``arrival``: the
    re-pricing is for the order of arrival, so provider costs and a contract's
    prepaid draw-down are corrected too (a price fix leaves both as posted: the
    providers charged what they charged); the draw-down of the periods after the
    re-priced ones stays as posted. ``settles``: the re-pricing settles, at the close of that period, what it
    carries into the next (rollover, prepaid draw-down; see :mod:`rating.billing.close`): an ``arrival`` re-pricing
    whose corrections say so in their metadata (``settles: PERIOD``).
    """
    hook = registry.manager.hook
    pricer = Pricer(catalog, hook.rating_enrich_event if registry.enriches_events else None)
    report = RerateReport()
    with storage.writing(), localcontext(MONEY_CONTEXT):
        run = _Run(storage, pricer, clock(), arrival or settles is not None)
        if not arrival:  # an arrival re-pricing uses the pricebook that just billed: its periods are billing's
            _refuse_other_periods(storage, pricer, run, since, until, only)
        for item in _events_of(storage, pricer, since, until, run, report, only):
            run.correct(item, report)
        if settles is not None:
            report.corrections = [_settling(correction, settles) for correction in report.corrections]
        if not dry_run:
            fresh = storage.correct(report.corrections, run.open_states(), dict.fromkeys(run.wallets, ZERO))
            if hook.rating_transaction_posted.get_hookimpls():
                for correction in fresh:
                    hook.rating_transaction_posted(transaction=correction.transaction)
    return report


def _events_of(
    storage: Storage,
    pricer: Pricer,
    since: dt.datetime,
    until: dt.datetime,
    run: _Run,
    report: RerateReport,
    only: Collection[tuple[str, str]] | None = None,
) -> list[tuple[UsageEvent, Terms]]:
    """The rated events of the periods that start in ``[since, until)`` (of the (customer, period) pairs
    ``only`` names, when given), in time order (ties by id), with their new terms.

    Each event counts in the period billing put it in: a late event that
    ``late_usage: next_period`` moved into a later period is priced there (and
    found there, although it is stamped before ``since``), never in its own.
    Raises ``period_mismatch`` when the new terms would bill an event by another
    period than billing did.
    """
    bounds: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = {}
    chosen: list[tuple[UsageEvent, Terms]] = []

    def choose(event: UsageEvent) -> bool:
        """Whether ``event`` is re-priced (and if so, add it to ``chosen``)."""
        try:
            terms = pricer.terms(event)
        except EventError as error:
            if event.timestamp < until:
                report.refused.append(Rejection(f"event {event.id}", error.code, str(error)))
            return False
        billed = run.billed_period(event.customer, event.id) or terms.period
        key = (event.customer, billed)
        if key not in bounds:
            book = terms.version.book
            timezone, anchor = zone(book.timezone_of(event.customer)), book.anchor_of(event.customer)
            bounds[key] = bounds_of(billed, timezone, anchor)[1:]
        start, end = bounds[key]
        if since <= start < until and (only is None or key in only):
            run.select(key, end)
            chosen.append((event, run.as_billed(terms, billed)))
            return True
        return False

    scanned: set[str] = set()
    if only is None:
        history = storage.activity(since, until + LONGEST_PERIOD)
    else:
        named = sorted({customer for customer, _ in only})
        history = (a for customer in named for a in storage.activity(since, until + LONGEST_PERIOD, customer))
    for activity in history:
        scanned.add(activity.event.id)
        run.count_drawn(activity, choose(activity.event))
    # Late usage billed in these periods is stamped before them: found through the periods' charge records.
    labels = _labels({plan.period for book in pricer.catalog.versions for plan in book.plans.values()}, since, until)
    customers = {customer for label in sorted(labels) for customer, _ in storage.period_totals(label)}
    if only is not None:
        customers &= {customer for customer, _ in only}
    for event in storage.rated_events(run.billed_in(labels, customers, scanned)).values():
        choose(event)
    chosen.sort(key=lambda item: (item[0].timestamp, item[0].id))  # time order, ties by id, as rating takes them
    return chosen


def _refuse_other_periods(
    storage: Storage,
    pricer: Pricer,
    run: _Run,
    since: dt.datetime,
    until: dt.datetime,
    only: Collection[tuple[str, str]] | None = None,
) -> None:
    """``period_mismatch`` when the pricebook would bill the customers of the window by other periods than
    billing did (another kind, time zone or anchor), checked before anything is priced.

    The ledger keeps each event's period label and each closed period's end, not
    the time zone or anchor that made them, so that is what is compared: every
    event stamped in ``[since, until)`` keeps its label (a late event: the period
    it is late for), and every closed period of those customers that ends in the
    window or just before it (the one before the window tells where the window's
    first period starts) keeps its end, by the version in force in it. Events billed in the
    window but stamped outside it are checked as they are priced
    (:meth:`_Run.as_billed`). Without this, a customer moved to another time zone
    had its periods start outside the window, and the re-rating found nothing to
    re-price in an open period.
    """
    named: list[str | None] = [None] if only is None else [*sorted({customer for customer, _ in only})]
    seen: set[str] = set()
    for who in named:
        for activity in storage.activity(since, until, who):
            event = activity.event
            seen.add(event.customer)
            try:
                terms = pricer.terms(event)
            except EventError:
                continue  # refused when it is priced, if its period is re-rated
            billed = run.billed_period(event.customer, event.id)
            if billed is None or billed == terms.period:
                continue
            posted = storage.transaction(rating_id(event.id))
            late_for = posted.metadata.get("late_for") if posted is not None else None
            if late_for != terms.period:
                book = terms.version.book
                how = _periods_of(book, book.plans[terms.plan].period, event.customer)
                raise RerateRefused(
                    RerateRefusal.PERIOD_MISMATCH,
                    f"customer {event.customer!r}: event {event.id} was billed in period {late_for or billed}, the"
                    f" pricebook bills it in {terms.period} ({how}):"
                    " a re-rating cannot change a customer's billing periods",
                )
    for customer in sorted(seen):
        for marker in storage.transactions_of(TransactionKind.CLOSE, customer):
            period = marker.metadata.get("period")
            if period is None or not since - ZONE_SLACK <= marker.timestamp < until + ZONE_SLACK:
                continue
            _, first = parse_period(period)
            then = pricer.catalog.in_force(dt.datetime.combine(first, dt.time(12), dt.UTC))
            if then is None:  # billed by a version this catalog does not hold: it cannot say where it ends
                continue
            kind, _, end = bounds_of(period, zone(then.timezone_of(customer)), then.anchor_of(customer))
            if marker.timestamp != end - ONE_TICK:
                raise RerateRefused(
                    RerateRefusal.PERIOD_MISMATCH,
                    f"customer {customer!r}: period {period} was closed at {marker.timestamp.isoformat()}, the"
                    f" pricebook ({_periods_of(then, kind, customer)}) ends it at {end.isoformat()}:"
                    " a re-rating cannot change a customer's billing periods",
                )


def _periods_of(book: Pricebook, kind: PeriodKind | str, customer: str) -> str:
    """How ``book`` bills ``customer`` by periods of ``kind``: kind, time zone and anchor, in words."""
    anchor = book.anchor_of(customer)
    anchored = f"anchored on {anchor.isoformat()}" if anchor else "calendar"
    return f"by {kind}, {anchored}, in {book.timezone_of(customer)}"


class _Run:
    """The state of one re-rating: period states as the new prices leave them, wallets, what is stored."""

    def __init__(self, storage: Storage, pricer: Pricer, now: dt.datetime, arrival: bool = False) -> None:
        self.storage, self.pricer, self.now, self.arrival = storage, pricer, now, arrival
        #: A price fix keeps the spend and funds the correction; an arrival re-pricing re-draws prepaid too.
        self.pipeline = Pipeline(pricer, Mode.REPRICE if arrival else Mode.RERATE, clock=lambda: now)
        # For arrival: what the re-priced events, and the events after them, added to each prepaid draw-down
        # (customer, state name), and the draw-down state as it stood before the re-priced periods.
        self.redrawn: dict[tuple[str, str], Decimal] = {}
        self.drawn_later: dict[tuple[str, str], Decimal] = {}
        self.draw_downs: dict[StateKey, PeriodState] = {}
        self.selected: set[tuple[str, str]] = set()
        self.states: dict[StateKey, PeriodState] = {}  # of the selected periods, from nothing
        self.outside: dict[StateKey, PeriodState] = {}  # stored state other periods show (rollover carries)
        self.wallets: dict[tuple[str, str], Decimal] = {}
        self.closed: set[tuple[str, str]] = set()
        self.customers: dict[str, tuple[dict[str, list[ChargeRecord]], dict[str, list[Transaction]]]] = {}
        self.grants: dict[str, list[Grant]] = {}

    def select(self, key: tuple[str, str], end: dt.datetime) -> None:
        """Re-price the customer period ``key``, which the new terms end at ``end``.

        ``period_mismatch`` when it was closed at another end (another anchor or time zone).
        """
        if key in self.selected:
            return
        self.selected.add(key)
        closing = self.storage.transaction(closing_id(*key))
        if closing is None:
            return
        self.closed.add(key)
        if closing.timestamp != end - ONE_TICK:
            customer, period = key
            raise RerateRefused(
                RerateRefusal.PERIOD_MISMATCH,
                f"period {period} of customer {customer!r} was closed at {closing.timestamp.isoformat()}, the"
                f" pricebook ends it at {end.isoformat()}: a re-rating cannot change a customer's billing periods",
            )

    def billed_period(self, customer: str, event_id: str) -> str | None:
        """The period billing put the event in, from its charge records (None when it has none).

        Its rating's records come first; a correction of a closed period adds records in the period that
        took the difference, which are not where billing put the event.
        """
        charges, corrections = self.stored(customer)
        elsewhere = {t.metadata["period"] for t in corrections.get(event_id, ()) if "adjusts" in t.metadata}
        return next((c.period for c in charges.get(event_id, ()) if c.period not in elsewhere), None)

    def as_billed(self, terms: Terms, billed: str) -> Terms:
        """``terms`` in the period ``billed`` that billing put the event in; ``period_mismatch`` when the new
        terms would bill it in another (a late event's own period is the one it is late for)."""
        if billed == terms.period:
            return terms
        event = terms.event
        posted = self.storage.transaction(rating_id(event.id))
        late_for = posted.metadata.get("late_for") if posted is not None else None
        if late_for != terms.period:
            raise RerateRefused(
                RerateRefusal.PERIOD_MISMATCH,
                f"the pricebook bills event {event.id} of customer {event.customer!r} in period {terms.period},"
                f" billing put it in {late_for or billed}: a re-rating cannot change a customer's billing periods",
            )
        return terms._replace(period=billed, late_for=late_for)

    def billed_in(self, labels: set[str], customers: Iterable[str], scanned: set[str]) -> list[str]:
        """The events of ``customers`` billed in a period of ``labels`` that are not among ``scanned``."""
        found = []
        for customer in sorted(customers):
            charges, _ = self.stored(customer)
            for event_id in charges:
                if event_id not in scanned and self.billed_period(customer, event_id) in labels:
                    found.append(event_id)
        return found

    def lookup(self, key: StateKey) -> PeriodState:
        customer, name, _, period = key
        if (customer, period) in self.selected:
            return self.states.get(key) or self.states.setdefault(key, PeriodState(ZERO))
        if self.arrival and prepaid_contract(name) is not None:
            if key not in self.draw_downs:  # as it stood before the re-priced periods
                stored = self.storage.period_states([key]).get(key) or PeriodState(ZERO)
                before = self.redrawn.get((customer, name), ZERO) + self.drawn_later.get((customer, name), ZERO)
                self.draw_downs[key] = PeriodState(stored.quantity - before)
            return self.draw_downs[key]
        if key not in self.outside:
            self.outside[key] = self.storage.period_states([key]).get(key) or PeriodState(ZERO)
        return self.outside[key]

    def open_states(self) -> dict[StateKey, PeriodState]:
        """The new period states of the selected periods still open, and of prepaid draw-downs re-drawn (with what
        the periods after them drew): they replace the stored ones."""
        states = {key: state for key, state in self.states.items() if (key[0], key[3]) not in self.closed}
        for customer, name in self.redrawn:  # re-priced to cost nothing, an event never looked its draw-down up
            self.lookup(StateKey(customer, name, (), TERM))
        for key, state in self.draw_downs.items():
            states[key] = PeriodState(state.quantity + self.drawn_later.get((key[0], key[1]), ZERO))
        return states

    def count_drawn(self, activity: Activity, selected: bool) -> None:
        """Note what ``activity``'s event added to prepaid draw-downs: re-drawn, or drawn after the re-priced
        periods."""
        into = self.redrawn if selected else self.drawn_later
        readings = {name: Decimal(str(reading)) for name, reading in activity.readings if prepaid_contract(name)}
        if not readings and self.arrival:  # rated when it cost nothing, it may draw since an arrival re-priced it
            readings = dict.fromkeys(self._draw_downs_of(activity.event), ZERO)
        for name, reading in readings.items():
            key = (activity.event.customer, name)
            into[key] = into.get(key, ZERO) + self._spent(activity.event, reading)

    def _draw_downs_of(self, event: UsageEvent) -> list[str]:
        """The prepaid draw-down state ``event`` counts in under its terms (none without a prepaid contract)."""
        if not any(c.prepaid for book in self.pricer.catalog.versions for c in book.contracts.values()):
            return []
        try:
            terms = self.pricer.terms(event)
        except EventError:
            return []
        if terms.contract is None or terms.contract.prepaid is None:
            return []
        return [prepaid_state(terms.contract_name)]

    def _spent(self, event: UsageEvent, reading: Decimal) -> Decimal:
        """What ``event`` adds to its prepaid draw-down as it stands: its charges in the pricebook currency, its
        rating's and its corrections' together (``reading``, its rating's, is stale once an arrival re-pricing
        corrected it, and that re-pricing stored the draw-down from the corrected charges)."""
        try:
            currency = self.pricer.version_at(event.timestamp).book.currency
        except EventError:
            return reading
        charges, _ = self.stored(event.customer)
        return sum((c.amount for c in charges.get(event.id, ()) if c.asset == currency), ZERO)

    def stored(self, customer: str) -> tuple[dict[str, list[ChargeRecord]], dict[str, list[Transaction]]]:
        """The customer's charge records and earlier corrections, by event id (read once per customer)."""
        if customer not in self.customers:
            charges: dict[str, list[ChargeRecord]] = {}
            catalog = self.pricer.catalog
            for stored in self.storage.charges(customer):
                # Rendered now, if kept as data: netting and reversing keep the text and unit price as they were.
                charges.setdefault(stored.event_id, []).append(rendered(stored.charge, catalog))
            corrections: dict[str, list[Transaction]] = {}
            for transaction in self.storage.transactions_of(TransactionKind.RERATE, customer):
                corrections.setdefault(transaction.metadata["event_id"], []).append(transaction)
            self.customers[customer] = (charges, corrections)
        return self.customers[customer]

    def correct(self, item: tuple[UsageEvent, Terms], report: RerateReport) -> None:
        """Re-price one event and, when its price changed, add its correction to ``report``."""
        event, terms = item
        customer = event.customer
        try:
            rated = self.pipeline.run(event, self.lookup, resolved=terms).rating
        except (EventError, ArithmeticError) as error:
            code = error.code if isinstance(error, EventError) else Refusal.NOT_EXACT
            report.refused.append(Rejection(f"event {event.id}", code, str(error)))
            return
        advance(self.lookup, customer, rated.usage)
        report.repriced += 1
        charges, corrections = self.stored(customer)
        standing = _net_lines(charges.get(event.id, []))
        for line in standing:
            report.before[customer, line.asset] = report.before.get((customer, line.asset), ZERO) + line.amount
        for charge in rated.charges:
            report.after[customer, charge.asset] = report.after.get((customer, charge.asset), ZERO) + charge.amount
        posted = [self.storage.transaction(rating_id(event.id)), *corrections.get(event.id, [])]
        moves = _platform_moves(rated.transaction.postings, customer, self.arrival)
        for transaction in posted:
            for account_asset, amount in _platform_moves(
                transaction.postings if transaction else (), customer, self.arrival
            ).items():
                moves[account_asset] = moves.get(account_asset, ZERO) - amount
        moves = {key: amount for key, amount in moves.items() if amount}
        if not moves:
            return
        try:
            correction = self._correction(terms, rated.charges, moves, standing, len(corrections.get(event.id, [])) + 1)
        except EventError as error:
            report.refused.append(Rejection(f"event {event.id}", error.code, str(error)))
            return
        corrections.setdefault(event.id, []).append(correction.transaction)
        charges.setdefault(event.id, []).extend(correction.charges)
        report.corrections.append(correction)

    def _correction(
        self,
        terms: Terms,
        charges: Iterable[Charge],
        moves: dict[tuple[str, str], Decimal],
        standing: list[ChargeRecord],
        number: int,
    ) -> CorrectionRecord:
        event = terms.event
        customer, period, at = event.customer, terms.period, event.timestamp
        metadata = {"event_id": event.id, "customer": customer, "plan": terms.plan, "pricebook": terms.version.label}
        if (customer, period) in self.closed:
            metadata["adjusts"], period, at = period, self._open_period(event), self.now
        metadata["period"] = period
        reason = f"re-rated by {terms.version.label}"
        transaction, funding = self.pipeline.correct(
            terms,
            rerate_id(event.id, number),
            at,
            f"{reason}: {event.type} {event.id}",
            moves,
            metadata,
            Wallet(self._balance, self._grants_of),
        )
        if funding is not None:
            self.wallets.update(funding.balances)
        fresh = _net_lines([c.record() for c in charges])
        kept = {_line_key(a) for a in standing for b in fresh if _line_key(a) == _line_key(b) and a.amount == b.amount}
        lines = [_reversed(line, period) for line in standing if _line_key(line) not in kept]
        lines += [line._replace(period=period) for line in fresh if _line_key(line) not in kept]
        return CorrectionRecord(event.id, customer, tuple(lines), transaction)

    def _open_period(self, event: UsageEvent) -> str:
        """The customer's billing period now, which takes a closed period's difference; ``closed_period`` if shut."""
        version = self.pricer.version_at(self.now)
        plan = version.plan_at(event.customer, self.now)
        current = version.period(plan, event.customer, self.now)
        if self.storage.closed_periods([(event.customer, current)]):
            raise EventError(
                Refusal.CLOSED_PERIOD,
                f"period {current} of customer {event.customer!r} is closed too: nowhere to post the difference",
            )
        return current

    def _balance(self, account: str, asset: str) -> Decimal:
        if (account, asset) not in self.wallets:
            self.wallets[account, asset] = self.storage.balances([account]).get((account, asset), ZERO)
        return self.wallets[account, asset]

    def _grants_of(self, customer: str) -> list[Grant]:
        if customer not in self.grants:
            self.grants[customer] = Wallets(self.storage).grants(customer)
        return self.grants[customer]


def _settling(correction: CorrectionRecord, period: str) -> CorrectionRecord:
    """``correction`` marked as a settlement made at the close of ``period`` (``settles: PERIOD``)."""
    transaction = correction.transaction
    metadata = {**transaction.metadata, "settles": period}
    description = f"settled at the close of {period}: {transaction.description}"
    return correction._replace(transaction=replace(transaction, metadata=metadata, description=description))


def _labels(kinds: Iterable[PeriodKind], since: dt.datetime, until: dt.datetime) -> set[str]:
    """The labels of the calendar periods of ``kinds`` that overlap ``[since, until)`` widened by a day each side:
    every period of those kinds that starts in the range, in any time zone and with any anchor, is among them."""
    labels = set()
    for kind in kinds:
        at = since - dt.timedelta(days=1)
        while at < until + dt.timedelta(days=1):
            label, _, at = period_bounds(at, kind, dt.UTC)
            labels.add(label)
    return labels


def _platform_moves(
    postings: Iterable[Posting], customer: str, arrival: bool = False
) -> dict[tuple[str, str], Decimal]:
    """How ``postings`` move the accounts a correction adjusts: the platform's, not the customer's payer; for
    ``arrival``, provider costs and the customer's prepaid commitment too."""
    moves: dict[tuple[str, str], Decimal] = {}
    prepaid = prepaid_account(customer) if arrival else None
    for p in postings:
        platform = customer_of(p.account) is None
        if (
            platform and (arrival or not (is_cost(p.account) or p.account == PROVIDERS_ACCOUNT))
        ) or p.account == prepaid:
            moves[p.account, p.asset] = moves.get((p.account, p.asset), ZERO) + p.amount
    return moves


def _reversed(line: ChargeRecord, period: str) -> ChargeRecord:
    """The record that reverses a standing charge line (its quantity and amount negated), counted in ``period``."""
    return line._replace(
        before=line.after,
        after=line.before,
        amount=-line.amount,
        period=period,
        explanation=f"reversal: {line.explanation}",
    )


def _line_key(charge: ChargeRecord) -> tuple[object, ...]:
    """What makes a charge record the same line as another: plan, meter, group, model, asset and unit."""
    return (charge.plan, charge.meter, charge.group, charge.model, charge.asset, charge.unit)


def _net_lines(charges: list[ChargeRecord]) -> list[ChargeRecord]:
    """An event's charge records netted per line (plan, meter, group, model, asset, unit): what stands."""
    net: dict[tuple[object, ...], ChargeRecord] = {}
    for charge in charges:
        key = _line_key(charge)
        known = net.get(key)
        net[key] = charge if known is None else known._replace(amount=known.amount + charge.amount)
    return [line for line in net.values() if line.amount]


__all__ = ["RERATE", "RerateReport", "rerate"]
