"""Prepaid wallets: multi-asset balances, stacked grants and two-phase use (reserve, then settle or void).

A wallet is a set of ledger accounts per customer and asset:

- ``customer:ID:wallet`` holds purchased funds (a credit balance: the platform
  owes them to the customer);
- ``customer:ID:grant:GRANT`` holds what is left of each grant (promotional,
  purchased or rollover credit) with its own priority, start and expiry;
- ``customer:ID:held`` holds what reservations set aside.

``available`` is the funds of the wallet and of the grants in force,
``reserved`` the held funds, ``posted`` their sum. Spending draws from grants in
force first, by priority (lowest number first), then earliest expiry, and from
the purchased funds last. An expired grant's remainder is forfeited by
``expire_grants`` (to ``revenue:forfeited``).

Every movement is a balanced, idempotent ledger transaction, and no funding
account may end in debit: the check runs inside the storage's write
transaction (a limit of 0 on each account drawn from), so two writers racing
for the same funds cannot both win.

Reservations follow the seeds' three-phase lifecycle: ``reserve`` the estimate
(from :meth:`rating.engine.Engine.quote`) before work runs; ``settle`` the
actual cost, releasing the rest to where it came from, or ``void`` it all; a
reservation not settled by its expiry is released by ``expire``. When the
actual cost exceeds the reservation, the policy is explicit (``on_excess``):

- ``"cap"`` (default): the wallet pays the reserved amount and the rest is
  recorded as owed on ``customer:ID:receivable``: the wallet is never overdrawn;
- ``"overdraft"``: the purchased funds pay the rest, down to ``overdraft``
  below zero, and the settlement is refused beyond that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from rating.accounts import (
    FORFEITED_ACCOUNT,
    PAYMENTS_ACCOUNT,
    check_id,
    grant_account,
    grants_account,
    held_account,
    receivable_account,
    wallet_account,
)
from rating.core.funding import (  # the record types and the draw arithmetic, re-exported for one release
    Draw,
    Grant,
    Reservation,
    consumed,
    consumption_order,
    draw_from,
    funding_sources,
    grant_metadata,
    reservation_metadata,
)
from rating.errors import (
    InsufficientFunds,
    InvalidAmount,
    LimitExceeded,
    ReservationError,
    TransactionConflict,
    UnknownDeposit,
)
from rating.ids import (
    TransactionKind,
    deposit_id,
    forfeit_id,
    grant_id,
    paid_by,
    release_id,
    reserve_id,
    take_back_id,
)
from rating.ledger import Posting, Transaction
from rating.money import ZERO, exact, to_decimal
from rating.outbox import GRANT_EXPIRED, RESERVATION_EXPIRED, message
from rating.records import OutboxMessage
from rating.storage.base import Storage
from rating.wallet.payment_ids import Purpose, claim, payment_marker

__all__ = [
    "Draw",
    "ExcessPolicy",
    "Grant",
    "GrantKind",
    "Reservation",
    "WalletBalance",
    "Wallets",
    "consumed",
    "consumption_order",
    "draw_from",
    "funding_sources",
]

ExcessPolicy = Literal["cap", "overdraft"]
GrantKind = Literal["purchased", "promotional", "rollover"]


@dataclass(frozen=True)
class WalletBalance:
    """One asset of a wallet: ``posted = available + reserved``."""

    asset: str
    posted: Decimal
    reserved: Decimal
    available: Decimal


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime, what: str) -> dt.datetime:
    if moment.tzinfo is None:
        raise InvalidAmount(f"{what} must be a timezone-aware datetime, got {moment.isoformat()}")
    return moment


class Wallets:
    """Wallet operations on one storage. ``clock`` tells the time (tests pass their own)."""

    def __init__(self, storage: Storage, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.storage = storage
        self.clock = clock

    # -- reading -----------------------------------------------------------------

    def grants(self, customer: str) -> list[Grant]:
        """Every grant ever given to ``customer``, in the order given."""
        return self.storage.grants([check_id("customer", customer)]).get(customer, [])

    def _funding_balances(self, customer: str, grants: list[Grant]) -> dict[tuple[str, str], Decimal]:
        """Balances of the customer's wallet, held and grant accounts: named exactly, never by prefix."""
        accounts = [wallet_account(customer), held_account(customer)] + [g.account for g in grants]
        return self.storage.balances(accounts)

    @exact
    def sources(self, customer: str, asset: str, at: dt.datetime) -> list[tuple[str, Decimal]]:
        """The funding accounts of ``customer`` in ``asset`` at ``at``, with their funds, in consumption order."""
        grants = self.grants(customer)
        balances = self._funding_balances(customer, grants)
        return funding_sources(customer, asset, at, grants, lambda a, s: balances.get((a, s), ZERO))

    @exact
    def balance(self, customer: str) -> dict[str, WalletBalance]:
        """Posted, reserved and available funds per asset (grants count while in force)."""
        now = self.clock()
        given = self.grants(customer)  # read once for every asset
        balances = self._funding_balances(customer, given)
        assets = {asset for (_, asset) in balances}
        result = {}

        def balance_of(account: str, asset: str) -> Decimal:
            return balances.get((account, asset), ZERO)

        for asset in sorted(assets):
            available = sum((funds for _, funds in funding_sources(customer, asset, now, given, balance_of)), ZERO)
            reserved = -balances.get((held_account(customer), asset), ZERO)
            result[asset] = WalletBalance(asset, available + reserved, reserved, available)
        return result

    # -- funding -------------------------------------------------------------------

    @exact
    def deposit(self, customer: str, asset: str, amount: Decimal, id: str, source: str = PAYMENTS_ACCOUNT) -> bool:
        """Credit purchased funds from ``source`` (a confirmed payment); False when ``id`` already was.

        An ``id`` of ``payment:ID`` is a provider's payment ``ID``: it is registered in the same write
        (:mod:`rating.wallet.payment_ids`) and is a conflict when ``ID`` was used for another purpose.
        """
        amount = self._positive(amount)
        check_id("customer", customer)
        postings = (Posting(source, asset, amount), Posting(wallet_account(customer), asset, -amount))
        meta = {"customer": customer, "kind": "deposit"}
        now = self.clock()
        deposit = Transaction(deposit_id(id), now, "wallet deposit", postings, meta)
        payment_id = paid_by(id)
        if payment_id is None:
            return self._post_once(deposit)
        # Funded by a provider's payment: its id tops up once, and is then no invoice payment or refund.
        with self.storage.writing():
            claim(self.storage, payment_id, Purpose.TOP_UP, customer)
            return self._post_once(deposit, payment_marker(payment_id, Purpose.TOP_UP, customer, asset, amount, now))

    def take_back(self, customer: str, asset: str, amount: Decimal, id: str, deposit: str, kind: str) -> bool:
        """Reverse ``amount`` of the deposit ``deposit`` (a ``refund`` or a ``chargeback``); False when ``id`` was.

        The purchased funds pay it back as far as they go; what was already
        spent is owed on the receivable, so the wallet never shows funds it
        does not have. Raises :class:`~rating.errors.RatingError` for an
        unknown deposit or more than is left of it.
        """
        amount = self._positive(amount)
        check_id("customer", customer)
        wallet = wallet_account(customer)
        with self.storage.writing():
            known = self.storage.transaction(take_back_id(kind, id))
            if known is not None:  # a replay, whatever the funds are now; other content is a conflict
                if (known.customer, known.metadata.get("deposit"), known.metadata.get("amount")) != (
                    customer,
                    deposit,
                    str(amount),
                ):
                    raise TransactionConflict(f"{kind} {id} was already taken with other content")
                return False
            claim(self.storage, id, Purpose(kind), customer)  # a provider's id: never also a top-up or a payment
            original = self.storage.transaction(deposit_id(deposit))
            if original is None or original.customer != customer:
                raise UnknownDeposit(f"no deposit {deposit} of customer {customer!r} to take back")
            paid = sum((-p.amount for p in original.postings if p.account == wallet and p.asset == asset), ZERO)
            earlier = [
                t
                for k in (TransactionKind.REFUND, TransactionKind.CHARGEBACK)
                for t in self.storage.transactions_of(k, customer)
                if t.metadata.get("deposit") == deposit and t.id != take_back_id(kind, id)
            ]
            left = paid - sum((Decimal(t.metadata["amount"]) for t in earlier), ZERO)
            if amount > left:
                raise UnknownDeposit(f"{amount} {asset} is more than the {left} {asset} left of deposit {deposit}")
            funds = -self.storage.balances([wallet]).get((wallet, asset), ZERO)
            covered = max(ZERO, min(amount, funds))
            postings = (
                Posting(wallet, asset, covered),
                Posting(receivable_account(customer), asset, amount - covered),
                Posting(PAYMENTS_ACCOUNT, asset, -amount),
            )
            meta = {"customer": customer, "deposit": deposit, "amount": str(amount), "owed": str(amount - covered)}
            what, now = f"{kind} of deposit {deposit}", self.clock()
            marker = payment_marker(id, Purpose(kind), customer, asset, amount, now, refunds=deposit)
            return self._post_once(
                Transaction(take_back_id(kind, id), now, what, tuple(p for p in postings if p.amount), meta), marker
            )

    def grant(
        self,
        customer: str,
        asset: str,
        amount: Decimal,
        id: str,
        *,
        kind: GrantKind = "promotional",
        priority: int = 0,
        starts: dt.datetime | None = None,
        expires: dt.datetime | None = None,
    ) -> bool:
        """Give ``customer`` a grant, spent before purchased funds; False when ``id`` already was."""
        amount = self._positive(amount)
        check_id("customer", customer)
        check_id("grant", id)
        starts = _aware(starts or self.clock(), "starts")
        if expires is not None and _aware(expires, "expires") <= starts:
            raise InvalidAmount(f"grant {id} would expire ({expires.isoformat()}) before it starts")
        account = grant_account(customer, id)
        postings = (Posting(grants_account(kind), asset, amount), Posting(account, asset, -amount))
        meta = grant_metadata(Grant(id, customer, asset, amount, kind, priority, starts, expires))
        return self._post_once(Transaction(grant_id(customer, id), starts, f"{kind} grant", postings, meta))

    @exact
    def expire_grants(self) -> list[Transaction]:
        """Forfeit what is left of every grant past its expiry (idempotent)."""
        now = self.clock()
        forfeits = []
        for grants in self.storage.grants().values():
            for grant in grants:
                if grant.expires is None or grant.expires > now:
                    continue
                left = -self.storage.balances([grant.account]).get((grant.account, grant.asset), ZERO)
                if left > 0:
                    postings = (
                        Posting(grant.account, grant.asset, left),
                        Posting(FORFEITED_ACCOUNT, grant.asset, -left),
                    )
                    meta = {"customer": grant.customer, "grant": grant.id}
                    # Funds a reservation drew before expiry come back when it is voided: a later forfeiture.
                    id = forfeit_id(grant.customer, grant.id, grant.forfeits)
                    forfeits.append(Transaction(id, grant.expires, f"grant {grant.id} expired", postings, meta))
        with self.storage.writing():  # each forfeiture announced in the write that posts it (grant.expired)
            posted = self.storage.append(forfeits)
            self.storage.announce([_grant_expired(t) for t in posted])
        return posted

    # -- two-phase use -------------------------------------------------------------------

    @exact
    def reserve(self, customer: str, asset: str, amount: Decimal, id: str, timeout: dt.timedelta) -> Reservation:
        """Set ``amount`` aside; :class:`InsufficientFunds` and nothing posted when too little is available.

        Idempotent by ``id``: a retry of the same reservation (customer, asset and
        amount) returns the one stored and holds nothing more, whether or not it is
        still open, also when two writers race with it; the same id with other terms
        is a :class:`ReservationError`.
        """
        amount = self._positive(amount)
        check_id("customer", customer)
        check_id("reservation", id)
        if timeout <= dt.timedelta(0):
            raise ReservationError(f"reservation {id}: the timeout must be positive, got {timeout}")
        try:
            return self._hold(customer, asset, amount, id, timeout)
        except (InsufficientFunds, TransactionConflict):
            # Read only now, off the common path: a retry meets its first hold as too few funds
            # (the hold took them) or as a transaction of the same id stamped at another time.
            stored = self.storage.reservations([id]).get(id)
            if stored is None:
                raise
            return self._retried(stored, customer, asset, amount)

    def _hold(self, customer: str, asset: str, amount: Decimal, id: str, timeout: dt.timedelta) -> Reservation:
        now = self.clock()
        sources = self.sources(customer, asset, now)
        draw = draw_from(sources, amount)
        if draw is None:
            have = sum((funds for _, funds in sources), ZERO)
            raise InsufficientFunds(f"customer {customer!r} has {have} {asset} available, {amount} {asset} needed")
        reservation = Reservation(id, customer, asset, amount, now + timeout, tuple(draw))
        postings = [Posting(account, asset, taken) for account, taken in draw]
        postings.append(Posting(held_account(customer), asset, -amount))
        meta = reservation_metadata(reservation)
        transaction = Transaction(reserve_id(id), now, f"reserve {amount} {asset}", tuple(postings), meta)
        self._append_within(transaction, {(account, asset): ZERO for account, _ in draw}, customer, asset, amount)
        return reservation

    def reservation(self, id: str) -> Reservation | None:
        """The open (unsettled, unvoided) reservation ``id``, or None."""
        found = self.storage.reservations([id]).get(id)
        return found if found is not None and found.held else None

    def settle(
        self,
        id: str,
        actual: Decimal,
        revenue_account: str,
        *,
        on_excess: ExcessPolicy = "cap",
        overdraft: Decimal = ZERO,
    ) -> Transaction:
        """Charge ``actual`` against reservation ``id``; what it did not use goes back where it came from."""
        reservation = self._open(id)
        if reservation.expires_at <= self.clock():
            raise ReservationError(
                f"reservation {id} expired at {reservation.expires_at.isoformat()}; it can only be voided"
            )
        actual = to_decimal(actual, "actual")
        if actual < 0:
            raise ReservationError(f"reservation {id}: the actual cost cannot be negative, got {actual}")
        customer, asset = reservation.customer, reservation.asset
        postings = [Posting(held_account(customer), asset, reservation.amount)]
        used = consumed(reservation.draw, actual)
        postings += [Posting(account, asset, used.get(account, ZERO) - taken) for account, taken in reservation.draw]
        owed = actual - min(actual, reservation.amount)
        limits: dict[tuple[str, str], Decimal] = {}
        if owed and on_excess == "overdraft":
            postings.append(Posting(wallet_account(customer), asset, owed))
            limits[(wallet_account(customer), asset)] = to_decimal(overdraft, "overdraft")
        elif owed:
            postings.append(Posting(receivable_account(customer), asset, owed))
        postings.append(Posting(revenue_account, asset, -actual))
        shortfall = str(owed) if on_excess == "cap" else "0"
        meta = {"customer": customer, "reservation": id, "actual": str(actual), "shortfall": shortfall}
        transaction = Transaction(
            release_id(id), self.clock(), f"settle {actual} {asset}", tuple(p for p in postings if p.amount), meta
        )
        try:
            self.storage.append([transaction], limits=limits)
        except LimitExceeded:
            raise InsufficientFunds(
                f"settling {id} would overdraw customer {customer!r} beyond {overdraft} {asset}"
            ) from None
        return transaction

    @exact
    def void(self, id: str, reason: str = "voided") -> Transaction:
        """Release all of reservation ``id`` to the accounts it came from."""
        reservation = self._open(id)
        customer, asset = reservation.customer, reservation.asset
        postings = [Posting(held_account(customer), asset, reservation.amount)]
        postings += [Posting(account, asset, -taken) for account, taken in reservation.draw]
        meta = {"customer": customer, "reservation": id, "reason": reason}
        transaction = Transaction(
            release_id(id), self.clock(), f"{reason}: {reservation.amount} {asset} released", tuple(postings), meta
        )
        self.storage.append([transaction])
        return transaction

    def open_reservations(self) -> list[Reservation]:
        """Every reservation not yet settled, voided or expired."""
        return self.storage.held_reservations()

    def expire(self) -> list[Transaction]:
        """Release every open reservation whose timeout has passed, each announced (``reservation.expired``) in
        the write that releases it."""
        now = self.clock()
        released = []
        for reservation in self.open_reservations():
            if reservation.expires_at <= now:
                with self.storage.writing():
                    release = self.void(reservation.id, "expired")
                    self.storage.announce([_reservation_expired(reservation, release)])
                released.append(release)
        return released

    # -- internals ---------------------------------------------------------------------

    def _post_once(self, transaction: Transaction, *beside: Transaction) -> bool:
        """Append ``transaction`` (and ``beside`` it, in the same write) unless the same postings are already
        stored under its id."""
        existing = self.storage.transaction(transaction.id)
        if existing is not None:
            if existing.postings != transaction.postings:
                raise TransactionConflict(f"transaction {transaction.id} is already stored with different content")
            return False
        return bool(self.storage.append([transaction, *beside]))

    def _append_within(
        self,
        transaction: Transaction,
        limits: Mapping[tuple[str, str], Decimal],
        customer: str,
        asset: str,
        amount: Decimal,
    ) -> None:
        try:
            self.storage.append([transaction], limits=limits)
        except LimitExceeded:
            raise InsufficientFunds(f"customer {customer!r} no longer has {amount} {asset} available") from None

    @staticmethod
    def _retried(stored: Reservation, customer: str, asset: str, amount: Decimal) -> Reservation:
        if (stored.customer, stored.asset, stored.amount) != (customer, asset, amount):
            raise ReservationError(
                f"reservation {stored.id} already holds {stored.amount} {stored.asset} of {stored.customer!r};"
                f" {amount} {asset} of {customer!r} needs another id"
            )
        # As the first reserve returned it: a retry tells nothing of what became of it since.
        return replace(stored, state="held", released_by=None)

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


def _grant_expired(forfeit: Transaction) -> OutboxMessage:
    """The ``grant.expired`` message of a forfeiture: the customer, the grant and what it forfeited."""
    [(asset, amount)] = {(p.asset, p.amount) for p in forfeit.postings if p.amount > 0}
    data = {"customer": forfeit.metadata["customer"], "grant": forfeit.metadata["grant"], "asset": asset}
    return message(GRANT_EXPIRED, forfeit.id, data | {"forfeited": amount}, forfeit.timestamp)


def _reservation_expired(reservation: Reservation, release: Transaction) -> OutboxMessage:
    """The ``reservation.expired`` message: the hold released unused when its timeout passed."""
    data = {"customer": reservation.customer, "reservation": reservation.id, "asset": reservation.asset}
    return message(RESERVATION_EXPIRED, reservation.id, data | {"released": reservation.amount}, release.timestamp)
