"""Policies: what may refuse a priced event, or decide how it is funded, each with a named refusal code.

A policy decides and never mutates: it returns its decision as data (the terms
as they stand, a state line it keeps, a draw, a funding) or refuses with an
:class:`~rating.errors.EventError` and its code. What the pricer returned stays
as it returned it; the :mod:`rating.core.poster` builds the transaction once from the
priced lines and the decisions. :mod:`rating.core.pipeline` applies them in the order
of the README's refusal codes, each mode a declared subset:

- :func:`refuse_future` (``future_timestamp``), before the terms are resolved;
- :func:`refuse_closed_period` (``closed_period``), between the pricer's terms and its pricing;
- :func:`track_arrival` (no refusal): the latest event time of the period, which tells a late arrival;
- :func:`apply_spend_cap` (``spend_cap_reached``), which also keeps the period's spend as state;
- :func:`draw_prepaid` (no refusal): how much of the charges a contract's prepaid commitment covers;
- :func:`pay_from_reservation` (no refusal): a metered request's reserved funds pay its charges first;
- :func:`fund_from_wallet` (``insufficient_funds``): wallet customers pay from grants and funds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from rating.core.charges import Usage
from rating.core.funding import Grant, Reservation, consumed, draw_from, funding_sources
from rating.core.pricer import PricedEvent, StateLookup, Terms, total_of
from rating.errors import EventError, InsufficientFunds
from rating.money import ZERO
from rating.periods import ONE_TICK, bounds_of, zone
from rating.refusals import Refusal
from rating.statekeys import LATEST, SPEND, TERM, prepaid_state

#: Whether a customer's period is closed.
ClosedLookup = Callable[[str, str], bool]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class PrepaidDraw:
    """What a contract's prepaid commitment covers of an event: ``amount`` of ``asset``, and the contract's
    running total as the event moves it (``line``, kept as state of period ``term``)."""

    asset: str
    amount: Decimal
    line: Usage


@dataclass(frozen=True, slots=True)
class ReservationFunding:
    """A metered request's reservation pays ``used`` of the charges; the rest of it is released at ``at``,
    back to the accounts it was drawn from: ``kept`` is how much of each drawn account ``used`` keeps."""

    reservation: Reservation
    used: Decimal
    at: dt.datetime
    kept: tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True, slots=True)
class WalletFunding:
    """Where a wallet customer's debit is drawn from: (account, asset, amount) in draw order, and the balance
    each drawn account is left with."""

    draws: tuple[tuple[str, str, Decimal], ...]
    balances: tuple[tuple[tuple[str, str], Decimal], ...]

    @property
    def assets(self) -> frozenset[str]:
        """The assets the wallet debit is drawn in."""
        return frozenset(asset for _, asset, _ in self.draws)


#: How many periods after a closed one late usage looks for an open one.
LATE_USAGE_HORIZON = 60


def refuse_future(event_time: dt.datetime, latest: dt.datetime | None, tolerance: dt.timedelta | None) -> None:
    """``future_timestamp`` when the event is stamped after ``latest`` (now plus the ``tolerance``; None: any time)."""
    if latest is not None and event_time > latest:
        raise EventError(
            Refusal.FUTURE_TIMESTAMP,
            f"timestamp {event_time.isoformat()} is in the future beyond the {tolerance} tolerance",
        )


def refuse_closed_period(terms: Terms, is_closed: ClosedLookup) -> Terms:
    """``terms``, or ``closed_period`` when the customer's billing period of the event is closed.

    With ``late_usage: next_period`` in the pricebook, a late event is not
    refused: it goes into the first open period after its own, which ``late_for``
    remembers (its transaction and the invoice say so).
    """
    customer = terms.event.customer
    if not is_closed(customer, terms.period):
        return terms
    book = terms.version.book
    if book.late_usage == "next_period":
        timezone, anchor = zone(book.timezone_of(customer)), book.anchor_of(customer)
        period = terms.period
        for _ in range(LATE_USAGE_HORIZON):
            _, _, end = bounds_of(period, timezone, anchor)
            period = terms.version.period(terms.plan, customer, end)
            if not is_closed(customer, period):
                return terms._replace(period=period, late_for=terms.period)
    raise EventError(
        Refusal.CLOSED_PERIOD, f"period {terms.period} of customer {customer!r} is closed; it takes no more usage"
    )


def track_arrival(terms: Terms, lookup: StateLookup) -> Usage:
    """Keep the latest event time rated in the customer's period (``policy:latest``, in microseconds since the
    epoch), so that an event arriving before events already rated in its period is seen as such."""
    at = Decimal((terms.event.timestamp - EPOCH) // ONE_TICK)
    before = lookup((terms.event.customer, LATEST, (), terms.period)).quantity
    return Usage(LATEST, (), terms.period, at, before, max(before, at))


def arrived_late(line: Usage) -> dt.datetime | None:
    """The latest event time already rated in the period, when the event of :func:`track_arrival`'s ``line``
    is earlier than it; else None."""
    if line.reading >= line.before:  # type: ignore[operator]
        return None
    return EPOCH + ONE_TICK * int(line.before)


def apply_spend_cap(priced: PricedEvent, lookup: StateLookup, *, enforce: bool = True) -> Usage | None:
    """The period's spend as the event moves it (the state line caps and alerts read), or None when the customer
    has no cap nor alert; ``spend_cap_reached`` beyond the cap.

    Not ``enforce``: only keep the spend (re-rating usage that happened).
    """
    terms = priced.terms
    customer, period = terms.event.customer, terms.period
    spec = terms.spec
    if spec is None or (spec.spend_cap is None and spec.spend_alert is None):
        return None
    billed = terms.version.billed_asset[terms.plan]
    spent = total_of(priced.charges, billed)
    running = lookup((customer, SPEND, (), period)).quantity
    if enforce and spec.spend_cap is not None and spent > 0 and running + spent > spec.spend_cap:
        raise EventError(
            Refusal.SPEND_CAP_REACHED,
            f"spend cap reached: customer {customer!r} has spent {running} of {spec.spend_cap} {billed}"
            f" in {period}; this event costs {spent}",
        )
    return Usage(SPEND, (), period, spent, running, running + spent)


def draw_prepaid(priced: PricedEvent, lookup: StateLookup) -> PrepaidDraw | None:
    """How much of the charges the contract's prepaid commitment covers, or None without one (or no charge).

    The running total spent under the contract is state (period ``term``), so the
    prepaid part is ``min(prepaid, after) - min(prepaid, before)``: exact in any order.
    """
    terms = priced.terms
    contract = terms.contract
    if contract is None or contract.prepaid is None:
        return None
    currency = terms.version.book.currency
    spent = total_of(priced.charges, currency)
    if not spent:
        return None
    key = prepaid_state(terms.contract_name)
    running = lookup((terms.event.customer, key, (), TERM)).quantity
    line = Usage(key, (), TERM, spent, running, running + spent)
    return PrepaidDraw(currency, min(contract.prepaid, running + spent) - min(contract.prepaid, running), line)


def pay_from_reservation(owed: Mapping[str, Decimal], reservation: Reservation, at: dt.datetime) -> ReservationFunding:
    """How much of what the payer owes (``owed``, per asset) ``reservation``'s held funds pay: up to the
    amount held, in the reservation's asset; the rest stays with the payer (a wallet customer's is then
    funded from the wallet as usual), and what it leaves unused is released at ``at``."""
    due = owed.get(reservation.asset, ZERO)
    used = min(due, reservation.amount) if due > 0 else ZERO
    return ReservationFunding(reservation, used, at, tuple(consumed(reservation.draw, used).items()))


def fund_from_wallet(
    customer: str,
    debits: Mapping[str, Decimal],
    at: dt.datetime,
    balance: Callable[[str, str], Decimal],
    grants: Callable[[str], list[Grant]],
) -> WalletFunding | None:
    """Where the wallet ``debits`` (per asset, positive) are drawn from: grants in force at ``at`` and purchased
    funds, in consumption order; None when there is nothing to draw.

    ``insufficient_funds`` when they cannot pay it. Funding accounts hold credit
    balances (negative): none may end above zero.
    """
    if not debits:
        return None
    draws: list[tuple[str, str, Decimal]] = []
    after: list[tuple[tuple[str, str], Decimal]] = []
    for asset, need in debits.items():
        sources = funding_sources(customer, asset, at, grants(customer), balance)
        draw = draw_from(sources, need)
        if draw is None:
            have = sum((funds for _, funds in sources), ZERO)
            raise InsufficientFunds(f"customer {customer!r} has {have} {asset} available, {need} needed")
        for account, taken in draw:
            draws.append((account, asset, taken))
            after.append(((account, asset), balance(account, asset) + taken))
    return WalletFunding(tuple(draws), tuple(after))


def wallet_debits(owed: Mapping[str, Decimal], reservation: ReservationFunding | None) -> dict[str, Decimal]:
    """What a wallet payer still owes per asset once ``reservation`` paid its part: the debits
    :func:`fund_from_wallet` draws."""
    debits = {}
    for asset, amount in owed.items():
        if reservation is not None and asset == reservation.reservation.asset:
            amount -= reservation.used
        if amount > 0:
            debits[asset] = amount
    return debits
