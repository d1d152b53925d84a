"""Period close: subscription fees, minimum-spend true-ups and rounding, posted exactly once.

``close_period(engine, "2026-11")`` posts, for each customer whose plan bills by
that kind of period:

1. ``fee:CUSTOMER:PERIOD:N`` - the plan fee of each span of the subscription in
   the period, prorated by time (charged in advance: dated at the span start);
2. ``minimum:CUSTOMER:PERIOD`` - the shortfall ``max(0, minimum - spent)``,
   where ``spent`` is the period's charges plus fees in the pricebook currency;
   then ``commitment:CUSTOMER:PERIOD``, the same for a contract's committed
   spend (prorated by the time the contract covers), after the minimum;
   and, in the period a contract starts, ``prepayment:CONTRACT``: its prepaid
   commitment, owed by the customer and credited to ``customer:ID:prepaid``,
   which usage then draws down;
3. ``rounding:CUSTOMER:PERIOD:ASSET`` - the difference between the period's
   total and that total rounded (half-even) to the asset's scale, so that what
   the customer owes is a whole number of cents; it is credited to
   ``rounding:ASSET``;
4. ``close:CUSTOMER:PERIOD`` - a marker without postings. From then on the
   engine rejects usage in that period.

Before them, the close settles in period order what the period carries into the
next (a rollover allowance, a contract's prepaid commitment drawn down in both):
the next period's usage rated before the close read or drew it first. The
settlement is an arrival re-pricing (:func:`rating.billing.rerate.rerate`): corrections
``rerate:EVENT:N`` dated at their events, marked ``settles: PERIOD`` in their
metadata and "settled at the close of PERIOD" in their description; see
:func:`_settle_carries`.

Every id is derived from customer and period, so closing again posts nothing
new. Fees and minimums apply to customers listed under ``customers`` (they have
a subscription); customers on the default plan pay as they go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from rating.accounts import (
    contract_revenue_account,
    prepaid_account,
    receivable_account,
    revenue_account,
    rounding_account,
)
from rating.billing.rerate import rerate
from rating.core.subscriptions import Span, contract_span, prorated, spans_within
from rating.errors import RatingError
from rating.ids import TransactionKind, closing_id, commitment_id, fee_id, minimum_id, prepayment_id, rounding_id
from rating.ledger import Posting, Transaction
from rating.money import ZERO, exact, quantize
from rating.periods import ONE_TICK, PeriodClock, PeriodKind, bounds_of, parse_period, zone
from rating.pricebook.catalog import Catalog, Eras
from rating.pricebook.model import Pricebook
from rating.refusals import CloseRefusal

if TYPE_CHECKING:
    # Types only: a close runs against an engine and its storage; loading this module needs neither.
    from rating.engine import Engine, Rejection
    from rating.storage.base import Storage, StoredCharge


@dataclass
class CloseReport:
    """What closing a period posted."""

    period: str
    posted: list[Transaction] = field(default_factory=list)
    already_closed: list[str] = field(default_factory=list)
    #: Customers whose period was not closed, with the refusal code of each.
    skipped: list[Skipped] = field(default_factory=list)


def _charge(
    id: str, at: dt.datetime, what: str, customer: str, account: str, amount: Decimal, asset: str, **metadata: str
) -> Transaction:
    """A transaction debiting the customer's receivable and crediting ``account``."""
    postings = (Posting(receivable_account(customer), asset, amount), Posting(account, asset, -amount))
    return Transaction(id, at, what, postings, {"customer": customer, **metadata})


