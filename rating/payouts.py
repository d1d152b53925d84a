"""Weekly creator payouts: earnings to Sunday night, paid the following Wednesday.

``pay_creators(storage, book, "2026-W47")`` pays each creator what
``payable:creator:ID`` holds for work dated up to Sunday 24:00 of that ISO week
in the pricebook's time zone, rounded down to the cent (the sub-cent rest stays
owed and joins the next payout). Each payout is a transaction
``payout:CREATOR:WEEK`` dated the following Wednesday at 00:00, moving the
amount to ``payouts:CURRENCY`` for the payment processor; a week already paid is
not paid again, so running it twice posts nothing new. Earnings dated in a paid
week but posted after its payout are paid the week after.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from rating.errors import RatingError
from rating.ledger import Posting, Transaction, creator_account
from rating.money import ZERO, asset_scale
from rating.periods import bounds_of, parse_period, zone
from rating.pricebook import Pricebook
from rating.storage.base import Storage

PREFIX = creator_account("")


@dataclass(frozen=True)
class Payout:
    """One creator's payout for one week."""

    creator: str
    amount: Decimal
    asset: str
    pay_on: dt.date
    transaction_id: str


def pay_creators(storage: Storage, book: Pricebook, week: str) -> tuple[list[Payout], list[Payout]]:
    """Post the week's payouts; returns (posted now, already posted before)."""
    try:
        kind, _ = parse_period(week)
    except ValueError as error:
        raise RatingError(str(error)) from None
    if kind != "week":
        raise RatingError(f"{week!r} is not an ISO week: use 2026-W47")
    timezone = zone(book.timezone)
    _, _, end = bounds_of(week, timezone)
    wednesday = end.astimezone(timezone).date() + dt.timedelta(days=2)
    pay_at = dt.datetime(wednesday.year, wednesday.month, wednesday.day, tzinfo=timezone)
    fresh, earlier, transactions = [], [], []
    for (account, asset), balance in sorted(storage.account_totals(PREFIX, end).items()):
        creator = account.removeprefix(PREFIX)
        owed = (-balance).quantize(Decimal(1).scaleb(-asset_scale(asset)), rounding=ROUND_DOWN)
        id = f"payout:{creator}:{week}"
        stored = storage.transaction(id)
        if stored is not None:
            earlier.append(Payout(creator, stored.postings[0].amount, asset, wednesday, id))
            continue
        if owed <= ZERO:
            continue
        postings = (Posting(account, asset, owed), Posting(f"payouts:{asset}", asset, -owed))
        transactions.append(Transaction(id, pay_at, f"payout of {week} to {creator}", postings, {"creator": creator}))
        fresh.append(Payout(creator, owed, asset, wednesday, id))
    storage.append(transactions)
    return fresh, earlier
