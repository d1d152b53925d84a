"""Weekly creator payouts: earnings to Sunday night, paid the following Wednesday.

``pay_creators(storage, book, "2026-W47")`` pays each creator what they earned
up to Sunday 24:00 of that ISO week (in the pricebook's time zone), less
everything already paid to them, rounded down to the cent (the sub-cent rest
joins a later payout). Each payout is a transaction ``payout:CREATOR:WEEK``
dated the following Wednesday at 00:00, moving the amount from
``payable:creator:ID`` to ``payouts:CURRENCY`` for the payment processor.

Weeks may be paid in any order and again: a week already paid pays nothing,
a payout is never negative (earnings taken back by credits are carried and
reduce later payouts), and the total paid to a creator never exceeds what they
earned up to the latest week paid, which is also what paying the weeks in
order would have paid. A week that has not ended yet is refused
(``week_not_ended``): its earnings are not all in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from rating.accounts import creator_account, creator_of, payouts_account
from rating.errors import PayoutRefused
from rating.ids import TransactionKind, payout_id
from rating.ledger import Posting, Transaction
from rating.money import ZERO, quantize
from rating.periods import bounds_of, parse_period, zone
from rating.pricebook.model import Pricebook
from rating.refusals import PayoutRefusal
from rating.storage.base import Storage


@dataclass(frozen=True)
class Payout:
    """One creator's payout for one week."""

    creator: str
    amount: Decimal
    asset: str
    pay_on: dt.date
    transaction_id: str


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pay_creators(
    storage: Storage, book: Pricebook, week: str, clock: Callable[[], dt.datetime] = _utcnow
) -> tuple[list[Payout], list[Payout]]:
    """Post the week's payouts; returns (posted now, already posted before)."""
    try:
        kind, _ = parse_period(week)
    except ValueError as error:
        raise PayoutRefused(PayoutRefusal.INVALID_WEEK, str(error)) from None
    if kind != "week":
        raise PayoutRefused(PayoutRefusal.INVALID_WEEK, f"{week!r} is not an ISO week: use 2026-W47")
    timezone = zone(book.timezone)
    _, _, end = bounds_of(week, timezone)
    if clock() < end:
        raise PayoutRefused(
            PayoutRefusal.WEEK_NOT_ENDED, f"week {week} ends {end.isoformat()}: its earnings are not all in yet"
        )
    wednesday = end.astimezone(timezone).date() + dt.timedelta(days=2)
    pay_at = dt.datetime(wednesday.year, wednesday.month, wednesday.day, tzinfo=timezone)
    fresh, earlier, transactions = [], [], []
    with storage.writing():  # what was paid is read where no other payout run can add to it
        paid_later = _paid_since(storage, end)
        creators = sorted({creator for (account, _) in storage.balances() if (creator := creator_of(account))})
        owed_at_end: dict[str, list[tuple[str, Decimal]]] = {}
        for (account, asset), balance in sorted(storage.account_totals(map(creator_account, creators), end).items()):
            owed_at_end.setdefault(account, []).append((asset, -balance))
        for creator in creators:
            id = payout_id(creator, week)
            stored = storage.transaction(id)
            if stored is not None:
                asset = stored.postings[0].asset
                earlier.append(Payout(creator, stored.postings[0].amount, asset, wednesday, id))
                continue
            account = creator_account(creator)
            for asset, balance in owed_at_end.get(account, ()):
                # The balance at the week's end already counts payouts dated before it; later ones paid it too.
                left = balance - paid_later.get((creator, asset), ZERO)
                owed = quantize(left, book.scale_of(asset), ROUND_DOWN)
                if owed <= ZERO:
                    continue
                postings = (Posting(account, asset, owed), Posting(payouts_account(asset), asset, -owed))
                meta = {"creator": creator, "week": week}
                transactions.append(Transaction(id, pay_at, f"payout of {week} to {creator}", postings, meta))
                fresh.append(Payout(creator, owed, asset, wednesday, id))
        storage.append(transactions)
    return fresh, earlier


def _paid_since(storage: Storage, end: dt.datetime) -> dict[tuple[str, str], Decimal]:
    """Per (creator, asset): what payouts dated at or after ``end`` paid (those before it are in the balance)."""
    paid: dict[tuple[str, str], Decimal] = {}
    for payout in storage.transactions_of(TransactionKind.PAYOUT):
        if payout.timestamp >= end:
            first = payout.postings[0]
            key = (payout.metadata["creator"], first.asset)
            paid[key] = paid.get(key, ZERO) + first.amount
    return paid
