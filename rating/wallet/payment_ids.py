"""One registry of payment ids: a provider's payment id is used once, for one purpose.

Whatever a payment does (settle an invoice, top up a wallet, refund or charge
back a top-up), the same write that posts it stores the marker ``payment:ID``:
a transaction without postings, keyed by the provider's payment id, naming the
purpose, customer, asset and amount; SQL storage keeps each in its ``payments``
table too, keyed by the payment id (:meth:`~rating.storage.Storage.payments`).
The storage keeps transaction ids unique and idempotent, so with the markers: the same payment again
is a replay, and the id used for another purpose (or other terms) is refused
with :class:`~rating.errors.TransactionConflict` in the same atomic write, also
when two writers race. For payments posted before the registry existed, each
purpose's own transaction id is looked up as well.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from rating.errors import TransactionConflict
from rating.ids import (
    TransactionKind,
    chargeback_id,
    deposit_id,
    paid_reference,
    payment_marker_id,
    refund_id,
    settle_id,
)
from rating.ledger import Transaction
from rating.storage.base import Storage

#: The transaction kind of the registry's markers: ``payment:ID``.
PAYMENT = TransactionKind.PAYMENT
#: How a top-up's deposit names the payment that funded it: ``deposit:payment:ID``.
PAID_DEPOSIT = paid_reference("")


class Purpose(enum.StrEnum):
    """What a payment id was used for."""

    INVOICE = "invoice payment"
    TOP_UP = "top-up"
    REFUND = "refund"
    CHARGEBACK = "chargeback"


#: The transaction each purpose posts for payment id ``ID`` (how payments before the registry are found),
#: as a ``str.format`` template: the ids' builders given ``{}`` for the payment id.
POSTED_AS = {
    Purpose.INVOICE: settle_id("{}"),
    Purpose.TOP_UP: deposit_id(paid_reference("{}")),
    Purpose.REFUND: refund_id("{}"),
    Purpose.CHARGEBACK: chargeback_id("{}"),
}


def payment_marker(
    payment_id: str,
    purpose: Purpose,
    customer: str,
    asset: str,
    amount: Decimal,
    at: dt.datetime,
    **details: str,
) -> Transaction:
    """The registry's marker of ``payment_id``, to append in the same write as what the payment posts.

    Raises nothing itself: :func:`claim` checks the id first, and the storage refuses a marker of the
    same id with other content atomically.
    """
    metadata = {"customer": customer, "purpose": str(purpose), "asset": asset, "amount": str(amount), **details}
    return Transaction(payment_marker_id(payment_id), at, f"{purpose} {payment_id}", (), metadata)


def claim(storage: Storage, payment_id: str, purpose: Purpose, customer: str) -> None:
    """Refuse ``payment_id`` (:class:`~rating.errors.TransactionConflict`) when it was used for another purpose
    or customer. Call it inside the :meth:`~rating.storage.Storage.writing` scope that posts the payment."""
    known = storage.payments([payment_id]).get(payment_id)
    if known is not None:
        used = (known.purpose, known.customer)
        if used != (str(purpose), customer):
            raise TransactionConflict(
                f"payment {payment_id} was already used as a {used[0]} of customer {used[1]!r}:"
                f" one payment id is one payment, for one purpose"
            )
        return
    for other, posted_as in POSTED_AS.items():
        if other != purpose and storage.transaction(posted_as.format(payment_id)) is not None:
            raise TransactionConflict(
                f"payment {payment_id} was already used as a {other}: one payment id is one payment, for one purpose"
            )


__all__ = ["PAID_DEPOSIT", "PAYMENT", "POSTED_AS", "Purpose", "claim", "payment_marker"]
