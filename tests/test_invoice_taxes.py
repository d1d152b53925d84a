"""Tax per category: computed on the category's net sum and rounded once, a breakdown on the page, names per
language and reasons as text, all declared in the billing file; an invoice with one category reads as before."""

from __future__ import annotations

import io
import json
from decimal import Decimal

from rating.invoices.issue import Invoice, TaxBreakdown, issue_invoices
from rating.invoices.profiles import parse_billing
from rating.invoices.render import invoice_html, invoice_pdf
from rating.invoices.settle import credit_invoice
from rating.pricebook.catalog import Catalog
from rating.refusals import InvoiceRefusal
from rating.storage import Storage
from tests.helpers import SIMPLE_PRICEBOOK, event
from tests.test_invoices import BILLING, NOVEMBER, billed

CATEGORIES = """\
pricebook: taxes
version: 2026-11-01
currency: USD
meters:
  pages: {event: api.call, sum: pages}
  ebooks: {event: api.call, sum: ebooks, tax_category: books}
  audio: {event: api.call, sum: minutes, tax_category: books}
plans:
  basic:
    charges:
      - {meter: pages, model: per_unit, unit_price: "0.23"}
      - {meter: ebooks, model: per_unit, unit_price: "1"}
      - {meter: audio, model: per_unit, unit_price: "0.5", tax_category: audio}
customers:
  acme: {plan: basic}
  hooli: {plan: basic}
"""
RULES = """\
seller: {legal_name: Seller GmbH, address: [Berlin], country: DE, tax_id: DE1}
reverse_charge_reason: {en: "Article 196 of Directive 2006/112/EC", de: "Art. 196 MwStSystRL"}
tax_rules:
  - {country: DE, rate: 19, names: {de: USt.}}
  - country: DE
    category: books
    rate: 7
    names: {de: USt.}
    reason: {en: Reduced rate for e-books, de: Ermäßigter Steuersatz für E-Books}
  - {country: DE, category: audio, rate: 0, name: exempt, reason: "Exempt under section 4 no. 21 UStG"}
profiles:
  acme: {legal_name: Acme GmbH, address: [Hauptstr. 1, Berlin], country: DE, language: de}
  hooli: {legal_name: Hooli SAS, country: FR, tax_id: FR1}
"""


def test_each_category_is_taxed_on_its_net_sum_rounded_once_and_the_page_shows_the_breakdown(
    storage: Storage, book
) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    # Two events of 10 pages at 0.23 (2.30 each), an e-book, two audio minutes.
    calls = [event(f"e{i}", at=NOVEMBER, pages=10, ebooks=i, minutes=2 * i) for i in (0, 1)]
    billed(book(CATEGORIES), storage, calls, "2026-11")
    [invoice] = issue_invoices(storage, Catalog([book(CATEGORIES)]), parse_billing(RULES), "2026-11", ["acme"]).issued
    assert [(line.tax_category, line.amount, line.tax) for line in invoice.lines] == [
        (None, Decimal("4.60"), Decimal("0.87")),
        ("books", Decimal("1.00"), Decimal("0.07")),
        ("audio", Decimal("1.00"), Decimal("0.00")),
    ]
    # 19 % of 4.60 is 0.874: 0.87, rounded once (two lines of 2.30 rounded each would have made 0.88).
    assert invoice.taxes == (
        TaxBreakdown(category=None, name="VAT", rate=19, rule="DE any from 1970-01-01", taxable=Decimal("4.60"),
                     tax=Decimal("0.87"), names={"de": "USt."}),
        TaxBreakdown(category="books", name="VAT", rate=7, rule="DE books any from 1970-01-01", taxable=Decimal("1.00"),
                     tax=Decimal("0.07"), names={"de": "USt."}, reason="Ermäßigter Steuersatz für E-Books"),
        TaxBreakdown(category="audio", name="exempt", rate=0, rule="DE audio any from 1970-01-01",
                     taxable=Decimal("1.00"), tax=Decimal("0.00"), reason="Exempt under section 4 no. 21 UStG"),
    )  # fmt: skip
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (Decimal("6.60"), Decimal("0.94"), Decimal("7.54"))
    assert invoice.tax.category is None and invoice.tax.rate == 19  # the lines without a category
    assert storage.balances(["tax:VAT:DE"])["tax:VAT:DE", "USD"] == Decimal("-0.94")
    assert storage.balances(["customer:acme:receivable"])["customer:acme:receivable", "USD"] == invoice.total
    assert Invoice.from_json(invoice.to_json()) == invoice
    page = invoice_html(invoice)
    for expected in ("Steuer (USt. 19 % auf 4,60 USD)</td><td class=n>0,87 USD",
                     "Steuer (USt. 7 % auf 1,00 USD)</td><td class=n>0,07 USD",
                     "Steuer (exempt 0 % auf 1,00 USD)</td><td class=n>0,00 USD",
                     "USt. 7 %: Ermäßigter Steuersatz für E-Books",
                     "exempt 0 %: Exempt under section 4 no. 21 UStG"):  # fmt: skip
        assert expected in page
    text = "".join(sheet.extract_text() for sheet in PdfReader(io.BytesIO(invoice_pdf(invoice))).pages)
    assert "Steuer (USt. 19 % auf 4,60 USD)" in text and "Ermäßigter Steuersatz für E-Books" in text
    # A full credit takes every line's tax back from its own category's account: every account as before.
    credit_invoice(storage, invoice.number, "cancel", "cancelled")
    assert {key: amount for key, amount in storage.balances().items() if amount} == {}
    assert storage.verify() == []


