"""Wallet funding as data: grants and reservations, their ledger transactions, and the arithmetic of a draw.

Pure (no storage, no I/O): the rating core's wallet policy
(:func:`rating.core.policies.fund_from_wallet`) draws with it, storage keeps grants
and reservations as records of these types, and :mod:`rating.wallet.wallets` writes
them. The transactions that create or change a grant or a reservation carry
its terms in their metadata; :func:`grant_of`, :func:`reservation_of` and
:func:`release_state` read them back, which storage does once, in the write
that stores the transaction (and the schema migration did for older ones).

- a grant is issued by ``grant:CUSTOMER:GRANT`` and its expired remainder
  forfeited by ``forfeit:CUSTOMER:GRANT:N`` (``N`` counts the forfeitures);
- a reservation is held by ``reserve:ID`` and released, once, by
  ``release:ID``: settled (by :meth:`~rating.wallet.wallets.Wallets.settle` or a
  metered request's rating), voided, or expired.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from rating.accounts import grant_account, wallet_account
from rating.ids import TransactionKind, parse
from rating.ledger import Transaction
from rating.money import ZERO

#: A draw: how much each funding account gives, in consumption order.
Draw = list[tuple[str, Decimal]]
#: Where a reservation is in its lifecycle.
ReservationState = Literal["held", "settled", "voided", "expired"]

#: The transaction kinds that issue, forfeit, hold and release grants and reservations (see the module).
FUNDING_KINDS = frozenset(
    {TransactionKind.GRANT, TransactionKind.FORFEIT, TransactionKind.RESERVE, TransactionKind.RELEASE}
)


@dataclass(frozen=True)
class Grant:
    """Credit given to a customer, spent before purchased funds, by ``priority`` then earliest expiry.

    ``forfeits`` counts the forfeitures of its remainder posted after it expired (a reservation voided
    after the expiry brings funds back, forfeited again by a later one).
    """

    id: str
    customer: str
    asset: str
    amount: Decimal
    kind: str
    priority: int
    starts: dt.datetime
    expires: dt.datetime | None
    forfeits: int = 0

    @property
    def account(self) -> str:
        """The ledger account holding what is left of the grant."""
        return grant_account(self.customer, self.id)

    def in_force(self, at: dt.datetime) -> bool:
        """Whether the grant can be spent at ``at``."""
        return self.starts <= at and (self.expires is None or at < self.expires)


@dataclass(frozen=True)
class Reservation:
    """Funds set aside for work about to run, and the accounts they were drawn from.

    ``state`` is ``held`` until the release ``released_by`` settled, voided or expired it.
    """

    id: str
    customer: str
    asset: str
    amount: Decimal
    expires_at: dt.datetime
    draw: tuple[tuple[str, Decimal], ...]
    state: ReservationState = "held"
    released_by: str | None = None

    @property
    def held(self) -> bool:
        """Whether the reservation still holds its funds (neither settled, voided nor expired)."""
        return self.state == "held"


def consumption_order(grants: list[Grant], at: dt.datetime) -> list[Grant]:
    """Grants in force at ``at``, in the order they are spent."""
    latest = dt.datetime.max.replace(tzinfo=dt.UTC)
    live = [g for g in grants if g.in_force(at)]
    return sorted(live, key=lambda g: (g.priority, g.expires or latest, g.starts, g.id))


def funding_sources(
    customer: str, asset: str, at: dt.datetime, grants: list[Grant], balance: Callable[[str, str], Decimal]
) -> list[tuple[str, Decimal]]:
    """The accounts that fund ``customer``'s spending in ``asset`` at ``at``, with their funds, in consumption order.

    ``balance`` gives an account's ledger balance (a credit is negative): from storage, or from a
    batch's running view of it.
    """
    ordered = consumption_order([g for g in grants if g.asset == asset], at)
    accounts = [g.account for g in ordered] + [wallet_account(customer)]
    return [(account, -balance(account, asset)) for account in accounts]


def draw_from(sources: list[tuple[str, Decimal]], amount: Decimal) -> Draw | None:
    """Take ``amount`` from ``sources`` (account, funds) in order; None when they hold too little."""
    draw: Draw = []
    left = amount
    for account, funds in sources:
        if left <= 0:
            break
        take = min(funds, left)
        if take > 0:
            draw.append((account, take))
            left -= take
    return draw if left <= 0 else None


def consumed(draw: tuple[tuple[str, Decimal], ...], actual: Decimal) -> dict[str, Decimal]:
    """How much of each drawn account ``actual`` uses, in the order they were drawn."""
    used: dict[str, Decimal] = {}
    left = actual
    for account, taken in draw:
        use = min(taken, left)
        used[account] = used.get(account, ZERO) + use
        left -= use
    return used


# -- the metadata of the transactions that carry them ----------------------------------------------------


def grant_metadata(grant: Grant) -> dict[str, str]:
    """The metadata of the transaction ``grant:CUSTOMER:GRANT`` that issues ``grant``."""
    return {
        "grant": grant.id,
        "customer": grant.customer,
        "asset": grant.asset,
        "amount": str(grant.amount),
        "kind": grant.kind,
        "priority": str(grant.priority),
        "starts": grant.starts.isoformat(),
        "expires": grant.expires.isoformat() if grant.expires else "",
    }


def grant_of(transaction: Transaction) -> Grant:
    """The grant a ``grant:CUSTOMER:GRANT`` transaction issues (its metadata); raises on a malformed one."""
    meta = transaction.metadata
    expires = dt.datetime.fromisoformat(meta["expires"]) if meta.get("expires") else None
    return Grant(
        meta["grant"],
        meta["customer"],
        meta["asset"],
        Decimal(meta["amount"]),
        meta["kind"],
        int(meta["priority"]),
        dt.datetime.fromisoformat(meta["starts"]),
        expires,
    )


def forfeited_grant(transaction: Transaction) -> tuple[str, str]:
    """(customer, grant) whose remainder a ``forfeit:`` transaction forfeits."""
    meta = transaction.metadata
    return str(meta.get("customer", "")), str(meta.get("grant", ""))


def reservation_metadata(reservation: Reservation) -> dict[str, str]:
    """The metadata of the transaction ``reserve:ID`` that holds ``reservation``."""
    return {
        "customer": reservation.customer,
        "asset": reservation.asset,
        "amount": str(reservation.amount),
        "expires_at": reservation.expires_at.isoformat(),
        "draw": json.dumps([[a, str(t)] for a, t in reservation.draw]),
    }


def reservation_of(opened: Transaction) -> Reservation:
    """The reservation a ``reserve:ID`` transaction holds (its metadata), as held; raises on a malformed one."""
    meta = opened.metadata
    draw = tuple((account, Decimal(taken)) for account, taken in json.loads(meta["draw"]))
    expires = dt.datetime.fromisoformat(meta["expires_at"])
    id = parse(opened.id).reservation
    return Reservation(id, meta["customer"], meta["asset"], Decimal(meta["amount"]), expires, draw)


def release_state(release: Transaction) -> tuple[str, ReservationState]:
    """(reservation id, state) a ``release:ID`` transaction leaves its reservation in: ``settled`` when it
    charged an actual cost, ``expired`` when :meth:`~rating.wallet.wallets.Wallets.expire` voided it, else
    ``voided``."""
    meta = release.metadata
    id = str(meta.get("reservation") or parse(release.id).reservation)
    if "actual" in meta:
        return id, "settled"
    return id, "expired" if meta.get("reason") == "expired" else "voided"


def released(reservation: Reservation, release: Transaction) -> Reservation:
    """``reservation`` as the release ``release`` leaves it."""
    _, state = release_state(release)
    return Reservation(
        reservation.id,
        reservation.customer,
        reservation.asset,
        reservation.amount,
        reservation.expires_at,
        reservation.draw,
        state,
        release.id,
    )
