"""Policies: what may refuse a priced event, or decide how it is funded, each with a named refusal code.

The engine applies them around the pure :mod:`rating.pricer`, in the order of
the README's refusal codes:

- :func:`refuse_closed_period` (``closed_period``), between the pricer's terms and its pricing;
- :func:`track_arrival` (no refusal): the latest event time of the period, which tells a late arrival;
- :func:`apply_spend_cap` (``spend_cap_reached``), which also keeps the period's spend as state;
- :func:`draw_prepaid` (no refusal): how much of the charges a contract's prepaid commitment covers;
- :func:`pay_from_reservation` (no refusal): a metered request's reserved funds pay its charges first;
- :func:`fund_from_wallet` (``insufficient_funds``): wallet customers pay from grants and funds.

A simulation prices history as if every customer were billed on account: it
applies none of them (see :mod:`rating.simulate`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from rating.accounts import held_account, receivable_account, wallet_account
from rating.charges import Usage
from rating.errors import EventError, InsufficientFunds
from rating.ledger import Posting, Transaction
from rating.money import ZERO
from rating.periods import ONE_TICK, bounds_of, zone
from rating.pricer import PricedEvent, StateLookup, Terms, total_of
from rating.refusals import Refusal
from rating.statekeys import LATEST, SPEND, prepaid_state
from rating.wallet import Grant, Reservation, consumed, draw_from, funding_sources

#: Whether a customer's period is closed.
ClosedLookup = Callable[[str, str], bool]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


#: How many periods after a closed one late usage looks for an open one.
LATE_USAGE_HORIZON = 60


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


def apply_spend_cap(priced: PricedEvent, lookup: StateLookup, *, enforce: bool = True) -> None:
    """Keep the period's spend (for caps and alerts) and refuse with ``spend_cap_reached`` beyond the cap.

    Not ``enforce``: only keep the spend (re-rating usage that happened).
    """
    terms = priced.terms
    customer, period = terms.event.customer, terms.period
    spec = terms.version.book.spec_of(customer)
    if spec is None or (spec.spend_cap is None and spec.spend_alert is None):
        return
    billed = terms.version.billed_asset[terms.plan]
    spent = total_of(priced.charges, billed)
    running = lookup((customer, SPEND, (), period)).quantity
    if enforce and spec.spend_cap is not None and spent > 0 and running + spent > spec.spend_cap:
        raise EventError(
            Refusal.SPEND_CAP_REACHED,
            f"spend cap reached: customer {customer!r} has spent {running} of {spec.spend_cap} {billed}"
            f" in {period}; this event costs {spent}",
        )
    priced.usage.append(Usage(SPEND, (), period, spent, running, running + spent))


def draw_prepaid(priced: PricedEvent, lookup: StateLookup) -> tuple[str, Decimal] | None:
    """How much of the charges the contract's prepaid commitment covers, as (asset, amount).

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
    running = lookup((terms.event.customer, key, (), "term")).quantity
    priced.usage.append(Usage(key, (), "term", spent, running, running + spent))
    return currency, min(contract.prepaid, running + spent) - min(contract.prepaid, running)


def pay_from_reservation(
    transaction: Transaction, reservation: Reservation, at: dt.datetime
) -> tuple[Transaction, Transaction]:
    """``transaction`` paid first from ``reservation``'s held funds, and the release of what it left unused.

    The payer's debit in the reservation's asset (the wallet, or the receivable)
    moves to the held account, up to the amount held; the rest stays with the
    payer (a wallet customer's is then funded from the wallet as usual). The
    release ``release:ID`` returns the unused part to the accounts it was drawn
    from, in the order they were drawn, as :meth:`~rating.wallet.Wallets.settle` does.
    """
    customer, asset = reservation.customer, reservation.asset
    payers = (wallet_account(customer), receivable_account(customer))
    postings, used = [], ZERO
    for posting in transaction.postings:
        if posting.account in payers and posting.asset == asset and posting.amount > 0 and not used:
            used = min(posting.amount, reservation.amount)
            postings += [
                Posting(posting.account, asset, posting.amount - used),
                Posting(held_account(customer), asset, used),
            ]
        else:
            postings.append(posting)
    paid = dataclasses.replace(
        transaction,
        postings=tuple(p for p in postings if p.amount),
        metadata={**transaction.metadata, "reservation": reservation.id},
    )
    kept = consumed(reservation.draw, used)
    returned = [Posting(held_account(customer), asset, reservation.amount - used)]
    returned += [Posting(account, asset, kept.get(account, ZERO) - taken) for account, taken in reservation.draw]
    release = Transaction(
        f"release:{reservation.id}",
        at,
        f"settle {used} {asset} by {transaction.id}",
        tuple(p for p in returned if p.amount),
        {"customer": customer, "reservation": reservation.id, "actual": str(used), "settled_by": transaction.id},
    )
    return paid, release


def fund_from_wallet(
    transaction: Transaction,
    customer: str,
    balance: Callable[[str, str], Decimal],
    grants: Callable[[str], list[Grant]],
) -> tuple[Transaction, dict[tuple[str, str], Decimal]]:
    """``transaction`` with its wallet debit drawn from grants in force and purchased funds, and their new balances.

    ``insufficient_funds`` when they cannot pay it. Funding accounts hold credit
    balances (negative): none may end above zero.
    """
    wallet = wallet_account(customer)
    debits = {p.asset: p.amount for p in transaction.postings if p.account == wallet and p.amount > 0}
    if not debits:
        return transaction, {}
    postings = [p for p in transaction.postings if not (p.account == wallet and p.asset in debits)]
    after: dict[tuple[str, str], Decimal] = {}
    for asset, need in debits.items():
        sources = funding_sources(customer, asset, transaction.timestamp, grants(customer), balance)
        draw = draw_from(sources, need)
        if draw is None:
            have = sum((funds for _, funds in sources), ZERO)
            raise InsufficientFunds(f"customer {customer!r} has {have} {asset} available, {need} needed")
        for account, taken in draw:
            postings.append(Posting(account, asset, taken))
            after[account, asset] = balance(account, asset) + taken
    return dataclasses.replace(transaction, postings=tuple(postings)), after