def customer_closing(
    book: Pricebook,
    customer: str,
    period: str,
    totals: dict[str, Decimal],
    adjustments: Mapping[str, Decimal] | None = None,
    drawn: Decimal = ZERO,
    eras: Eras = (),
) -> list[Transaction]:
    """The closing transactions of one customer for ``period`` (empty when nothing applies).

    ``totals`` are the period's charges per asset; ``adjustments`` the part of them that corrects closed
    periods (re-rated into this one: they belong to the periods they adjust, so no minimum or commitment of
    this one counts them); ``drawn`` what a prepaid commitment paid of them (not owed on the receivable, so
    the rounding leaves it out); ``eras`` the customer's earlier specs, when it is kept as data and changed
    (:attr:`Catalog.eras <rating.pricebook.catalog.Catalog.eras>`): its fees and minimums follow each."""
    kind, start, end = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
    parts = spans_within(book, customer, start, end, eras) if customer in book.customers else []
    contracts = []
    for name, contract in sorted(book.contracts.items()):
        whole = contract_span(book, name)
        part = Span(name, max(start, whole.start), min(end, whole.end))
        if contract.customer == customer and part.start < part.end:
            contracts.append((name, part, contract))
    if any(book.plans[part.plan].period != kind for part in parts) or not (parts or totals or contracts):
        return []
    currency, closing_at = book.currency, end - ONE_TICK
    scale = book.scale_of(currency)
    result: list[Transaction] = []
    fees = minimum = ZERO
    for number, part in enumerate(parts):
        plan = book.plans[part.plan]
        minimum += prorated(plan.minimum or ZERO, part, start, end, scale)
        fee = prorated(plan.fee or ZERO, part, start, end, scale)
        if fee:
            fees += fee
            span = f"{part.start.isoformat()}/{part.end.isoformat()}"
            account = revenue_account(part.plan, "fee")
            what = f"{part.plan} fee for {period}"
            id = fee_id(customer, period, number)
            result.append(_charge(id, part.start, what, customer, account, fee, currency, plan=part.plan, covers=span))
    # A negative period (a volume credit) is a credit to the customer, never a reason for a true-up.
    spent = max(ZERO, totals.get(currency, ZERO) - (adjustments or {}).get(currency, ZERO) + fees)
    shortfall = max(ZERO, minimum - spent)
    if shortfall:
        last = parts[-1].plan
        account = revenue_account(last, "minimum")
        what = f"minimum spend true-up for {period}"
        id = minimum_id(customer, period)
        result.append(_charge(id, closing_at, what, customer, account, shortfall, currency, minimum=str(minimum)))
    for name, _, contract in contracts:
        begins = contract_span(book, name).start
        if contract.prepaid and start <= begins < end:
            what, id = f"prepaid commitment of {name}", prepayment_id(name)
            account, amount = prepaid_account(customer), contract.prepaid
            result.append(_charge(id, begins, what, customer, account, amount, currency, contract=name))
    committed = sum((prorated(c.commitment or ZERO, span, start, end, scale) for _, span, c in contracts), ZERO)
    uncommitted = max(ZERO, committed - spent - shortfall)
    if uncommitted:
        name = contracts[-1][0]
        what, id = f"commitment true-up for {period}", commitment_id(customer, period)
        account = contract_revenue_account(name)
        extra = {"contract": name, "commitment": str(committed)}
        result.append(_charge(id, closing_at, what, customer, account, uncommitted, currency, **extra))
    owed = dict(totals)
    owed[currency] = owed.get(currency, ZERO) - drawn + fees + shortfall + uncommitted
    for asset, total in sorted(owed.items()):
        difference = quantize(total, book.scale_of(asset)) - total
        if difference:
            id, what = rounding_id(customer, period, asset), f"rounding of {period} to the asset's scale"
            result.append(_charge(id, closing_at, what, customer, rounding_account(asset), difference, asset))
    marker = {"customer": customer, "period": period, "transactions": str(len(result))}
    result.append(Transaction(closing_id(customer, period), closing_at, f"close {period}", (), marker))
    return result


def period_closing(
    catalog: Catalog,
    period: str,
    totals: Mapping[str, Mapping[str, Decimal]],
    customers: Iterable[str] | None = None,
) -> list[Transaction]:
    """Every closing transaction of ``period``, given each customer's charges in it per asset (``totals``).

    Closes the customers named, or else every customer the pricebook lists, has a
    contract for, or has charges in ``totals``. Billing and simulation share it.
    """
    try:
        _, first = parse_period(period)
    except ValueError as error:
        raise RatingError(str(error)) from None
    noon = dt.datetime(first.year, first.month, first.day, 12, tzinfo=dt.UTC)
    book = catalog.in_force(noon) or catalog.versions[0]
    names = _customers_to_close(book, totals, customers)
    return [
        t
        for customer in names
        for t in customer_closing(
            book, customer, period, dict(totals.get(customer, {})), eras=catalog.eras.get(customer, ())
        )
    ]