def test_a_reverse_charge_or_exemption_says_why(book) -> None:  # type: ignore[no-untyped-def]
    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    billed(book(CATEGORIES), storage, [event("e1", customer="hooli", at=NOVEMBER, pages=10, ebooks=0, minutes=0)])
    from rating.billing.close import close_period
    from rating.engine import Engine
    from tests.helpers import later
    from tests.test_telescoping import REGISTRY

    close_period(Engine(book(CATEGORIES), storage, REGISTRY, clock=later), "2026-11")
    [invoice] = issue_invoices(storage, Catalog([book(CATEGORIES)]), parse_billing(RULES), "2026-11", ["hooli"]).issued
    assert [(t.name, t.tax, t.reason) for t in invoice.taxes] == [
        ("reverse charge", Decimal("0.00"), "Article 196 of Directive 2006/112/EC")
    ]
    page = invoice_html(invoice)
    assert (
        "Reverse charge: VAT to be accounted for by the recipient.</p><p>Article 196 of Directive 2006/112/EC</p>"
        in page
    )
    exempt = RULES.replace("tax_id: FR1}", "tax_id: FR1, tax_status: exempt, tax_reason: Registered charity}")
    other = MemoryStorage()
    billed(book(CATEGORIES), other, [event("e1", customer="hooli", at=NOVEMBER, pages=10, ebooks=0, minutes=0)])
    close_period(Engine(book(CATEGORIES), other, REGISTRY, clock=later), "2026-11")
    [free] = issue_invoices(other, Catalog([book(CATEGORIES)]), parse_billing(exempt), "2026-11", ["hooli"]).issued
    assert (free.tax.name, free.tax.reason) == ("exempt", "Registered charity")
    assert "<p>Exempt from tax.</p><p>Registered charity</p>" in invoice_html(free)


def test_an_invoice_with_one_category_stores_no_breakdown_and_reads_one(book) -> None:  # type: ignore[no-untyped-def]
    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    billed(book(SIMPLE_PRICEBOOK), storage, [event("e1", at=NOVEMBER, tokens=1500, model="m")], "2026-11")
    [invoice] = issue_invoices(storage, Catalog([book(SIMPLE_PRICEBOOK)]), parse_billing(BILLING), "2026-11").issued
    stored = json.loads(invoice.to_json())
    assert "taxes" not in stored and set(stored["tax"]) == {"rate", "name", "rule"}
    assert "tax_reason" not in stored["buyer"] and all(
        "step" in line or "tax_category" not in line for line in stored["lines"]
    )
    [only] = Invoice.from_json(invoice.to_json()).taxes
    assert (only.category, only.rate, only.taxable, only.tax) == (None, 19, invoice.subtotal, invoice.tax_total)
    assert "Steuer (VAT 19 %)" in invoice_html(invoice)


def test_a_category_without_a_rule_of_its_own_takes_the_general_rule_and_no_rule_is_refused(book) -> None:  # type: ignore[no-untyped-def]
    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    calls = [event("e1", at=NOVEMBER, pages=1, ebooks=1, minutes=0)]
    billed(book(CATEGORIES), storage, calls, "2026-11")
    general = RULES.split("  - country: DE\n    category: books")[0] + "profiles:" + RULES.split("profiles:")[1]
    [invoice] = issue_invoices(storage, Catalog([book(CATEGORIES)]), parse_billing(general), "2026-11", ["acme"]).issued
    assert [(t.category, t.rate, t.taxable) for t in invoice.taxes] == [
        (None, 19, Decimal("0.23")),
        ("books", 19, Decimal("1.00")),
    ]
    nowhere = RULES.replace("country: DE\n    category: books", "country: AT\n    category: books")
    nowhere = nowhere.replace("{country: DE, rate: 19, names: {de: USt.}}", "{country: AT, rate: 20}")
    other = MemoryStorage()
    billed(book(CATEGORIES), other, calls, "2026-11")
    report = issue_invoices(other, Catalog([book(CATEGORIES)]), parse_billing(nowhere), "2026-11", ["acme"])
    [(_, code, message)] = report.refused
    assert code == InvoiceRefusal.NO_TAX_RULE and "no tax rule for country DE on 2" in message
