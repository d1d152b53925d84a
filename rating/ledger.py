"""Double-entry ledger: postings and transactions that balance per asset.

A :class:`Transaction` cannot be built unbalanced, and a :class:`Posting` cannot
hold anything but an exact, finite Decimal: the invariants are checked at
construction, so nothing downstream has to trust its caller. Nothing is edited:
a correction is a new transaction (:func:`reversal`).

Sign convention: a positive amount is a debit, a negative one a credit. Charging
a customer debits its receivable account and credits revenue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from rating import ids
from rating.errors import InvalidAmount, InvalidTransaction, UnbalancedTransaction
from rating.money import ZERO


class _PostingFields(NamedTuple):
    account: str
    asset: str
    amount: Decimal


class Posting(_PostingFields):
    """One line of a transaction: ``amount`` of ``asset`` on ``account`` (positive = debit).

    An immutable tuple (cheap: one is built per charge on the hot path) that
    refuses anything but a finite Decimal amount.
    """

    __slots__ = ()

    def __new__(cls, account: str, asset: str, amount: Decimal) -> Posting:
        if type(amount) is not Decimal or not amount.is_finite():
            raise InvalidAmount(f"posting to {account} must be a finite Decimal, got {amount!r}")
        if not account or not asset:
            raise InvalidAmount("a posting needs an account and an asset")
        return super().__new__(cls, account, asset, amount)


def imbalance(postings: Iterable[Posting]) -> dict[str, Decimal]:
    """The non-zero sum per asset of ``postings`` (empty when they balance)."""
    totals: dict[str, Decimal] = {}
    for posting in postings:
        totals[posting.asset] = totals.get(posting.asset, ZERO) + posting.amount
    return {asset: total for asset, total in totals.items() if total != 0}


# Transaction ids are built and parsed in rating.ids; these names stay importable from here for one release.
RATING_PREFIX = ids.RATING_PREFIX
rating_id = ids.rating_id
#: The kind of a re-rating correction's transaction id: ``rerate:EVENT:N``.
RERATE = ids.TransactionKind.RERATE
CLOSING_PREFIX = ids.CLOSING_PREFIX
closing_id = ids.closing_id


@dataclass(frozen=True, slots=True)
class Transaction:
    """A balanced set of postings with an idempotency ``id`` and the time it takes effect."""

    id: str
    timestamp: dt.datetime
    description: str
    postings: tuple[Posting, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidTransaction("a transaction needs an id")
        if self.timestamp.tzinfo is None:
            raise InvalidTransaction(f"transaction {self.id}: timestamp must be timezone-aware")
        off = imbalance(self.postings)
        if off:
            detail = ", ".join(f"{asset} off by {total}" for asset, total in sorted(off.items()))
            raise UnbalancedTransaction(f"transaction {self.id} does not balance: {detail}")

    @property
    def kind(self) -> str:
        """What the transaction is: the first word of its id (``rating``, ``grant``, ``reserve``, ``close`` ...)."""
        return ids.prefix_of(self.id)

    @property
    def customer(self) -> str | None:
        """The customer the transaction concerns (its ``customer`` metadata), if any."""
        return self.metadata.get("customer")

    def fingerprint(self) -> str:
        """A digest of the whole content: equal content, equal fingerprint."""
        body = {
            "id": self.id,
            "timestamp": self.timestamp.isoformat(),
            "description": self.description,
            "postings": [[p.account, p.asset, str(p.amount)] for p in self.postings],
            "metadata": dict(sorted(self.metadata.items())),
        }
        return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


def reversal(original: Transaction, id: str, timestamp: dt.datetime, reason: str) -> Transaction:
    """A new transaction that cancels the money of ``original`` (every posting negated).

    The usage it metered stays recorded: a reversal is a credit note, not an erasure.
    """
    return Transaction(
        id=id,
        timestamp=timestamp,
        description=f"reversal of {original.id}: {reason}",
        postings=tuple(Posting(p.account, p.asset, -p.amount) for p in original.postings),
        metadata={"reverses": original.id, "reason": reason},
    )
