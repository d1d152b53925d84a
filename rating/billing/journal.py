"""The general-ledger journal of a period: every ledger transaction as debit and credit entries an accountant imports.

``period_journal(storage, "2026-11")`` reads the ledger transactions dated in
the period (in ``timezone``, UTC unless told) and writes one entry per posting:
its date, the account, the amount as a debit (positive postings) or a credit
(negative ones), the currency (the posting's asset), the reference (the
transaction id) and the document it belongs to (the invoice or credit note a
tax, payment or credit transaction names). With ``aggregate="day"`` the
entries are summed per account, currency and day, each sum shown on the side
it falls (an account that nets to zero in a day has no entry).

Every transaction balances per asset, so the journal's debits equal its credits
per currency, entry by entry and aggregated alike (:func:`totals`).

**Accounts.** Entries name the ledger's accounts (``customer:acme:receivable``,
``revenue:pro:tokens``, ``tax:VAT:DE`` ...) unless an account-mapping file
maps them to the user's chart of accounts (:func:`load_account_map`)::

    accounts:
      "customer:*:receivable": "1400"   # a pattern: * stands for any text, ':' included
      "revenue:*": "8400"
      "tax:VAT:DE": "1776"              # an exact name
      "payments:received": "1200"

An exact name wins over a pattern; of several patterns that match, the one with
the most characters besides ``*`` wins (the more specific), then the one written
first. A ledger account with postings in the period that nothing maps refuses
the whole export (``unmapped_accounts``, naming every such account): nothing is
written half mapped. A catch-all ``"*"`` maps what the others do not.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rating.errors import JournalError, PricebookError
from rating.ledger import Transaction
from rating.money import ZERO, exact
from rating.periods import bounds_of, zone
from rating.pricebook import yamlstrict
from rating.pricebook.model import Problems
from rating.refusals import JournalRefusal
from rating.storage import Storage

#: How entries may be summed: per account, currency and day.
Aggregate = Literal["day"]

#: The columns of the CSV, in order.
JOURNAL_COLUMNS = ["date", "account", "debit", "credit", "currency", "reference", "document", "ledger_account",
                   "description"]  # fmt: skip


class JournalEntry(BaseModel):
    """One line of the journal: ``debit`` or ``credit`` (the other is zero) on ``account`` in ``currency``.

    ``reference`` is the ledger transaction's id (aggregated: ``DAY/N`` for the N transactions summed);
    ``document`` the invoice or credit note the transaction names, if any; ``ledger_account`` the ledger's
    own account (aggregated: the ledger accounts summed, space-separated)."""

    model_config = ConfigDict(frozen=True)

    date: dt.date
    account: str
    debit: Decimal
    credit: Decimal
    currency: str
    reference: str
    document: str = ""
    ledger_account: str
    description: str = ""


class AccountMap(BaseModel):
    """Ledger accounts to accounts of the user's chart: exact names, and patterns where ``*`` is any text."""

    model_config = ConfigDict(frozen=True)

    exact: dict[str, str] = {}
    #: (pattern, account), most specific first (the most characters besides ``*``, then file order).
    patterns: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, rules: Mapping[str, str]) -> AccountMap:
        """The map of ``rules`` (ledger account or pattern -> chart account), in the order written."""
        exact = {key: value for key, value in rules.items() if "*" not in key}
        patterns = [(key, value) for key, value in rules.items() if "*" in key]
        ordered = sorted(enumerate(patterns), key=lambda item: (-len(item[1][0].replace("*", "")), item[0]))
        return cls(exact=exact, patterns=tuple(rule for _, rule in ordered))

    def account_of(self, ledger_account: str) -> str | None:
        """The chart account ``ledger_account`` maps to, or None when no rule does."""
        found = self.exact.get(ledger_account)
        if found is not None:
            return found
        for pattern, account in self.patterns:
            if _compiled(pattern).fullmatch(ledger_account):
                return account
        return None


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regular expression: ``*`` is any text (``:`` included), every other character itself."""
    found = _PATTERNS.get(pattern)
    if found is None:
        found = _PATTERNS[pattern] = re.compile(".*".join(map(re.escape, pattern.split("*"))), re.S)
    return found


def parse_account_map(text: str, source: str = "<accounts>") -> AccountMap:
    """Validate account-mapping YAML (``accounts:`` ledger account or pattern -> chart account, as text).

    Every problem is named at ``file:line:column`` (:class:`~rating.errors.PricebookError`). Chart accounts
    must be quoted text: a YAML number would lose its leading zeros (``"0120"``)."""
    try:
        document = yamlstrict.load(text)
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{source}:{error}"]) from None
    problems = Problems(source, document)
    data = document.data
    if not isinstance(data, dict) or set(data) != {"accounts"} or not isinstance(data["accounts"], dict):
        problems.add((), "an account-mapping file is a mapping with one key, accounts: ledger account -> account")
        problems.raise_if_any()
    rules: dict[str, str] = {}
    for key, value in data["accounts"].items():
        if not isinstance(key, str) or not key:
            problems.add(("accounts",), f"{key!r} is not a ledger account name or pattern (write it as text)")
        elif isinstance(value, Decimal):
            problems.add(("accounts", key), f'write account {value} as quoted text ("{value}"): a number loses zeros')
        elif not isinstance(value, str) or not value.strip():
            problems.add(("accounts", key), "the account it maps to must be non-empty text")
        else:
            rules[key] = value
    problems.raise_if_any()
    return AccountMap.of(rules)


def load_account_map(path: str | Path) -> AccountMap:
    """Read and validate an account-mapping file (see the module's docstring)."""
    try:
        text = yamlstrict.read_file(path, "account-mapping file")
    except OSError as error:
        raise PricebookError([f"{path}: cannot read account-mapping file: {error}"]) from None
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{path}:{error}"]) from None
    return parse_account_map(text, str(path))


def _document_of(transaction: Transaction) -> str:
    """The invoice or credit note a transaction names (a credit note before the invoice it credits)."""
    return transaction.metadata.get("credit_note") or transaction.metadata.get("invoice") or ""


@exact
def journal(
    transactions: Iterable[Transaction],
    *,
    timezone: dt.tzinfo = dt.UTC,
    accounts: AccountMap | None = None,
    aggregate: Aggregate | None = None,
) -> list[JournalEntry]:
    """The journal of ``transactions``, in the order given: one entry per non-zero posting, or summed per
    account, currency and day (``aggregate="day"``), dated in ``timezone``.

    With ``accounts``, entries name the chart accounts they map to; any ledger account left unmapped refuses
    the whole journal (:class:`~rating.errors.JournalError`, ``unmapped_accounts``, naming each one)."""
    transactions = list(transactions)
    mapped: dict[str, str] = {}
    unmapped: set[str] = set()
    for account in {p.account for t in transactions for p in t.postings}:
        chart = account if accounts is None else accounts.account_of(account)
        if chart is None:
            unmapped.add(account)
        else:
            mapped[account] = chart
    if unmapped:
        shown = sorted(unmapped)
        more = f" (and {len(shown) - 20:,} more)" if len(shown) > 20 else ""
        raise JournalError(
            JournalRefusal.UNMAPPED_ACCOUNTS,
            f"no rule of the account-mapping file maps {', '.join(shown[:20])}{more}",
        )
    entries = [
        _entry(
            transaction.timestamp.astimezone(timezone).date(),
            mapped[posting.account],
            posting.amount,
            posting.asset,
            transaction.id,
            _document_of(transaction),
            posting.account,
            transaction.description,
        )
        for transaction in transactions
        for posting in transaction.postings
        if posting.amount
    ]
    return entries if aggregate is None else _by_day(entries)


def _entry(
    day: dt.date, account: str, amount: Decimal, currency: str, reference: str, document: str, ledger: str, text: str
) -> JournalEntry:
    debit, credit = (amount, ZERO) if amount > 0 else (ZERO, -amount)
    return JournalEntry(
        date=day, account=account, debit=debit, credit=credit, currency=currency, reference=reference,
        document=document, ledger_account=ledger, description=text,
    )  # fmt: skip


def _by_day(entries: list[JournalEntry]) -> list[JournalEntry]:
    """Entries summed per day, account and currency (in date, account, currency order), each on its side."""
    sums: dict[tuple[dt.date, str, str], tuple[Decimal, set[str], set[str]]] = {}
    for entry in entries:
        amount, ledgers, references = sums.get((entry.date, entry.account, entry.currency), (ZERO, set(), set()))
        ledgers.add(entry.ledger_account)
        references.add(entry.reference)
        sums[(entry.date, entry.account, entry.currency)] = (amount + entry.debit - entry.credit, ledgers, references)
    return [
        _entry(day, account, amount, currency, f"{day.isoformat()}/{len(references)}", "", " ".join(sorted(ledgers)),
               f"{len(references):,} transactions")
        for (day, account, currency), (amount, ledgers, references) in sorted(sums.items())
        if amount
    ]  # fmt: skip


def period_transactions(storage: Storage, period: str, timezone: dt.tzinfo = dt.UTC) -> list[Transaction]:
    """The ledger transactions dated in ``period`` (its calendar bounds in ``timezone``), in time order.

    Reads the whole ledger once (:meth:`~rating.storage.Storage.transactions`): an export, not a hot path."""
    _, start, end = bounds_of(period, timezone)
    found = [t for t in storage.transactions() if start <= t.timestamp < end]
    return sorted(found, key=lambda t: t.timestamp)  # stable: stored order within the same instant


def period_journal(
    storage: Storage,
    period: str,
    *,
    timezone: str = "UTC",
    accounts: AccountMap | None = None,
    aggregate: Aggregate | None = None,
) -> list[JournalEntry]:
    """The journal of ``period`` (seen in the tz database zone ``timezone``), see :func:`journal`."""
    tz = zone(timezone)
    return journal(period_transactions(storage, period, tz), timezone=tz, accounts=accounts, aggregate=aggregate)


@exact
def totals(entries: Iterable[JournalEntry]) -> dict[str, tuple[Decimal, Decimal]]:
    """(debits, credits) per currency: equal in every journal of balanced transactions."""
    sums: dict[str, tuple[Decimal, Decimal]] = {}
    for entry in entries:
        debit, credit = sums.get(entry.currency, (ZERO, ZERO))
        sums[entry.currency] = (debit + entry.debit, credit + entry.credit)
    return sums


def _row(entry: JournalEntry) -> list[str]:
    return [entry.date.isoformat(), entry.account, f"{entry.debit:f}", f"{entry.credit:f}", entry.currency,
            entry.reference, entry.document, entry.ledger_account, entry.description]  # fmt: skip


def journal_csv(entries: Iterable[JournalEntry]) -> str:
    """The journal as CSV (:data:`JOURNAL_COLUMNS`): amounts as exact decimal text (``0`` on the other side)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JOURNAL_COLUMNS)
    writer.writerows(map(_row, entries))
    return out.getvalue()


def journal_json(entries: Iterable[JournalEntry]) -> str:
    """The journal as a JSON array of objects (:data:`JOURNAL_COLUMNS`), amounts as decimal text."""
    return json.dumps([dict(zip(JOURNAL_COLUMNS, _row(entry), strict=True)) for entry in entries], indent=2)
