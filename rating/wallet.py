"""Prepaid wallets: multi-asset balances and two-phase use (reserve, then settle or void).

A wallet is a pair of ledger accounts per customer and asset:

- ``customer:ID:wallet`` holds what the customer can spend (a credit balance:
  the platform owes it);
- ``customer:ID:held`` holds what reservations set aside.

``available`` is the wallet's funds, ``reserved`` the held funds, ``posted``
their sum. Every movement is a balanced, idempotent ledger transaction, and the
wallet may never end in debit: the check runs inside the storage's write
transaction (a limit of 0 on the wallet account), so two writers racing for
the same funds cannot both win.

Reservations follow the seeds' three-phase lifecycle: ``reserve`` the estimate
(from :meth:`rating.engine.Engine.quote`) before work runs; ``settle`` the
actual cost, releasing the rest, or ``void`` it all; a reservation not settled
by its expiry is released by ``expire``. When the actual cost exceeds the
reservation, the policy is explicit (``on_excess``):

- ``"cap"`` (default): the wallet pays the reserved amount and the rest is
  recorded as owed on ``customer:ID:receivable``: the wallet is never overdrawn;
- ``"overdraft"``: the wallet pays it all, up to ``overdraft`` below zero, and
  the settlement is refused beyond that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from rating.errors import InsufficientFunds, InvalidAmount, LimitExceeded, ReservationError, TransactionConflict
from rating.ledger import Posting, Transaction, held_account, receivable_account, wallet_account
from rating.money import ZERO, to_decimal
from rating.storage.base import Storage

ExcessPolicy = Literal["cap", "overdraft"]


@dataclass(frozen=True)
class WalletBalance:
    """One asset of a wallet: ``posted = available + reserved``."""

    asset: str
    posted: Decimal
    reserved: Decimal
    available: Decimal


@dataclass(frozen=True)
class Reservation:
    """Funds set aside for work about to run."""

    id: str
    customer: str
    asset: str
    amount: Decimal
    expires_at: dt.datetime


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Wallets:
    """Wallet operations on one storage. ``clock`` tells the time (tests pass their own)."""

    def __init__(self, storage: Storage, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.storage = storage
        self.clock = clock

    def balance(self, customer: str) -> dict[str, WalletBalance]:
        """Posted, reserved and available funds per asset."""
        funds: dict[str, Decimal] = {}
        held: dict[str, Decimal] = {}
        for (account, asset), amount in self.storage.balances(f"customer:{customer}:").items():
            if account == wallet_account(customer):
                funds[asset] = -amount
            elif account == held_account(customer):
                held[asset] = -amount
        return {
            asset: WalletBalance(
                asset, funds.get(asset, ZERO) + held.get(asset, ZERO), held.get(asset, ZERO), funds.get(asset, ZERO)
            )
            for asset in sorted(set(funds) | set(held))
        }

    def deposit(self, customer: str, asset: str, amount: Decimal, id: str, source: str = "payments:received") -> bool:
        """Credit ``amount`` to the wallet from ``source`` (a payment, a grant); False when ``id`` already was.

        A replay is recognised by its postings (its time is when it was first
        posted); the same id moving other amounts is a TransactionConflict.
        """
        amount = self._positive(amount)
        postings = (Posting(source, asset, amount), Posting(wallet_account(customer), asset, -amount))
        existing = self.storage.transaction(f"deposit:{id}")
        if existing is not None:
            if existing.postings != postings:
                raise TransactionConflict(f"transaction deposit:{id} is already stored with different content")
            return False
        meta = {"customer": customer, "kind": "deposit"}
        return bool(self.storage.append([Transaction(f"deposit:{id}", self.clock(), "wallet deposit", postings, meta)]))

    def reserve(self, customer: str, asset: str, amount: Decimal, id: str, timeout: dt.timedelta) -> Reservation:
        """Set ``amount`` aside; :class:`InsufficientFunds` and nothing posted when too little is available."""
        amount = self._positive(amount)
        now = self.clock()
        reservation = Reservation(id, customer, asset, amount, now + timeout)
        postings = (Posting(wallet_account(customer), asset, amount), Posting(held_account(customer), asset, -amount))
        meta = {
            "customer": customer,
            "asset": asset,
            "amount": str(amount),
            "expires_at": reservation.expires_at.isoformat(),
        }
        transaction = Transaction(f"reserve:{id}", now, f"reserve {amount} {asset}", postings, meta)
        try:
            self.storage.append([transaction], limits={(wallet_account(customer), asset): ZERO})
        except LimitExceeded:
            available = self.balance(customer).get(asset)
            have = available.available if available else ZERO
            raise InsufficientFunds(
                f"customer {customer!r} has {have} {asset} available, {amount} {asset} needed"
            ) from None
        return reservation

    def reservation(self, id: str) -> Reservation | None:
        """The open (unsettled, unvoided) reservation ``id``, or None."""
        opened = self.storage.transaction(f"reserve:{id}")
        if opened is None or self.storage.transaction(f"release:{id}") is not None:
            return None
        meta = opened.metadata
        return Reservation(
            id, meta["customer"], meta["asset"], Decimal(meta["amount"]), dt.datetime.fromisoformat(meta["expires_at"])
        )

    def settle(
        self,
        id: str,
        actual: Decimal,
        revenue_account: str,
        *,
        on_excess: ExcessPolicy = "cap",
        overdraft: Decimal = ZERO,
    ) -> Transaction:
        """Charge ``actual`` against reservation ``id`` and release the rest, in one transaction."""
        reservation = self._open(id)
        actual = to_decimal(actual, "actual")
        if actual < 0:
            raise ReservationError(f"reservation {id}: the actual cost cannot be negative, got {actual}")
        customer, asset, held = reservation.customer, reservation.asset, reservation.amount
        from_wallet = min(actual, held)
        owed = actual - from_wallet
        postings = [
            Posting(held_account(customer), asset, held),
            Posting(wallet_account(customer), asset, from_wallet - held),
        ]
        limits = {}
        if owed and on_excess == "overdraft":
            postings.append(Posting(wallet_account(customer), asset, owed))
            limits[(wallet_account(customer), asset)] = to_decimal(overdraft, "overdraft")
        elif owed:
            postings.append(Posting(receivable_account(customer), asset, owed))
        if actual:
            postings.append(Posting(revenue_account, asset, -actual))
        meta = {
            "customer": customer,
            "reservation": id,
            "actual": str(actual),
            "shortfall": str(owed) if on_excess == "cap" else "0",
        }
        transaction = Transaction(
            f"release:{id}", self.clock(), f"settle {actual} {asset}", tuple(p for p in postings if p.amount), meta
        )
        try:
            self.storage.append([transaction], limits=limits)
        except LimitExceeded:
            raise InsufficientFunds(
                f"settling {id} would overdraw customer {customer!r} beyond {overdraft} {asset}"
            ) from None
        return transaction

    def void(self, id: str, reason: str = "voided") -> Transaction:
        """Release all of reservation ``id``."""
        reservation = self._open(id)
        customer, asset, held = reservation.customer, reservation.asset, reservation.amount
        postings = (Posting(held_account(customer), asset, held), Posting(wallet_account(customer), asset, -held))
        transaction = Transaction(
            f"release:{id}",
            self.clock(),
            f"{reason}: {held} {asset} released",
            postings,
            {"customer": customer, "reservation": id, "reason": reason},
        )
        self.storage.append([transaction])
        return transaction

    def open_reservations(self) -> list[Reservation]:
        """Every reservation not yet settled, voided or expired (a scan of the ledger)."""
        ids = [t.id.removeprefix("reserve:") for t in self.storage.transactions() if t.id.startswith("reserve:")]
        return [r for id in ids if (r := self.reservation(id)) is not None]

    def expire(self) -> list[Transaction]:
        """Release every open reservation whose timeout has passed."""
        now = self.clock()
        return [self.void(r.id, "expired") for r in self.open_reservations() if r.expires_at <= now]

    def _open(self, id: str) -> Reservation:
        reservation = self.reservation(id)
        if reservation is None:
            raise ReservationError(f"reservation {id} is unknown, or already settled or voided")
        return reservation

    @staticmethod
    def _positive(amount: Decimal) -> Decimal:
        amount = to_decimal(amount)
        if amount <= 0:
            raise InvalidAmount(f"an amount must be positive, got {amount}")
        return amount
