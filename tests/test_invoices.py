"""Invoices come from the ledger's charge records, equal the receivable's movement, and are numbered without gaps."""

from __future__ import annotations

import datetime as dt
import io
import json
import multiprocessing
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.accounts import receivable_account, rounding_account
from rating.billing.close import close_period
from rating.cli import main
from rating.engine import Engine
from rating.errors import PricebookError
from rating.events import UsageEvent
from rating.invoices.issue import invoices, issue_invoices
from rating.invoices.profiles import Billing, TaxError, parse_billing, tax_for
from rating.invoices.render import invoice_csv, invoice_html, invoice_pdf
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook
from rating.refusals import InvoiceRefusal, Refusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import EXAMPLE, ROOT, SIMPLE_PRICEBOOK, event, later
from tests.simulate.test_simulate import CUSTOMERS, books, histories, usage
from tests.test_arrival_order import PREPAID
from tests.test_rerate import PRICEBOOK as REFIXABLE
from tests.test_telescoping import METER_SPECS, REGISTRY

BILLING = """\
seller: {legal_name: Seller GmbH, address: [Berlin], country: DE, tax_id: DE1}
tax_rules:
  - {country: DE, rate: 16, from: 2020-07-01}
  - {country: DE, rate: 19, from: 2021-01-01}
  - {country: AU, rate: 10, name: GST}
profiles:
  acme: {legal_name: Acme GmbH, address: [Hauptstr. 1, Berlin], country: DE, language: de}
  listed: {legal_name: Listed Ltd, country: AU}
  walk-in: {legal_name: Walk In SARL, country: FR, tax_id: FR1}
  contracted: {legal_name: Contracted GmbH, country: DE}
"""
ISSUED = dt.date(2026, 12, 1)
NOVEMBER = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
WALLET_PRICEBOOK = SIMPLE_PRICEBOOK + "  wally: {plan: basic, billing: wallet}\n  nobody: {plan: basic}\n"


def billed(book: Pricebook, storage: Storage, events: list[UsageEvent], *periods: str) -> Engine:
    engine = Engine(book, storage, REGISTRY, clock=later)
    engine.rate_batch(events)
    for period in periods:
        close_period(engine, period)
    return engine


@settings(max_examples=60)
@given(histories())
def test_every_invoice_adds_up_and_the_invoices_equal_the_receivable(history: tuple[Pricebook, list]) -> None:  # type: ignore[type-arg]
    book, events = history
    engine = billed(book, MemoryStorage(), events, "2026-10", "2026-11")
    billing = parse_billing(BILLING)
    catalog = Catalog([book])
    issued = []
    for period in ("2026-10", "2026-11"):
        report = issue_invoices(engine.storage, catalog, billing, period, CUSTOMERS, issued=ISSUED)
        assert {code for _, code, _ in report.refused} <= {InvoiceRefusal.NOTHING_TO_INVOICE}
        issued += report.issued
    for invoice in issued:
        assert sum(line.amount for line in invoice.lines) == invoice.subtotal
        assert sum(line.tax for line in invoice.lines) == invoice.tax_total
        assert invoice.total == invoice.subtotal + invoice.tax_total
        assert all(line.amount == line.amount.quantize(Decimal("0.01")) for line in invoice.lines)
        # No rounding line: each line takes less than a cent of the rounding, and the tax is rounded once.
        assert all(abs(line.amount - line.exact) < Decimal("0.01") for line in invoice.lines)
        assert all(line.account != rounding_account("USD") for line in invoice.lines)
        assert invoice.tax_total == (invoice.subtotal * invoice.tax.rate / 100).quantize(Decimal("0.01"))
    balances = engine.storage.balances()
    for customer in CUSTOMERS:
        owed = balances.get((receivable_account(customer), "USD"), Decimal(0))
        assert sum((i.total for i in issued if i.customer == customer), Decimal(0)) == owed
    assert engine.storage.verify() == []


