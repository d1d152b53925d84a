"""The general-ledger journal: every posting of a period once, debits equal credits per currency, mapped accounts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.billing.close import close_period
from rating.billing.journal import (
    JOURNAL_COLUMNS,
    AccountMap,
    journal,
    journal_csv,
    parse_account_map,
    period_journal,
    totals,
)
from rating.cli import main
from rating.engine import Engine
from rating.errors import JournalError, PricebookError
from rating.invoices.issue import issue_invoices
from rating.invoices.profiles import parse_billing
from rating.ledger import Posting, Transaction
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import parse_pricebook
from rating.refusals import JournalRefusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.sqlite import SQLiteStorage
from tests.helpers import SIMPLE_PRICEBOOK, event, later

BOOK = SIMPLE_PRICEBOOK + "  wally: {plan: basic, billing: wallet}\n"
BILLING = """\
seller: {legal_name: Seller GmbH, address: [Berlin], country: DE, tax_id: DE1}
tax_rules: [{country: DE, rate: 19}]
profiles:
  acme: {legal_name: Acme GmbH, country: DE}
"""
NOVEMBER = dt.datetime(2026, 11, 3, 10, tzinfo=dt.UTC)
MAP = """\
accounts:
  "customer:*:receivable": "1400"
  "customer:*": "1590"          # the wallets and what else a customer holds
  "revenue:*": "8400"
  "revenue:basic:requests": "8401"
  "rounding:*": "6960"
  "tax:*": "1776"