@dataclass(frozen=True)
class Skipped:
    """A customer whose period was not closed, and why."""

    customer: str
    code: CloseRefusal
    reason: str

    def __str__(self) -> str:
        return f"{self.customer}: {self.code}: {self.reason}"


@exact
def close_period(engine: Engine, period: str, customers: Iterable[str] | None = None) -> CloseReport:
    """Post every closing transaction of ``period``, atomically; closing twice posts nothing new.

    Everything runs in one storage write scope, with the totals it reads there:
    whatever another writer committed before is in the close, whatever comes
    after is late usage. A customer is skipped (``report.skipped``) when no
    version is in force at the start of the period, when its period has not
    ended by the engine's clock (in its own time zone and anchor), or when usage
    was rated in its previous period and that period is still open.
    """
    try:
        kind, first = parse_period(period)
    except ValueError as error:
        raise RatingError(str(error)) from None
    storage, catalog, now = engine.storage, engine.catalog, engine.clock()
    report = CloseReport(period)
    with storage.writing():
        totals = _totals_by_customer(storage, period)
        noon = dt.datetime(first.year, first.month, first.day, 12, tzinfo=dt.UTC)
        book = catalog.in_force(noon)
        names = _customers_to_close(book or catalog.versions[0], totals, customers)
        if book is None:
            reason = f"no version of pricebook {catalog.name} is in force in {period}"
            report.skipped = [Skipped(c, CloseRefusal.NO_VERSION_IN_FORCE, reason) for c in names]
            return report
        predecessors = _Predecessors(storage)
        closing: dict[str, list[Transaction]] = {}  # each customer to close, with its closing transactions
        for customer in names:
            transactions = _closing_of(storage, catalog, book, customer, period, totals)
            if not transactions:
                continue  # billed by another kind of period, or nothing to close: not this close's business
            timezone, anchor = zone(book.timezone_of(customer)), book.anchor_of(customer)
            _, start, end = bounds_of(period, timezone, anchor)
            before = PeriodClock(kind, timezone, anchor).previous(start)
            if end > now:
                reason = f"period {period} ends {end.isoformat()}, after now ({now.isoformat()})"
                report.skipped.append(Skipped(customer, CloseRefusal.PERIOD_NOT_ENDED, reason))
            elif predecessors.open(customer, before, _prepaid_across(catalog, customer, start)):
                reason = f"period {before} is still open: close it first"
                report.skipped.append(Skipped(customer, CloseRefusal.PREDECESSOR_OPEN, reason))
            else:
                closing[customer] = transactions
        resettled, unsettled = _settle_carries(engine, kind, period, list(closing))
        for customer, refusal in sorted(_customers_of(storage, unsettled).items()):
            if closing.pop(customer, None) is not None:
                reason = f"the carry into the next period cannot be settled ({refusal}): fund it and close again"
                report.skipped.append(Skipped(customer, CloseRefusal.CARRY_UNSETTLED, reason))
        if resettled:  # a prepaid draw-down re-drawn in this period: its charges stand, re-read them all the same
            totals = _totals_by_customer(storage, period)
            for customer in resettled:
                closing[customer] = _closing_of(storage, catalog, book, customer, period, totals)
        report.already_closed = sorted(
            customer for customer, _ in storage.closed_periods([(c, period) for c in closing])
        )
        report.posted = storage.append([t for transactions in closing.values() for t in transactions])
    return report


#: How many periods after a closing one a prepaid draw-down is re-drawn in, at most (those begun by now).
SETTLING_HORIZON = 120


def _customers_of(storage: Storage, refused: Sequence[Rejection]) -> dict[str, str]:
    """The customers of the events a re-pricing ``refused`` (located ``event ID``), each with its first refusal."""
    ids = {rejection.location.removeprefix("event "): rejection for rejection in refused}
    found: dict[str, str] = {}
    for id, event in storage.rated_events(ids).items():
        found.setdefault(event.customer, f"{ids[id].code}: {ids[id].reason}")
    return found