def test_issuing_numbers_each_invoice_once_and_posts_its_tax(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    engine = billed(book(SIMPLE_PRICEBOOK), storage, [event("e1", at=NOVEMBER, tokens=1500, model="m")], "2026-11")
    catalog, billing = Catalog([engine.pricebook]), parse_billing(BILLING)
    report = issue_invoices(storage, catalog, billing, "2026-11", ["acme"], issued=ISSUED)
    [invoice] = report.issued
    # 0.01 a request + 1000 tokens at 0.001 + 500 at 0.0005 = 1.26; German VAT 19 % on the lines as rounded.
    assert (invoice.number, invoice.subtotal, invoice.tax_total, invoice.total) == (
        "INV-2026-000001",
        Decimal("1.26"),
        Decimal("0.24"),
        Decimal("1.50"),
    )
    assert invoice.tax.rate == 19 and invoice.due == ISSUED + dt.timedelta(days=14)
    again = issue_invoices(storage, catalog, billing, "2026-11", ["acme"], issued=ISSUED)
    assert again.issued == [] and again.existing == [invoice]
    assert storage.balances([receivable_account("acme")])[receivable_account("acme"), "USD"] == invoice.total
    assert [i.number for i in invoices(storage, customer="acme")] == ["INV-2026-000001"]
    assert storage.verify() == []


def test_lines_take_the_rounding_by_largest_remainder_and_tax_is_rounded_once(book) -> None:  # type: ignore[no-untyped-def]
    """Issue 20: no rounding line; tax on the net sum, allocated back to the lines by largest remainder."""
    events = [event(f"e{i}", at=NOVEMBER, tokens=15, model=f"m{i}") for i in range(1, 4)]
    engine = billed(book(SIMPLE_PRICEBOOK), MemoryStorage(), events, "2026-11")
    [invoice] = issue_invoices(
        engine.storage, Catalog([engine.pricebook]), parse_billing(BILLING), "2026-11", issued=ISSUED
    ).issued
    # 0.03 of requests and three times 15 tokens at 0.001: 0.075 in all, 0.08 half to even. The two cents the
    # token lines are short go to the first two of the three equal remainders (ties in line order).
    assert [(line.description, line.exact, line.amount) for line in invoice.lines] == [
        ("Requests", Decimal("0.03"), Decimal("0.03")),
        ("Tokens (m1)", Decimal("0.015"), Decimal("0.02")),
        ("Tokens (m2)", Decimal("0.015"), Decimal("0.02")),
        ("Tokens (m3)", Decimal("0.015"), Decimal("0.01")),
    ]
    # 19 % of 0.08 is 0.0152: 0.02, rounded once (per line it was 0.01 + 0.00 + 0.00 + 0.00). The shares
    # 0.0057, 0.0038, 0.0038, 0.0019 are all below a cent: the two largest remainders take one each.
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (Decimal("0.08"), Decimal("0.02"), Decimal("0.10"))
    assert [line.tax for line in invoice.lines] == [Decimal("0.01"), Decimal("0.01"), Decimal("0.00"), Decimal("0.00")]
    owed = engine.storage.balances([receivable_account("acme")])[receivable_account("acme"), "USD"]
    assert owed == invoice.total


def test_an_issued_invoice_keeps_its_tax_and_profile_when_they_change(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    engine = billed(book(SIMPLE_PRICEBOOK), storage, [event("e1", at=NOVEMBER, tokens=100, model="m")], "2026-11")
    catalog = Catalog([engine.pricebook])
    first = issue_invoices(engine.storage, catalog, parse_billing(BILLING), "2026-11", issued=ISSUED).issued[0]
    changed = parse_billing(BILLING.replace("rate: 19", "rate: 25").replace("Acme GmbH", "Acme AG"))
    assert issue_invoices(engine.storage, catalog, changed, "2026-11", issued=ISSUED).existing == [first]
    assert invoices(engine.storage, first.number)[0].buyer.legal_name == "Acme GmbH"


@pytest.mark.parametrize(
    ("customer", "closed", "code"),
    [
        ("acme", False, InvoiceRefusal.PERIOD_OPEN),
        ("wally", True, InvoiceRefusal.WALLET_BILLED),
        ("nobody", True, InvoiceRefusal.NO_PROFILE),
    ],
)
def test_what_cannot_be_invoiced_is_refused_with_its_code(
    book, customer: str, closed: bool, code: InvoiceRefusal
) -> None:  # type: ignore[no-untyped-def]
    periods = ("2026-11",) if closed else ()
    engine = billed(book(WALLET_PRICEBOOK), MemoryStorage(), [event("e1", at=NOVEMBER, tokens=1, model="m")], *periods)
    billing = parse_billing(BILLING + "  wally: {legal_name: W, country: DE}\n")
    report = issue_invoices(engine.storage, Catalog([engine.pricebook]), billing, "2026-11", [customer])
    assert report.issued == [] and [c for _, c, _ in report.refused] == [code]


def test_tax_follows_status_country_and_the_rule_in_force() -> None:
    billing = parse_billing(BILLING)
    profile = billing.profiles["acme"]
    assert tax_for(billing, profile, dt.date(2020, 8, 1)).rate == 16
    assert tax_for(billing, profile, ISSUED).rate == 19
    assert tax_for(billing, billing.profiles["walk-in"], ISSUED).name == "reverse charge"
    assert tax_for(billing, profile.model_copy(update={"tax_status": "exempt"}), ISSUED).rate == 0
    with pytest.raises(TaxError, match="no tax rule for country US"):
        tax_for(billing, profile.model_copy(update={"country": "US"}), ISSUED)


def test_a_bad_billing_file_is_refused_with_positions() -> None:
    with pytest.raises(PricebookError) as raised:
        parse_billing(BILLING.replace("country: AU}", "country: Australia}"), "billing.yaml")
    assert raised.value.problems[0].startswith("billing.yaml:8:36:")
    assert "profiles.listed.country" in raised.value.problems[0]


def _issue_all(url: str) -> int:
    registry = Registry.load()
    from rating.pricebook.model import parse_pricebook

    storage = registry.open_storage(url)
    book = parse_pricebook(SIMPLE_PRICEBOOK + "default_plan: basic\n", registry)
    billing = Billing.model_validate(json.loads(BILLING_JSON))
    return len(issue_invoices(storage, Catalog([book]), billing, "2026-11", issued=ISSUED).issued)


CUSTOMER_IDS = [f"c{i:02d}" for i in range(24)]
BILLING_JSON = json.dumps(
    {
        "seller": {"legal_name": "S", "country": "DE"},
        "tax_rules": [{"country": "*", "rate": "0"}],
        "profiles": {c: {"legal_name": c, "country": "US"} for c in CUSTOMER_IDS},
    }
)


@pytest.mark.parametrize("kind", ["sqlite"] + (["postgres"] if POSTGRES_URL else []))
def test_eight_processes_issuing_at_once_leave_no_gap_and_no_duplicate(kind: str, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    url = str(tmp_path / "shared.db") if kind == "sqlite" else postgres_url()
    storage = registry.open_storage(url)
    from rating.pricebook.model import parse_pricebook

    book = parse_pricebook(SIMPLE_PRICEBOOK + "default_plan: basic\n", registry)
    billed(book, storage, [event(f"e-{c}", customer=c, at=NOVEMBER, tokens=5, model="m") for c in CUSTOMER_IDS])
    close_period(Engine(book, storage, registry), "2026-11")
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        counts = pool.map(_issue_all, [url] * 8)
    issued = invoices(storage)
    assert sum(counts) == len(CUSTOMER_IDS)
    assert sorted(i.number for i in issued) == [f"INV-2026-{n:06d}" for n in range(1, len(CUSTOMER_IDS) + 1)]
    assert sorted(i.customer for i in issued) == CUSTOMER_IDS
    storage.close()


def test_the_pdf_and_html_show_the_number_lines_tax_and_totals_in_the_buyers_language(book) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    engine = billed(
        book(SIMPLE_PRICEBOOK), MemoryStorage(), [event("e1", at=NOVEMBER, tokens=1500, model="m")], "2026-11"
    )
    [invoice] = issue_invoices(
        engine.storage, Catalog([engine.pricebook]), parse_billing(BILLING), "2026-11", issued=ISSUED
    ).issued
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(invoice_pdf(invoice))).pages)
    for expected in ("Rechnung INV-2026-000001", "Zwischensumme", "1,26 USD", "Steuer (VAT 19 %)", "0,24 USD",
                     "Gesamtbetrag", "1,50 USD", "01.12.2026", "Tokens (m)"):  # fmt: skip
        assert expected in text
    page = invoice_html(invoice)
    assert page.startswith("<!DOCTYPE html>") and 'lang="de"' in page and "1,50 USD" in page
    english = invoice.model_copy(update={"buyer": invoice.buyer.model_copy(update={"language": "en"})})
    assert "Total due" in invoice_html(english) and "1.50 USD" in invoice_html(english)
    rows = invoice_csv([invoice]).splitlines()
    assert (
        rows[0].startswith("number,customer")
        and "INV-2026-000001,acme,2026-11,Requests,1,requests,0.01,0.01,0.00" in rows
    )


def test_invoice_commands_issue_list_and_write_documents(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    issue = ["invoice", "issue", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing]
    capsys.readouterr()
    assert main([*issue, "--date", "2026-12-01", "-o", "json", "--pdf", "docs"]) == 1  # done, initech refused
    captured = capsys.readouterr()
    issued = json.loads(captured.out)
    assert [i["number"] for i in issued] == [f"INV-2026-{n:06d}" for n in range(1, len(issued) + 1)]
    assert "initech: currency_mismatch" in captured.err  # a credits plan gets a statement, not an invoice
    assert all((demo_history.parent / "docs" / f"{i['number']}.pdf").stat().st_size > 1000 for i in issued)
    assert main(["invoice", "show", "INV-2026-000001", "--db", "history.db", "-o", "csv"]) == 0
    assert capsys.readouterr().out.startswith("number,customer,period")
    assert main(["invoice", "show", "INV-2099-000001", "--db", "history.db"]) == 3


def test_late_usage_goes_into_the_next_open_period_and_its_invoice_says_so(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    late_book = book(SIMPLE_PRICEBOOK + "late_usage: next_period\n")
    engine = billed(late_book, storage, [event("e1", at=NOVEMBER, tokens=100, model="m")], "2026-11")
    december = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    engine.rate_batch([event("late", at=NOVEMBER + dt.timedelta(days=1), tokens=100, model="m")])
    engine.rate_batch([event("on-time", at=december, tokens=100, model="m")])
    posted = storage.transaction("rating:late")
    assert posted is not None and posted.metadata["late_for"] == "2026-11"
    assert storage.period_totals("2026-11") == {("acme", "USD"): Decimal("0.110")}  # as closed
    close_period(engine, "2026-12")
    billing = parse_billing(BILLING)
    [invoice] = issue_invoices(storage, Catalog([late_book]), billing, "2026-12", issued=ISSUED).issued
    descriptions = [line.description for line in invoice.lines]
    assert "Tokens (m), late usage of 2026-11" in descriptions and "Tokens (m)" in descriptions
    # December's tier counts the late 100 tokens before the on-time 100: 200 tokens at 0.001, 2 requests.
    assert invoice.subtotal == Decimal("0.22")


def test_late_usage_is_refused_by_default(book) -> None:  # type: ignore[no-untyped-def]
    engine = billed(book(SIMPLE_PRICEBOOK), MemoryStorage(), [event("e1", at=NOVEMBER, tokens=1, model="m")], "2026-11")
    report = engine.rate_batch([event("late", at=NOVEMBER, tokens=1, model="m")])
    assert [r.code for r in report.rejected] == [Refusal.CLOSED_PERIOD]


def test_without_the_pdf_renderer_nothing_is_issued(demo_history: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import sys

    monkeypatch.setitem(sys.modules, "fpdf", None)  # as if the invoices extra were not installed
    assert main(["close-period", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    issue = ["invoice", "issue", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing]
    assert main([*issue, "--pdf", "docs"]) == 3
    assert "invoices extra" in capsys.readouterr().err
    assert main(["invoice", "list", "--db", "history.db", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


#: A tiered pricebook whose first tier's price a fix changes (``first``), as the rerate tests use it.
REFIXED = REFIXABLE.replace("  wally: {{plan: basic, billing: wallet}}\n", "")


def test_a_correction_of_a_closed_period_is_invoiced_next_on_its_own_line(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 5: re-rating invoiced November puts the difference on December's invoice, once."""
    from rating.billing.rerate import rerate

    wrong, fixed = book(REFIXED.format(first="0.001")), book(REFIXED.format(first="0.002"))
    engine = billed(wrong, storage, [event("n1", at=NOVEMBER, tokens=6000), event("n2", at=NOVEMBER, tokens=500)])
    close_period(engine, "2026-11")
    billing = parse_billing(BILLING)
    [november] = issue_invoices(storage, Catalog([wrong]), billing, "2026-11", ["acme"], issued=ISSUED).issued
    assert november.subtotal == Decimal("3.75")  # 1000 at 0.001 and 5500 at 0.0005
    now = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
    rerate(storage, Catalog([fixed]), registry, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now, clock=lambda: now)
    fixing = Engine(fixed, storage, registry, clock=later)
    fixing.rate_batch([event("d1", at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC), tokens=100)])
    close_period(fixing, "2026-12")
    report = issue_invoices(storage, Catalog([fixed]), billing, "2026-12", ["acme"], issued=dt.date(2027, 1, 1))
    assert report.refused == []
    [december] = report.issued
    # December's own 100 tokens at 0.002, then November's first 1000 tokens re-priced 0.001 dearer, on its own line.
    assert [(line.description, line.amount, line.adjusts, line.adjusts_invoice) for line in december.lines] == [
        ("Tokens", Decimal("0.20"), None, None),
        ("Tokens, adjustment of 2026-11 (INV-2026-000001)", Decimal("1.00"), "2026-11", "INV-2026-000001"),
    ]
    totals = (december.subtotal, december.tax_total, december.total)
    assert totals == (Decimal("1.20"), Decimal("0.23"), Decimal("1.43"))
    owed = storage.balances([receivable_account("acme")])[receivable_account("acme"), "USD"]
    assert owed == november.total + december.total
    assert storage.verify() == []


def test_a_period_that_owes_less_than_nothing_is_a_credit_note_carried_to_the_next_invoice(
    storage: Storage, book, registry, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 (close): a negative period total is a credit, issued as a credit note and taken off the next
    invoice; paying what the invoices ask leaves the receivable at zero."""
    from rating.billing.rerate import rerate
    from rating.invoices.settle import credit_invoice, invoice_status, pay_invoice

    wrong, fixed = book(REFIXED.format(first="0.002")), book(REFIXED.format(first="0.001"))
    engine = billed(wrong, storage, [event("n1", at=NOVEMBER, tokens=6000), event("n2", at=NOVEMBER, tokens=500)])
    close_period(engine, "2026-11")
    billing = parse_billing(BILLING)
    [november] = issue_invoices(storage, Catalog([wrong]), billing, "2026-11", ["acme"], issued=ISSUED).issued
    assert november.total == Decimal("5.65")  # 1000 at 0.002 and 5500 at 0.0005, and 19 % tax
    pay_invoice(storage, november.number, november.total, "pay-nov")
    now = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
    rerate(storage, Catalog([fixed]), registry, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now, clock=lambda: now)
    fixing = Engine(fixed, storage, registry, clock=later)
    fixing.rate_batch([event("d1", at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC), tokens=100)])
    close_period(fixing, "2026-12")
    # December: 0.10 of usage and -1.00 of November's correction: -0.90, tax -0.17. No minimum true-up.
    december = issue_invoices(storage, Catalog([fixed]), billing, "2026-12", ["acme"], issued=dt.date(2027, 1, 1))
    assert (december.issued, december.refused) == ([], [])
    [note] = december.credit_notes
    assert (note.number, note.invoice, note.period, note.subtotal, note.tax_total, note.total) == (
        "CN-2027-000001",
        None,
        "2026-12",
        Decimal("0.90"),
        Decimal("0.17"),
        Decimal("1.07"),
    )
    assert [(line.description, line.amount) for line in note.lines] == [
        ("Tokens – Stufe 1: erste 1.000", Decimal("-0.10")),  # as December's page shows it: acme reads German
        ("Tokens, adjustment of 2026-11 (INV-2026-000001)", Decimal("1.00")),
    ]
    again = issue_invoices(storage, Catalog([fixed]), billing, "2026-12", ["acme"], issued=dt.date(2027, 1, 2))
    assert (again.credit_notes, again.existing_credit_notes, again.issued) == ([], [note], [])
    if isinstance(storage, SQLiteStorage):  # the command says so
        (tmp_path / "fixed.yaml").write_text(REFIXED.format(first="0.001"))
        (tmp_path / "billing.yaml").write_text(BILLING)
        files = ["-p", str(tmp_path / "fixed.yaml"), "--billing", str(tmp_path / "billing.yaml")]
        assert (
            main(
                [
                    "invoice",
                    "issue",
                    "--db",
                    str(tmp_path / "rating.db"),
                    "--period",
                    "2026-12",
                    "--customer",
                    "acme",
                    *files,
                ]
            )
            == 0
        )
        said = capsys.readouterr().err
        assert "acme: 2026-12 owes less than nothing: credit note CN-2027-000001 of 1.07 USD" in said
        assert "issued 0 invoices, 0 already issued, 1 credit notes, 0 refused" in said
        show = ["invoice", "show", "CN-2027-000001", "--db", str(tmp_path / "rating.db")]
        assert main([*show, "-o", "json"]) == 0
        [shown] = json.loads(capsys.readouterr().out)
        assert (shown["invoice"], shown["period"], shown["total"]) == (None, "2026-12", "1.07")
        assert main(show) == 0 and "period 2026-12" in capsys.readouterr().out
    receivable = receivable_account("acme")
    assert storage.balances([receivable])[receivable, "USD"] == -note.total  # the customer's credit
    fixing.rate_batch([event("j1", at=dt.datetime(2027, 1, 5, tzinfo=dt.UTC), tokens=6000)])
    close_period(fixing, "2027-01")
    [january] = issue_invoices(
        storage, Catalog([fixed]), billing, "2027-01", ["acme"], issued=dt.date(2027, 2, 1)
    ).issued
    # 1000 at 0.001 and 5000 at 0.0005 = 3.50, tax 0.665 half-even 0.66; less December's credit of 1.07.
    assert (january.subtotal, january.tax_total, january.total) == (Decimal("3.50"), Decimal("0.66"), Decimal("3.09"))
    assert [(c.number, c.period, c.amount) for c in january.carried] == [("CN-2027-000001", "2026-12", Decimal("1.07"))]
    assert storage.balances([receivable])[receivable, "USD"] == january.total
    carried = "Verrechnete Gutschrift CN-2027-000001 (2026-12)"  # acme reads German
    assert f"{carried}</td><td class=n>-1,07 USD" in invoice_html(january)
    assert "Credit carried from CN-2027-000001 (2026-12),,,,-1.07,0" in invoice_csv([january])
    from pypdf import PdfReader

    assert carried in "".join(page.extract_text() for page in PdfReader(io.BytesIO(invoice_pdf(january))).pages)
    pay_invoice(storage, january.number, january.total, "pay-jan")
    assert invoice_status(storage, january).state == "paid"
    assert storage.balances([receivable]).get((receivable, "USD"), Decimal(0)) == 0
    # Cancelled with a refund: what was paid (3.09) and the credit it carried (1.07) go back; it is credited.
    note, _ = credit_invoice(storage, january.number, "cancel", "cancelled", refund="customer")
    assert (note.total, note.refund) == (Decimal("4.16"), Decimal("4.16"))
    assert invoice_status(storage, january).state == "credited"
    assert storage.verify() == []


@st.composite
def refixed_histories(draw: st.DrawFn) -> tuple[Pricebook, Pricebook, list[UsageEvent]]:
    aggregation = draw(st.sampled_from(sorted(METER_SPECS)))
    return draw(books(aggregation)), draw(books(aggregation)), draw(usage())


@settings(max_examples=40)
@given(refixed_histories())
def test_corrections_of_invoiced_periods_are_invoiced_once_and_the_invoices_equal_the_receivable(
    history: tuple[Pricebook, Pricebook, list[UsageEvent]],
) -> None:
    """Invoice October and November, re-rate both by a fixed pricebook in December, invoice December and January:
    every period is issued (an invoice, or a credit note when the corrections exceed it, carried to the next
    invoice), and together they equal each customer's receivable to the cent."""
    from rating.billing.rerate import rerate
    from rating.invoices.issue import open_credits

    wrong, fixed, events = history
    engine = billed(wrong, MemoryStorage(), events, "2026-10", "2026-11")
    billing = parse_billing(BILLING)
    issued = []
    for period in ("2026-10", "2026-11"):
        issued += issue_invoices(engine.storage, Catalog([wrong]), billing, period, CUSTOMERS, issued=ISSUED).issued
    now = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
    rerate(engine.storage, Catalog([fixed]), REGISTRY, dt.datetime(2026, 10, 1, tzinfo=dt.UTC), now, clock=lambda: now)
    fixing = Engine(fixed, engine.storage, REGISTRY, clock=later)
    close_period(fixing, "2026-12")
    january = dt.datetime(2027, 1, 5, tzinfo=dt.UTC)
    props = {"q": Decimal(1), "member": "a", "g": "x"}
    fixing.rate_batch([event(f"jan-{c}", customer=c, type="use", at=january, **props) for c in CUSTOMERS])
    close_period(fixing, "2027-01")
    notes = []
    for period in ("2026-12", "2027-01"):
        report = issue_invoices(engine.storage, Catalog([fixed]), billing, period, CUSTOMERS, issued=ISSUED)
        assert {code for _, code, _ in report.refused} <= {InvoiceRefusal.NOTHING_TO_INVOICE}
        issued += report.issued
        notes += report.credit_notes
    for document in [*issued, *notes]:
        assert sum(line.amount for line in document.lines) == document.subtotal
        assert sum(line.tax for line in document.lines) == document.tax_total
    assert all(invoice.total >= 0 for invoice in issued) and all(note.total > 0 for note in notes)
    balances = engine.storage.balances()
    for customer in CUSTOMERS:
        owed = balances.get((receivable_account(customer), "USD"), Decimal(0))
        open_credit = sum((note.total for note in open_credits(engine.storage, customer)), Decimal(0))
        assert sum((i.total for i in issued if i.customer == customer), Decimal(0)) - open_credit == owed
        carried = [c.number for i in issued if i.customer == customer for c in i.carried]
        assert len(carried) == len(set(carried))  # each credit note carried once


MINIMUM_FIX = """\
pricebook: fixes
version: 2026-10-01
currency: USD
meters:
  tokens: {{event: api.call, sum: tokens}}
plans:
  basic:
    {floor}: "5"
    charges:
      - {{meter: tokens, model: per_unit, unit_price: "{price}"}}
customers:
  acme: {{plan: basic}}
"""
COMMITTED = "contracts:\n  deal: {customer: acme, from: 2026-10-01, commitment: '5', charges: []}\n"


@pytest.mark.parametrize("floor", ["minimum", "commitment"])
def test_a_minimum_or_commitment_never_takes_back_the_correction_of_a_closed_period(
    storage: Storage, book, registry, floor: str
) -> None:  # type: ignore[no-untyped-def]
    """Attack finding: a -2.00 re-rating of invoiced November, posted into December, was counted as December's
    spend, so December's minimum (or commitment) true-up grew by 2.00 and took the refund back."""
    from rating.billing.rerate import rerate

    def priced(price: str) -> Pricebook:
        text = MINIMUM_FIX.format(floor="minimum", price=price)
        if floor == "commitment":
            text = text.replace('    minimum: "5"\n', "") + COMMITTED
        return book(text)

    wrong, fixed = priced("0.010"), priced("0.008")
    engine = billed(wrong, storage, [event("n1", at=NOVEMBER, tokens=1000)], "2026-11")
    billing = parse_billing(BILLING)
    issue_invoices(storage, Catalog([wrong]), billing, "2026-11", ["acme"], issued=ISSUED)
    now = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
    rerate(storage, Catalog([fixed]), registry, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now, clock=lambda: now)
    fixing = Engine(fixed, storage, registry, clock=later)
    fixing.rate_batch([event("d1", at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC), tokens=375)])
    close_period(fixing, "2026-12")
    [december] = issue_invoices(storage, Catalog([fixed]), billing, "2026-12", ["acme"], issued=ISSUED).issued
    true_up = "minimum spend true-up" if floor == "minimum" else "commitment true-up"
    # 375 tokens at 0.008 = 3.00, a true-up to 5 of 2.00, and November's correction of -2.00.
    assert [(line.description, line.amount) for line in december.lines] == [
        ("Tokens", Decimal("3.00")),
        (true_up, Decimal("2.00")),
        ("Tokens, adjustment of 2026-11 (INV-2026-000001)", Decimal("-2.00")),
    ]
    assert december.subtotal == Decimal("3.00")
    assert engine.storage.verify() == []


#: The arrival tests' prepaid contract at sub-cent prices.
PREPAID_SUB_CENT = PREPAID.replace('unit_price: "2"}', 'unit_price: "2.001"}').replace(
    'unit_price: "0.1"}', 'unit_price: "0.1003"}'
)


def test_sub_cent_usage_paid_from_a_prepaid_commitment_is_invoiced_and_rounded_on_what_is_owed(
    storage: Storage, book
) -> None:  # type: ignore[no-untyped-def]
    """Attack finding: close rounded the period's charges, though the prepaid commitment paid them, so the
    receivable moved by 9.9979 and the invoices were refused for good (``ledger_mismatch``)."""
    engine = billed(
        book(PREPAID_SUB_CENT),
        storage,
        [event("n1", at=NOVEMBER, units=3), event("d1", at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC), units=7)],
        "2026-11",
        "2026-12",
    )
    billing, catalog = parse_billing(BILLING), Catalog([engine.pricebook])
    issued = []
    for period in ("2026-11", "2026-12"):
        report = issue_invoices(storage, catalog, billing, period, ["acme"], issued=ISSUED)
        assert report.refused == []
        issued += report.issued
    receivable = receivable_account("acme")
    assert sum(i.total for i in issued) == storage.balances([receivable])[receivable, "USD"]
    assert all(i.total == i.total.quantize(Decimal("0.01")) for i in issued)
    assert storage.verify() == []


def test_a_full_credit_after_a_re_rating_never_gives_back_what_the_re_rating_gave_back(
    storage: Storage, book, registry
) -> None:  # type: ignore[no-untyped-def]
    """Attack finding: November (11.90, paid) re-rated 2.00 lower, carried as December's credit note (2.38);
    a full credit of November with a refund then gave back 11.90 more: 14.28 of the 11.90 paid."""
    from rating.billing.rerate import rerate
    from rating.invoices.issue import open_credits
    from rating.invoices.settle import credit_invoice, pay_invoice

    def priced(price: str) -> Pricebook:  # per unit, no minimum
        return book(MINIMUM_FIX.format(floor="minimum", price=price).replace('    minimum: "5"\n', ""))

    wrong, fixed = priced("0.010"), priced("0.008")
    billed(wrong, storage, [event("n1", at=NOVEMBER, tokens=1000)], "2026-11")
    billing = parse_billing(BILLING)
    [november] = issue_invoices(storage, Catalog([wrong]), billing, "2026-11", ["acme"], issued=ISSUED).issued
    pay_invoice(storage, november.number, november.total, "pay-nov")
    now = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
    rerate(storage, Catalog([fixed]), registry, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now, clock=lambda: now)
    close_period(Engine(fixed, storage, registry, clock=later), "2026-12")
    [carried] = issue_invoices(storage, Catalog([fixed]), billing, "2026-12", ["acme"], issued=ISSUED).credit_notes
    assert carried.total == Decimal("2.38")
    note, _ = credit_invoice(storage, november.number, "full", "cancelled", refund="customer")
    assert (note.total, note.refund) == (Decimal("9.52"), Decimal("9.52"))  # 11.90 less the 2.38 given back
    given_back = note.refund + sum(n.total for n in open_credits(storage, "acme"))
    assert given_back == november.total
    assert storage.balances(["revenue:basic:tokens"]).get(("revenue:basic:tokens", "USD"), Decimal(0)) == 0
    assert storage.verify() == []
