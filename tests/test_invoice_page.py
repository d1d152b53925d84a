"""What a customer needs on the page: the buyer's country, how to pay, the seller's contact and register details,
a logo, and page numbers; each new billing-file field validated with its position."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from rating.errors import PricebookError
from rating.invoices.issue import Invoice, issue_invoices
from rating.invoices.profiles import load_billing, parse_billing
from rating.invoices.render import invoice_html, invoice_pdf
from rating.pricebook.catalog import Catalog
from rating.storage.memory import MemoryStorage
from tests.helpers import ROOT, SIMPLE_PRICEBOOK, event
from tests.test_invoices import ISSUED, NOVEMBER, billed

PdfReader = pytest.importorskip("pypdf").PdfReader
LOGO = ROOT / "pricebooks" / "logo.png"
BILLING = """\
seller:
  legal_name: Seller GmbH
  address: [Hauptstr. 1, 10115 Berlin]
  country: DE
  tax_id: DE1
  registration: Amtsgericht Berlin HRB 123456
  email: billing@seller.example
  phone: +49 30 1234567
  website: https://seller.example
  logo: logo.png
  payment: {account_holder: Seller GmbH, bank: Commerzbank, iban: DE89370400440532013000, bic: COBADEFFXXX}
tax_rules: [{country: "*", rate: 19}]
profiles:
  acme: {legal_name: Acme GmbH, address: [Hauptstr. 2, Berlin], country: DE, language: de}
  listed: {legal_name: Listed Ltd, address: [1 George St, Sydney], country: AU, payment: {link: "https://pay.example/x"}}
"""


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def invoices_of(book, tmp_path: Path, billing: str = BILLING) -> dict[str, Invoice]:  # type: ignore[no-untyped-def]
    shutil.copy(LOGO, tmp_path / "logo.png")
    (tmp_path / "billing.yaml").write_text(billing, encoding="utf-8")
    events = [
        event("e1", at=NOVEMBER, tokens=1500, model="m"),
        event("e2", "listed", at=NOVEMBER, tokens=10, model="m"),
    ]
    engine = billed(book(SIMPLE_PRICEBOOK + "  listed: {plan: basic}\n"), MemoryStorage(), events, "2026-11")
    report = issue_invoices(
        engine.storage, Catalog([engine.pricebook]), load_billing(tmp_path / "billing.yaml"), "2026-11", issued=ISSUED
    )
    return {invoice.customer: invoice for invoice in report.issued}


def test_the_page_shows_country_payment_contact_register_logo_and_page_numbers(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    issued = invoices_of(book, tmp_path)
    german, english = issued["acme"], issued["listed"]
    content = invoice_pdf(german)
    text = pdf_text(content)
    for expected in ("Deutschland", "USt-IdNr.: DE1", "Handelsregister: Amtsgericht Berlin HRB 123456",
                     "Bankverbindung", "Kontoinhaber: Seller GmbH · Bank: Commerzbank",
                     "IBAN: DE89 3704 0044 0532 0130 00 · BIC: COBADEFFXXX",
                     "E-Mail: billing@seller.example · Telefon: +49 30 1234567 · Web: https://seller.example",
                     "Seite 1 von 1"):  # fmt: skip
        assert expected in text, expected
    assert len(PdfReader(io.BytesIO(content)).pages[0].images) == 1  # the logo
    text = pdf_text(invoice_pdf(english))
    # The buyer's country always; its own payment link wins over the seller's bank details.
    assert "Australia" in text and "Pay online: https://pay.example/x" in text and "IBAN" not in text
    assert "Page 1 of 1" in text
    page = invoice_html(german)
    assert '<img class="logo"' in page and "data:image/png;base64," in page and "Deutschland" in page
    assert "IBAN: DE89 3704 0044 0532 0130 00" in page and "Telefon: +49 30 1234567" in page


def test_a_long_invoice_numbers_its_pages(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    invoice = invoices_of(book, tmp_path)["listed"]
    long = invoice.model_copy(update={"lines": invoice.lines * 60})
    reader = PdfReader(io.BytesIO(invoice_pdf(long)))
    assert len(reader.pages) >= 2
    pages = len(reader.pages)
    for number, page in enumerate(reader.pages, start=1):
        assert f"Page {number} of {pages}" in page.extract_text()


def test_a_logo_file_gone_since_issue_renders_without_it(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    invoice = invoices_of(book, tmp_path)["acme"]
    (tmp_path / "logo.png").unlink()
    assert len(PdfReader(io.BytesIO(invoice_pdf(invoice))).pages[0].images) == 0
    assert "<img" not in invoice_html(invoice)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ("iban: DE89370400440532013000", "seller.payment.iban", "check digits of IBAN"),
        ("bic: COBADEFFXXX", "seller.payment.bic", "pattern"),
        ("logo: logo.png", "seller.logo", "cannot read logo file"),
        ("email: billing@seller.example", "seller.email", "pattern"),
    ],
)
def test_new_billing_fields_are_validated_with_their_positions(
    tmp_path: Path, change: str, where: str, message: str
) -> None:
    broken = {
        "iban: DE89370400440532013000": "iban: DE88370400440532013000",
        "bic: COBADEFFXXX": "bic: COBADE",
        "logo: logo.png": "logo: missing.png",
        "email: billing@seller.example": "email: billing",
    }[change]
    (tmp_path / "billing.yaml").write_text(BILLING.replace(change, broken), encoding="utf-8")
    shutil.copy(LOGO, tmp_path / "logo.png")
    with pytest.raises(PricebookError) as raised:
        load_billing(tmp_path / "billing.yaml")
    [problem] = raised.value.problems
    assert f": {where}:" in problem and message in problem and problem.startswith(f"{tmp_path / 'billing.yaml'}:")


def test_a_logo_that_is_no_image_and_a_payment_with_nothing_to_pay_by_are_refused(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_text("not an image", encoding="utf-8")
    text = BILLING.replace(BILLING.split("payment: ")[1].splitlines()[0], "{bank: X}")
    (tmp_path / "billing.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PricebookError) as raised:
        load_billing(tmp_path / "billing.yaml")
    problems = "\n".join(raised.value.problems)
    assert "seller.payment: payment needs an iban, a link or a note" in problems
    (tmp_path / "billing.yaml").write_text(BILLING, encoding="utf-8")
    with pytest.raises(PricebookError, match="seller.logo: logo file .* is not a PNG or JPEG image"):
        load_billing(tmp_path / "billing.yaml")
    with pytest.raises(PricebookError, match="profiles.acme.logo: only the seller has a logo"):
        parse_billing(BILLING.replace("  logo: logo.png\n", "").replace("language: de}", "language: de, logo: x.png}"))