def _settle_carries(
    engine: Engine, kind: PeriodKind, period: str, customers: Sequence[str]
) -> tuple[set[str], list[Rejection]]:
    """Settle, in period order, what ``period`` carries into the next period of ``customers``; returns the
    customers whose ``period`` was re-priced too.

    What a period leaves unused is final only when it closes: usage rated in the
    next period before then (or before late usage of this one) read a carry that
    may have moved. Two carries: a rollover allowance, and a contract's prepaid
    commitment that runs on after this period (usage of later periods, rated
    first, drew it before this one's). Both are settled by the re-pricing of an
    arrival out of order (:func:`~rating.billing.rerate.rerate` with ``arrival``), every
    event in time order: for a rollover the next period (the carry into the one
    after it is settled when the next one closes), for a prepaid commitment this
    period and every open period after it that has begun. Each difference is a
    correction ``rerate:EVENT:N`` dated at its event and marked ``settles:
    PERIOD`` (this period), so the ledger ends as if everything had arrived in
    time order; this period's charges are not changed
    by it (only what the commitment pays of them), unless the pricebook changed.
    Returns the customers re-drawn and what could not be re-priced (a wallet that cannot fund a correction).
    """
    catalog = engine.catalog
    rollover = any(
        charge.rollover
        for book in catalog.versions
        for charges in (*(plan.charges for plan in book.plans.values()), *(c.charges for c in book.contracts.values()))
        for charge in charges
    )
    only: set[tuple[str, str]] = set()
    starts: list[dt.datetime] = []
    resettled: set[str] = set()
    drawing: dict[tuple[str, str], dt.datetime] = {}  # the open periods after this one a prepaid draw-down spans
    now = engine.clock()
    for customer in customers:
        book = catalog.in_force(bounds_of(period, dt.UTC, None)[1]) or catalog.latest
        timezone, anchor = zone(book.timezone_of(customer)), book.anchor_of(customer)
        _, start, end = bounds_of(period, timezone, anchor)
        clock = PeriodClock(kind, timezone, anchor)
        if rollover:  # the carry into the next period; the one after it is settled when the next one closes
            only.add((customer, clock.label(end)))
            starts.append(end)
        if _prepaid_across(catalog, customer, end):
            # Every period after this one may have drawn first, not only the next: all are re-drawn after it.
            only.add((customer, period))
            starts.append(start)
            resettled.add(customer)
            at = end
            for _ in range(SETTLING_HORIZON):
                if at > now:
                    break
                label = clock.label(at)
                drawing[customer, label] = at
                at = bounds_of(label, timezone, anchor)[2]
    for key in engine.storage.closed_periods(drawing):
        del drawing[key]  # closed before this one (it had no usage then): nothing drew there before this one
    only.update(drawing)
    starts += drawing.values()
    refused: list[Rejection] = []
    if only:
        since, until = min(starts), max(starts) + ONE_TICK
        report = rerate(
            engine.storage, catalog, engine.registry, since, until, clock=engine.clock, only=only, settles=period
        )
        refused = report.refused
    return resettled, refused


def _prepaid_across(catalog: Catalog, customer: str, end: dt.datetime) -> bool:
    """Whether a contract of ``customer`` with a prepaid commitment is in force on both sides of ``end``."""
    for book in catalog.versions:
        for name, contract in book.contracts.items():
            if contract.customer == customer and contract.prepaid:
                span = contract_span(book, name)
                if span.start < end < span.end:
                    return True
    return False


@dataclass(frozen=True)
class PeriodUsage:
    """What one customer's period holds from usage, read once: its charge records, the rating and correction
    transactions that post them, and the events whose corrections here adjust a closed period."""

    charges: list[StoredCharge]
    #: Event id -> the closed period its corrections posted here adjust (its charges here are those corrections).
    adjusted: dict[str, str]
    #: The ratings of the period's own events, then the corrections posted into the period.
    ratings: list[Transaction]
    corrections: list[Transaction]


def period_usage(
    storage: Storage, customer: str, period: str, all_corrections: list[Transaction] | None = None
) -> PeriodUsage:
    """The usage of ``customer``'s ``period`` as the ledger holds it (what close and invoices read);
    ``all_corrections``: the customer's re-rating corrections, when the caller read them already."""
    charges = [stored for stored in storage.charges(customer) if stored.charge.period == period]
    events = {stored.event_id for stored in charges}
    if all_corrections is None:
        all_corrections = storage.transactions_of(TransactionKind.RERATE, customer)
    # An event whose correction adjusts a closed period was rated (and invoiced) there: here it has only the
    # correction's charge records, and its rating is not this period's.
    adjusted = {
        t.metadata["event_id"]: t.metadata["adjusts"]
        for t in all_corrections
        if t.metadata.get("event_id") in events and t.metadata.get("adjusts", period) != period
    }
    ratings = [
        t
        for t in storage.transactions_of(TransactionKind.RATING, customer)
        if t.metadata.get("event_id") in events and t.metadata["event_id"] not in adjusted
    ]
    corrections = [t for t in all_corrections if t.metadata.get("period") == period]
    return PeriodUsage(charges, adjusted, ratings, corrections)


