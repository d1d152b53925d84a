"""Statements: what a customer's wallet did in a billing period, per asset, from the ledger alone.

A wallet customer gets a statement instead of an invoice: per asset, the funds
available at the start (wallet, grants and held reservations together), what
top-ups and grants added, what usage spent, what expired, what refunds and
chargebacks took back, the funds at the end, and what the customer owes when
funds were taken back after they were spent, or usage was dated before the
funds that paid it arrived (never shown as negative funds: the movement
``owed usage`` moves it to what is owed, and back when later funds pay it).
Usage is broken down by meter and group (model) from the charge records;
credits are shown with their value in the pricebook currency where it is
declared (``sells_for``).

``statement_csv`` gives the accountant's export: one row per movement of a
customer's accounts in the period, with the running balance of each account.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from rating.accounts import customer_account, held_account, receivable_account, wallet_account
from rating.ids import TransactionKind as K
from rating.ledger import Transaction
from rating.money import ZERO, exact
from rating.periods import bounds_of, zone
from rating.pricebook.model import Pricebook
from rating.storage import Storage
from rating.wallet.wallets import Wallets

#: What a movement of funds is, by the kind of its transaction.
CATEGORIES: dict[str, str] = {
    K.DEPOSIT: "top-ups",
    K.GRANT: "grants",
    K.RATING: "usage",
    K.RERATE: "usage",
    # Holds move funds between the wallet and the held account (no movement of funds); what a settled
    # reservation paid leaves the funds as usage.
    K.RESERVE: "usage",
    K.RELEASE: "usage",
    K.SETTLE: "usage",
    K.FORFEIT: "expiries",
    K.REFUND: "refunds",
    K.CHARGEBACK: "chargebacks",
}
#: The movement that turns usage spent before its funds arrived into what is owed (positive), and back
#: when later funds pay it (negative): funds are never shown below zero.
OWED_USAGE = "owed usage"
#: Every movement a statement shows, in the order of its columns.
MOVEMENTS = tuple(sorted({*CATEGORIES.values(), OWED_USAGE}))
#: Every kind of transaction that can move a customer's accounts.
KINDS = (
    *CATEGORIES,
    K.CREDIT,
    K.TAX,
    K.FEE,
    K.MINIMUM,
    K.COMMITMENT,
    K.ROUNDING,
    K.PREPAYMENT,
)


class AssetSummary(BaseModel):
    """One asset of a statement: funds at the start, what moved them, funds and debt at the end."""

    model_config = ConfigDict(frozen=True)

    asset: str
    opening: Decimal
    movements: dict[str, Decimal]
    closing: Decimal
    owed: Decimal
    closing_value: Decimal | None = None


class UsageLine(BaseModel):
    """Usage of one meter and group in the period, and what it was charged."""

    model_config = ConfigDict(frozen=True)

    meter: str
    group: tuple[str, ...]
    quantity: Decimal
    asset: str
    amount: Decimal


class Statement(BaseModel):
    """A customer's statement for one billing period."""

    model_config = ConfigDict(frozen=True)

    customer: str
    period: str
    start: dt.datetime
    end: dt.datetime
    currency: str
    assets: tuple[AssetSummary, ...]
    usage: tuple[UsageLine, ...]


def _funding_accounts(storage: Storage, customer: str) -> list[str]:
    grants = [grant.account for grant in Wallets(storage).grants(customer)]
    return [wallet_account(customer), held_account(customer), *grants]


def _transactions(storage: Storage, customer: str, start: dt.datetime, end: dt.datetime) -> list[Transaction]:
    found = [t for kind in KINDS for t in storage.transactions_of(kind, customer) if start <= t.timestamp < end]
    return sorted(found, key=lambda t: t.timestamp)


@exact
def statement(storage: Storage, book: Pricebook, customer: str, period: str) -> Statement:
    """``customer``'s statement of ``period``, in the time zone and anchor of its billing periods."""
    _, start, end = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
    funding = _funding_accounts(storage, customer)
    receivable = receivable_account(customer)
    opening = storage.account_totals([*funding, receivable], start)
    closing = storage.account_totals([*funding, receivable], end)
    movements: dict[str, dict[str, Decimal]] = {}
    for transaction in _transactions(storage, customer, start, end):
        category = CATEGORIES.get(transaction.kind)
        for posting in transaction.postings:
            if category is not None and posting.account in funding:
                per_asset = movements.setdefault(posting.asset, {})
                per_asset[category] = per_asset.get(category, ZERO) - posting.amount
    assets = sorted({asset for _, asset in (*opening, *closing)} | set(movements))
    summaries = []
    for asset in assets:
        funds_then = -sum((opening.get((a, asset), ZERO) for a in funding), ZERO)
        funds_now = -sum((closing.get((a, asset), ZERO) for a in funding), ZERO)
        # Usage dated before the funds that paid it (rated after a later top-up, or late) leaves the funds
        # negative at a period's edge: that is owed, never negative funds; OWED_USAGE keeps the sum.
        short_then, short_now = max(ZERO, -funds_then), max(ZERO, -funds_now)
        moved = dict(movements.get(asset, {}))
        moved[OWED_USAGE] = short_now - short_then
        summaries.append(
            AssetSummary(
                asset=asset,
                opening=funds_then + short_then,
                movements={k: v for k, v in sorted(moved.items()) if v},
                closing=funds_now + short_now,
                owed=closing.get((receivable, asset), ZERO) + short_now,
                closing_value=book.value_of(funds_now + short_now, asset),
            )
        )
    return Statement(
        customer=customer,
        period=period,
        start=start,
        end=end,
        currency=book.currency,
        assets=tuple(summaries),
        usage=tuple(_usage(storage, customer, period)),
    )


def _usage(storage: Storage, customer: str, period: str) -> list[UsageLine]:
    summed: dict[tuple[str, tuple[str, ...], str], tuple[Decimal, Decimal]] = {}
    for stored in storage.charges(customer):
        charge = stored.charge
        if charge.period == period:
            key = (charge.meter, charge.group, charge.asset)
            quantity, amount = summed.get(key, (ZERO, ZERO))
            summed[key] = (quantity + charge.quantity, amount + charge.amount)
    return [
        UsageLine(meter=meter, group=group, quantity=quantity, asset=asset, amount=amount)
        for (meter, group, asset), (quantity, amount) in sorted(summed.items())
        if quantity or amount
    ]


STATEMENT_COLUMNS = ["date", "customer", "transaction", "kind", "account", "asset", "amount", "balance", "description"]


@exact
def statement_csv(storage: Storage, book: Pricebook, customers: list[str], period: str) -> str:
    """Every movement of the customers' accounts in ``period``, with each account's running balance."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_COLUMNS)
    for customer in sorted(customers):
        _, start, end = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
        transactions = _transactions(storage, customer, start, end)
        accounts = sorted({p.account for t in transactions for p in t.postings if _owned_by(p.account, customer)})
        balances = storage.account_totals(accounts, start)
        for transaction in transactions:
            for posting in transaction.postings:
                if posting.account not in accounts:
                    continue
                key = (posting.account, posting.asset)
                balances[key] = balances.get(key, ZERO) + posting.amount
                writer.writerow(
                    [
                        transaction.timestamp.isoformat(),
                        customer,
                        transaction.id,
                        transaction.kind,
                        posting.account,
                        posting.asset,
                        str(posting.amount),
                        str(balances[key]),
                        transaction.description,
                    ]
                )
    return out.getvalue()


def _owned_by(account: str, customer: str) -> bool:
    owner = customer_account(account)
    return owner is not None and owner[0] == customer