"""


def history(storage: Storage) -> None:
    """acme billed on account (usage, period close, an invoice with its tax), wally paying from a wallet."""
    from rating.wallet.wallets import Wallets

    book = parse_pricebook(BOOK, Registry.load())
    Wallets(storage, lambda: NOVEMBER).deposit("wally", "USD", Decimal(10), "payment:pi_1")
    engine = Engine(book, storage, clock=later)
    engine.rate_batch(
        [
            event("e1", at=NOVEMBER, tokens=1500, model="m"),
            event("e2", at=NOVEMBER + dt.timedelta(days=1), tokens=333, model="m"),
            event("w1", customer="wally", at=NOVEMBER + dt.timedelta(hours=2), tokens=100, model="m"),
        ]
    )
    close_period(engine, "2026-11", ["acme"])
    report = issue_invoices(storage, Catalog([book]), parse_billing(BILLING), "2026-11", ["acme"])
    assert [i.number for i in report.issued] == ["INV-2026-000001"]


def _postings(storage: Storage) -> list[tuple[str, str, Posting]]:
    return [(t.id, t.timestamp.date().isoformat(), p) for t in storage.transactions() for p in t.postings if p.amount]


def test_every_posting_of_the_period_is_one_entry_and_debits_equal_credits(storage: Storage) -> None:
    history(storage)
    entries = period_journal(storage, "2026-11")
    postings = _postings(storage)
    assert len(entries) == len(postings) > 6
    assert sorted((e.reference, e.ledger_account, e.debit - e.credit) for e in entries) == sorted(
        (id, p.account, p.amount) for id, _, p in postings
    )
    assert all((e.debit == 0) != (e.credit == 0) and e.debit >= 0 and e.credit >= 0 for e in entries)
    [(debits, credits)] = totals(entries).values()
    assert debits == credits > 0
    tax = [e for e in entries if e.ledger_account.startswith("tax:")]
    assert tax and all(e.document == "INV-2026-000001" for e in tax)  # the tax transaction names its invoice
    assert period_journal(storage, "2026-10") == [] and period_journal(storage, "2026-12") == []


def test_aggregated_per_account_and_day_the_sums_are_the_same_and_balance(storage: Storage) -> None:
    history(storage)
    each, daily = period_journal(storage, "2026-11"), period_journal(storage, "2026-11", aggregate="day")
    assert len(daily) < len(each)
    net: dict[tuple[dt.date, str, str], Decimal] = {}
    for entry in each:
        key = (entry.date, entry.account, entry.currency)
        net[key] = net.get(key, Decimal(0)) + entry.debit - entry.credit
    assert {(e.date, e.account, e.currency): e.debit - e.credit for e in daily} == {k: v for k, v in net.items() if v}
    assert len({(e.date, e.account, e.currency) for e in daily}) == len(daily)
    for debits, credits in totals(daily).values():
        assert debits == credits
    by_day: dict[dt.date, Decimal] = {}
    for entry in daily:  # each day balances on its own: every transaction of it does
        by_day[entry.date] = by_day.get(entry.date, Decimal(0)) + entry.debit - entry.credit
    assert set(by_day.values()) == {Decimal(0)}


def test_the_account_map_maps_exact_names_before_the_most_specific_pattern(storage: Storage) -> None:
    history(storage)
    accounts = parse_account_map(MAP)
    assert accounts.account_of("revenue:basic:requests") == "8401"  # exact before revenue:*
    assert accounts.account_of("revenue:basic:tokens") == "8400"
    assert accounts.account_of("customer:acme:receivable") == "1400"  # more specific than customer:*
    assert accounts.account_of("customer:wally:wallet") == "1590"
    assert accounts.account_of("payments:received") is None
    mapped = period_journal(storage, "2026-11", accounts=parse_account_map(MAP + '  "payments:*": "1200"\n'))
    assert {e.account for e in mapped} <= {"1200", "1400", "1590", "8400", "8401", "6960", "1776"}
    assert [e.ledger_account for e in mapped] == [e.ledger_account for e in period_journal(storage, "2026-11")]
    [(debits, credits)] = totals(mapped).values()
    assert debits == credits


def test_unmapped_accounts_refuse_the_whole_journal_naming_each(storage: Storage) -> None:
    history(storage)
    with pytest.raises(JournalError) as refused:
        period_journal(storage, "2026-11", accounts=AccountMap.of({"revenue:*": "8400"}))
    assert refused.value.code == JournalRefusal.UNMAPPED_ACCOUNTS
    message = str(refused.value)
    assert message.startswith("unmapped_accounts: ")
    for account in ("customer:acme:receivable", "customer:wally:wallet", "tax:VAT:DE"):
        assert account in message
    assert "revenue:basic:tokens" not in message


def test_a_bad_account_map_is_refused_at_its_position() -> None:
    with pytest.raises(PricebookError) as bad:
        parse_account_map("accounts:\n  revenue:*: 0120\n", "map.yaml")
    assert bad.value.problems[0].startswith("map.yaml:2:") and '"0120"' not in bad.value.problems[0]
    assert "quoted text" in bad.value.problems[0]
    with pytest.raises(PricebookError):
        parse_account_map("revenue:*: '8400'\n", "map.yaml")  # no accounts: key
    with pytest.raises(PricebookError):
        parse_account_map("accounts:\n  a: '1'\n  a: '2'\n", "map.yaml")  # a key twice
    assert parse_account_map("accounts: {'*': '9999'}\n").account_of("anything:at:all") == "9999"


def test_dates_and_the_period_are_seen_in_the_time_zone_given() -> None:
    late = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)  # 1 December, 00:30 in Berlin
    moved = Transaction("t1", late, "late", (Posting("a", "EUR", Decimal("1.5")), Posting("b", "EUR", Decimal("-1.5"))))
    [debit, credit] = journal([moved], timezone=dt.timezone(dt.timedelta(hours=1)))
    assert debit.date == credit.date == dt.date(2026, 12, 1)
    assert (debit.account, debit.debit, debit.credit, credit.account, credit.debit, credit.credit) == (
        "a", Decimal("1.5"), Decimal(0), "b", Decimal(0), Decimal("1.5"),
    )  # fmt: skip
    assert journal_csv([debit]).splitlines() == [",".join(JOURNAL_COLUMNS), "2026-12-01,a,1.5,0,EUR,t1,,a,late"]


ACCOUNTS = st.sampled_from(["customer:a:receivable", "customer:b:wallet", "revenue:p:m", "tax:VAT:DE", "x", "y:z"])
AMOUNTS = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=8, allow_nan=False)


@st.composite
def balanced(draw: st.DrawFn) -> list[Transaction]:
    """Transactions of one or two currencies, each balanced by a last posting to a random account."""
    transactions = []
    for number in range(draw(st.integers(1, 8))):
        postings = []
        for currency in draw(st.lists(st.sampled_from(["EUR", "USD", "CREDITS"]), min_size=1, max_size=2, unique=True)):
            amounts = draw(st.lists(AMOUNTS, min_size=1, max_size=4))
            postings += [Posting(draw(ACCOUNTS), currency, amount) for amount in amounts]
            postings.append(Posting(draw(ACCOUNTS), currency, -sum(amounts, Decimal(0))))
        at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(hours=draw(st.integers(0, 24 * 29)))
        transactions.append(Transaction(f"t{number}", at, "", tuple(postings)))
    return transactions


@settings(max_examples=150, deadline=None)
@given(balanced(), st.sampled_from([None, "day"]), st.booleans())
def test_any_balanced_ledger_gives_a_journal_whose_debits_equal_its_credits(
    transactions: list[Transaction], aggregate: str | None, mapped: bool
) -> None:
    accounts = AccountMap.of({"customer:*": "1400", "revenue:*": "8400", "*": "9999"}) if mapped else None
    entries = journal(transactions, accounts=accounts, aggregate=aggregate)  # type: ignore[arg-type]
    for debits, credits in totals(entries).values():
        assert debits == credits
    for row in csv.DictReader(io.StringIO(journal_csv(entries))):  # the CSV's exact decimals balance too
        assert Decimal(row["debit"]) >= 0 and Decimal(row["credit"]) >= 0


def test_journal_export_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    with SQLiteStorage(tmp_path / "rating.db") as storage:
        history(storage)
    (tmp_path / "map.yaml").write_text(MAP)
    assert main(["journal", "export", "--period", "2026-11", "--accounts", "map.yaml"]) == 3  # payments unmapped
    assert "unmapped_accounts" in capsys.readouterr().err
    (tmp_path / "map.yaml").write_text(MAP + '  "*": "9999"\n')
    assert main(["journal", "export", "--period", "2026-11", "--accounts", "map.yaml", "--aggregate", "day"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and list(rows[0]) == JOURNAL_COLUMNS
    assert sum(Decimal(r["debit"]) for r in rows) == sum(Decimal(r["credit"]) for r in rows) > 0
    assert main(["journal", "--period", "2026-11", "export", "-o", "json", "--timezone", "Europe/Berlin"]) == 0
    entries = json.loads(capsys.readouterr().out)
    # the period's close and its tax are dated at its last instant in UTC: in Berlin, 1 December already
    assert {e["reference"].split(":")[0] for e in entries} == {"rating", "deposit"}
    assert main(["journal", "export", "--period", "2026-12", "-o", "json", "--timezone", "Europe/Berlin"]) == 0
    assert {e["reference"].split(":")[0] for e in json.loads(capsys.readouterr().out)} >= {"tax", "rounding"}
    assert main(["journal", "export", "--period", "2026-11", "--timezone", "Mars/Olympus"]) == 2
    assert "is not a time zone" in capsys.readouterr().err
    assert main(["journal", "export"]) == 2  # --period is required


def test_the_shipped_account_map_maps_every_account_the_ledger_names() -> None:
    from rating import accounts as a
    from rating.billing.journal import load_account_map
    from tests.helpers import ROOT

    shipped = load_account_map(ROOT / "pricebooks" / "accounts.yaml")
    names = [
        a.receivable_account("c"), a.wallet_account("c"), a.grant_account("c", "g"), a.held_account("c"),
        a.prepaid_account("c"), a.refund_account("c"), a.SHARES_ACCOUNT, a.PROCESSOR_ACCOUNT, a.PROVIDERS_ACCOUNT,
        a.FORFEITED_ACCOUNT, a.PAYMENTS_ACCOUNT, a.revenue_account("p", "m"), a.contract_revenue_account("k"),
        a.cost_account("m"), a.creator_account("x"), a.grants_account("promotional"), a.rounding_account("USD"),
        a.payouts_account("USD"), a.tax_account("VAT", "DE"),
    ]  # fmt: skip
    assert {name: shipped.account_of(name) for name in names if shipped.account_of(name) is None} == {}
    assert shipped.account_of(a.SHARES_ACCOUNT) == "8700" and shipped.account_of(a.receivable_account("c")) == "1400"


def test_the_tours_journal_with_the_shipped_map_balances(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import EXAMPLE, ROOT

    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    issue = ["invoice", "issue", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing]
    assert main([*issue, "--date", "2026-12-01"]) == 1  # initech is billed in credits: refused
    capsys.readouterr()
    accounts = str(ROOT / "pricebooks" / "accounts.yaml")
    assert main(["journal", "export", "--db", "history.db", "--period", "2026-11", "--accounts", accounts]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {row["account"] for row in rows} >= {"1400", "8400", "3100", "1600"}
    for currency in {row["currency"] for row in rows}:
        mine = [row for row in rows if row["currency"] == currency]
        assert sum(Decimal(r["debit"]) for r in mine) == sum(Decimal(r["credit"]) for r in mine) > 0