def _closing_of(
    storage: Storage,
    catalog: Catalog,
    book: Pricebook,
    customer: str,
    period: str,
    totals: Mapping[str, dict[str, Decimal]],
) -> list[Transaction]:
    """:func:`customer_closing` with ``customer``'s charges of ``period``, the part of them that adjusts closed
    periods, and what its prepaid commitment paid of them; the ledger is read again only where a correction
    of a closed period or a prepaid commitment is."""
    mine = totals.get(customer, {})
    prepaid = any(c.customer == customer and c.prepaid for c in book.contracts.values())
    corrections = storage.transactions_of(TransactionKind.RERATE, customer)
    eras = catalog.eras.get(customer, ())
    if not (prepaid or any(t.metadata.get("period") == period and "adjusts" in t.metadata for t in corrections)):
        return customer_closing(book, customer, period, mine, eras=eras)
    usage = period_usage(storage, customer, period, corrections)
    adjustments: dict[str, Decimal] = {}
    for stored in usage.charges:
        if stored.event_id in usage.adjusted:
            adjustments[stored.charge.asset] = adjustments.get(stored.charge.asset, ZERO) + stored.charge.amount
    account = prepaid_account(customer)
    drawn = sum((p.amount for t in usage.ratings + usage.corrections for p in t.postings if p.account == account), ZERO)
    return customer_closing(book, customer, period, mine, adjustments, drawn, eras)


def preview_closing(storage: Storage, catalog: Catalog, customer: str, period: str) -> list[Transaction]:
    """The closing transactions of ``customer``'s ``period`` as :func:`close_period` would compute them from the
    ledger now (fees, minimum and commitment true-ups, rounding, the marker; by the version in force at the
    period's start, as the close takes it), read-only: nothing is written, and no carry is re-settled (a
    rollover or prepaid draw-down re-drawn at the close may move them). Empty when no version is in force."""
    try:
        _, first = parse_period(period)
    except ValueError as error:
        raise RatingError(str(error)) from None
    book = catalog.in_force(dt.datetime(first.year, first.month, first.day, 12, tzinfo=dt.UTC))
    if book is None:
        return []
    return _closing_of(storage, catalog, book, customer, period, _totals_by_customer(storage, period))


def _totals_by_customer(storage: Storage, period: str) -> dict[str, dict[str, Decimal]]:
    """The period's charges per customer and asset, as stored."""
    by_customer: dict[str, dict[str, Decimal]] = {}
    for (customer, asset), amount in storage.period_totals(period).items():
        by_customer.setdefault(customer, {})[asset] = amount
    return by_customer


def _customers_to_close(book: Pricebook, totals: Mapping[str, object], customers: Iterable[str] | None) -> list[str]:
    """The customers named, or else every customer the pricebook lists, has a contract for, or has charges."""
    if customers is not None:
        return sorted(set(customers))
    return sorted(set(book.customers) | set(totals) | {c.customer for c in book.contracts.values()})


class _Predecessors:
    """Whether a customer's previous period is open: usage was rated in it (or, under a prepaid commitment,
    may still be) and it is not closed.

    Only usage makes the order of closes matter (rollover carries, late usage, a prepaid draw-down); a
    previous period with nothing but fees to post may be closed later, except under a prepaid commitment
    that runs through both: usage arriving there later would draw what the later period already drew.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._totals: dict[str, dict[str, dict[str, Decimal]]] = {}

    def open(self, customer: str, period: str, prepaid: bool = False) -> bool:
        if period not in self._totals:
            self._totals[period] = _totals_by_customer(self.storage, period)
        used = prepaid or customer in self._totals[period]
        return used and not self.storage.closed_periods([(customer, period)])
