"""A customer's money per asset (wallet funds and what is owed), and what a reservation paid.

The figures ``rating balance CUSTOMER`` and ``rating request complete`` print, for embedders
that want them without the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rating.accounts import held_account, receivable_account
from rating.ledger import Transaction
from rating.money import ZERO
from rating.storage import Storage
from rating.wallet.wallets import Reservation, Wallets


@dataclass(frozen=True)
class CustomerBalance:
    """One asset of a customer: the wallet's ``available``, ``reserved`` and ``posted`` funds, and what is ``owed``.

    ``posted = available + reserved`` (see :class:`rating.wallet.wallets.WalletBalance`); ``owed`` is the
    balance of the customer's receivable, what usage billed and payments have not yet settled.
    """

    asset: str
    available: Decimal
    reserved: Decimal
    posted: Decimal
    owed: Decimal


def customer_balances(storage: Storage, customer: str) -> list[CustomerBalance]:
    """Per asset (sorted), the customer's wallet funds and what is owed; empty if the ledger has neither."""
    wallet = Wallets(storage).balance(customer)
    owed = {asset: amount for (_, asset), amount in storage.balances([receivable_account(customer)]).items()}
    balances = []
    for asset in sorted(set(wallet) | set(owed)):
        funds = wallet.get(asset)
        balances.append(
            CustomerBalance(
                asset=asset,
                available=funds.available if funds else ZERO,
                reserved=funds.reserved if funds else ZERO,
                posted=funds.posted if funds else ZERO,
                owed=owed.get(asset, ZERO),
            )
        )
    return balances


def reservation_used(reservation: Reservation, transaction: Transaction) -> Decimal:
    """What of ``reservation`` paid ``transaction`` (the request rated against it); the rest was released."""
    holding = held_account(reservation.customer)
    return sum((p.amount for p in transaction.postings if p.account == holding), ZERO)
