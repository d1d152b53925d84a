"""Factur-X / ZUGFeRD (EN 16931): the tour's invoices as CII XML that the profile's XSD validates, with the
invoice's totals, and as a PDF/A-3 carrying the XML."""

from __future__ import annotations

import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.errors import RatingError
from rating.invoices.facturx import NAMESPACES, categories_of, check_xsd, facturx_pdf, facturx_xml
from rating.invoices.issue import CarriedCredit, Invoice, InvoiceLine, invoices
from rating.invoices.profiles import AppliedTax
from rating.storage.sqlite import SQLiteStorage
from tests.helpers import EXAMPLE, ROOT

pytest.importorskip("facturx")

BILLING = ROOT / "pricebooks" / "billing.yaml"
N = {"rsm": NAMESPACES["rsm"], "ram": NAMESPACES["ram"], "udt": NAMESPACES["udt"]}


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Invoice]]]:
    """The tour's invoices: 300 demo events rated by the example pricebook, November closed and invoiced."""
    folder = tmp_path_factory.mktemp("tour")
    db = str(folder / "history.db")
    events = write_demo_events(folder / "demo-events.jsonl", 300)
    assert main(["rate", str(events), "-p", str(EXAMPLE), "--db", db]) == 0
    assert main(["close-period", "--db", db, "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    issue = ["invoice", "issue", "--db", db, "--period", "2026-11", "-p", str(EXAMPLE), "--billing", str(BILLING)]
    assert main([*issue, "--date", "2026-12-01"]) == 1  # initech is billed in credits: refused
    with SQLiteStorage(db) as storage:
        yield folder, {invoice.customer: invoice for invoice in invoices(storage)}


def _amount(root: ET.Element, path: str) -> Decimal:
    found = root.find(path, N)
    assert found is not None and found.text is not None, path
    return Decimal(found.text)


def _totals(root: ET.Element) -> dict[str, Decimal]:
    summation = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", N)
    assert summation is not None
    return {child.tag.split("}")[1]: Decimal(child.text or "") for child in summation}


def _checked(invoice: Invoice) -> ET.Element:
    """The invoice's XML, once the EN 16931 XSD validates it and it says what the invoice says."""
    xml = facturx_xml(invoice)
    check_xsd(xml)
    root = ET.fromstring(xml)
    assert root.findtext(".//rsm:ExchangedDocument/ram:ID", namespaces=N) == invoice.number
    assert root.findtext(".//ram:InvoiceCurrencyCode", namespaces=N) == invoice.currency
    assert root.findtext(".//ram:IssueDateTime/udt:DateTimeString", namespaces=N) == invoice.issued.strftime("%Y%m%d")
    assert root.findtext(".//ram:DueDateDateTime/udt:DateTimeString", namespaces=N) == invoice.due.strftime("%Y%m%d")
    carried = sum((c.amount for c in invoice.carried), Decimal(0))
    expected = {
        "LineTotalAmount": invoice.subtotal,
        "TaxBasisTotalAmount": invoice.subtotal,
        "TaxTotalAmount": invoice.tax_total,
        "GrandTotalAmount": invoice.subtotal + invoice.tax_total,
        "DuePayableAmount": invoice.total,
    }
    assert _totals(root) == (expected | {"TotalPrepaidAmount": carried} if carried else expected)
    items = root.findall(".//ram:IncludedSupplyChainTradeLineItem", N)
    assert len(items) == len(invoice.lines)
    for item, line in zip(items, invoice.lines, strict=True):
        amount = _amount(item, ".//ram:LineTotalAmount")
        price = _amount(item, ".//ram:NetPriceProductTradePrice/ram:ChargeAmount")
        basis = item.findtext(".//ram:BasisQuantity", namespaces=N)
        # quantity times the net price (per its base quantity) is the line's amount, exactly; no price is negative
        assert _amount(item, ".//ram:BilledQuantity") * price / Decimal(basis or 1) == amount == line.amount
        assert price >= 0 and item.findtext(".//ram:SpecifiedTradeProduct/ram:Name", namespaces=N) == line.description
    breakdown = root.findall(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", N)
    assert sum((_amount(b, "ram:CalculatedAmount") for b in breakdown), Decimal(0)) == invoice.tax_total
    assert sum((_amount(b, "ram:BasisAmount") for b in breakdown), Decimal(0)) == invoice.subtotal
    return root


@pytest.mark.parametrize(
    ("customer", "category", "rate"),
    [
        ("globex", "S", "19"),  # domestic: German seller, German business
        ("hooli", "AE", "0"),  # an EU business abroad: reverse charge
        ("umbrella", "S", "10"),  # GST
        ("acme-labs", "G", "0"),  # outside the EU, a rule of rate 0
    ],
)
def test_the_tours_invoices_validate_against_the_en16931_xsd_with_their_totals(
    tour: tuple[Path, dict[str, Invoice]], customer: str, category: str, rate: str
) -> None:
    invoice = tour[1][customer]
    root = _checked(invoice)
    [tax] = root.findall(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", N)
    shown = (tax.findtext("ram:CategoryCode", namespaces=N), tax.findtext("ram:RateApplicablePercent", namespaces=N))
    assert shown == (category, rate)
    seller = root.find(".//ram:SellerTradeParty", N)
    assert seller is not None
    assert seller.findtext("ram:Name", namespaces=N) == "Example AI Gateway GmbH"
    assert seller.findtext(".//ram:PostcodeCode", namespaces=N) == "10115"
    assert seller.findtext(".//ram:SpecifiedTaxRegistration/ram:ID", namespaces=N) == "DE123456789"
    buyer = root.find(".//ram:BuyerTradeParty", N)
    assert buyer is not None and buyer.findtext(".//ram:CountryID", namespaces=N) == invoice.buyer.country
    if category == "AE":
        assert tax.findtext("ram:ExemptionReasonCode", namespaces=N) == "VATEX-EU-AE"
        assert buyer.findtext(".//ram:SpecifiedTaxRegistration/ram:ID", namespaces=N) == "FR12345678901"


def test_the_xsd_check_refuses_xml_the_profile_does_not_allow(tour: tuple[Path, dict[str, Invoice]]) -> None:
    xml = facturx_xml(tour[1]["globex"])
    broken = xml.replace(b"<ram:TypeCode>380</ram:TypeCode>", b"<ram:Kind>380</ram:Kind>")
    assert broken != xml
    with pytest.raises(RatingError, match="does not validate"):
        check_xsd(broken)


def test_negative_lines_untidy_prices_and_carried_credits_validate_and_add_up(
    tour: tuple[Path, dict[str, Invoice]],
) -> None:
    invoice = tour[1]["globex"]
    lines = (
        InvoiceLine(description="tokens (m)", account="revenue:a:b", quantity=Decimal(3), unit="tokens",
                    unit_price=Decimal("0.3333"), exact=Decimal("1.00"), amount=Decimal("1.00")),
        InvoiceLine(description="tokens, adjustment of 2026-10", account="revenue:a:b", quantity=Decimal(7),
                    unit="tokens", exact=Decimal("-0.40"), amount=Decimal("-0.40")),
        InvoiceLine(description="subscription fee", account="revenue:a:fee", exact=Decimal(2), amount=Decimal(2)),
        InvoiceLine(description="paid from the prepaid commitment", account="customer:x:prepaid",
                    exact=Decimal("-0.50"), amount=Decimal("-0.50")),
    )  # fmt: skip
    carried = (CarriedCredit(number="CN-2026-000009", period="2026-10", amount=Decimal("0.25")),)
    odd = invoice.model_copy(
        update={"lines": lines, "subtotal": Decimal("2.10"), "tax_total": Decimal("0.40"),
                "total": Decimal("2.25"), "carried": carried}
    )  # fmt: skip
    root = _checked(odd)
    assert _totals(root)["TotalPrepaidAmount"] == Decimal("0.25")
    quantities = [Decimal(q.text or "") for q in root.findall(".//ram:BilledQuantity", N)]
    assert quantities == [Decimal(3), Decimal(-7), Decimal(1), Decimal(-1)]


def test_an_exempt_invoice_is_category_e_with_its_reason(tour: tuple[Path, dict[str, Invoice]]) -> None:
    invoice = tour[1]["globex"]
    exempt = invoice.model_copy(
        update={"tax": AppliedTax(rate=Decimal(0), name="exempt", rule="exempt"), "tax_total": Decimal(0),
                "total": invoice.subtotal}
    )  # fmt: skip
    [row] = categories_of(exempt)
    assert (row.code, row.rate, row.basis, row.tax, row.reason) == ("E", 0, invoice.subtotal, 0, "Exempt from tax")
    assert row.lines == tuple(range(len(invoice.lines)))
    root = _checked(exempt)
    assert root.findtext(".//ram:ApplicableHeaderTradeSettlement//ram:ExemptionReason", namespaces=N) == (
        "Exempt from tax"
    )


def test_the_pdf_is_pdf_a_3b_and_carries_the_xml(tour: tuple[Path, dict[str, Invoice]]) -> None:
    import facturx
    from pypdf import PdfReader

    invoice = tour[1]["hooli"]
    pdf = facturx_pdf(invoice)
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert (name, xml) == ("factur-x.xml", facturx_xml(invoice))
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    metadata = root["/Metadata"].get_object().get_data().decode()
    assert re.search(r"<pdfaid:part>3</pdfaid:part>", metadata) and "<pdfaid:conformance>B" in metadata
    assert "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#" in metadata
    assert "/OutputIntents" in root and "/AF" in root  # the colour profile PDF/A needs; the XML as associated file
    spec = root["/AF"].get_object()[0].get_object()
    assert spec["/AFRelationship"] == "/Data" and spec["/F"] == "factur-x.xml"
    assert reader.attachments["factur-x.xml"] == [xml]
    text = reader.pages[0].extract_text()
    # hooli is billed in French (pricebooks/billing.yaml): the page is the invoice in the buyer's language
    assert f"Facture {invoice.number}" in text and "Autoliquidation" in text


def test_invoice_show_writes_the_factur_x_pdf_and_the_xml(tour: tuple[Path, dict[str, Invoice]], capsys) -> None:  # type: ignore[no-untyped-def]
    import facturx

    folder, issued = tour
    db, number = str(folder / "history.db"), issued["globex"].number
    out = folder / "out"
    show = ["invoice", "show", number, "--db", db]
    assert main([*show, "--pdf", str(out), "--format", "facturx", "--xml", str(out)]) == 0
    xml = (out / f"{number}.xml").read_bytes()
    assert xml == facturx_xml(issued["globex"])
    assert facturx.get_xml_from_pdf((out / f"{number}.pdf").read_bytes()) == ("factur-x.xml", xml)
    capsys.readouterr()
    assert main(["invoice", "show", number, "--db", db, "--format", "facturx"]) == 2  # the kind of PDF of --pdf
    assert "--pdf DIR" in capsys.readouterr().err
    assert main(["invoice", "credit", number, "--db", db, "--reference", "cn-1"]) == 0
    assert main(["invoice", "show", "CN-2026-000001", "--db", db, "--xml", str(folder / "notes")]) == 3
    assert "Factur-X is written for invoices only" in capsys.readouterr().err
    assert not (folder / "notes").exists()


def test_the_dates_are_the_invoices(tour: tuple[Path, dict[str, Invoice]]) -> None:
    invoice = tour[1]["globex"]
    root = ET.fromstring(facturx_xml(invoice))
    period = root.find(".//ram:BillingSpecifiedPeriod", N)
    assert period is not None
    assert [d.text for d in period.iter(f"{{{N['udt']}}}DateTimeString")] == ["20261101", "20261130"]
    assert invoice.period_start == dt.date(2026, 11, 1)


QUANTITIES = st.one_of(st.none(), st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False))
PRICES = st.one_of(st.none(), st.decimals(min_value=0, max_value=10, places=9, allow_nan=False))
AMOUNTS = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(QUANTITIES, PRICES, AMOUNTS), min_size=1, max_size=6), st.sampled_from(["0", "7", "19"]))
def test_any_lines_validate_and_each_is_priced_to_its_amount_exactly(
    tour: tuple[Path, dict[str, Invoice]], drawn: list[tuple[Decimal | None, Decimal | None, Decimal]], rate: str
) -> None:
    invoice = tour[1]["globex"]
    lines = tuple(
        InvoiceLine(description=f"line {n}", account="revenue:a:b", quantity=quantity, unit="units",
                    unit_price=price, exact=amount, amount=amount)
        for n, (quantity, price, amount) in enumerate(drawn)
    )  # fmt: skip
    subtotal = sum((line.amount for line in lines), Decimal(0))
    if subtotal < 0:  # a period that owes less than nothing is a credit note, never an invoice
        return
    tax = (subtotal * Decimal(rate) / 100).quantize(Decimal("0.01"))
    applied = AppliedTax(rate=Decimal(rate), name="VAT", rule="test")
    priced = invoice.model_copy(
        update={"lines": lines, "subtotal": subtotal, "tax_total": tax, "total": subtotal + tax, "tax": applied}
    )
    _checked(priced)  # the XSD validates it; totals, breakdown and every line's quantity x price = amount


def test_a_line_whose_quantity_times_unit_price_is_its_amount_keeps_its_unit_price(
    tour: tuple[Path, dict[str, Invoice]],
) -> None:
    invoice = tour[1]["globex"]
    line = InvoiceLine(description="calls", account="revenue:a:b", quantity=Decimal(4), unit="calls",
                       unit_price=Decimal("0.25"), exact=Decimal(1), amount=Decimal("1.00"))  # fmt: skip
    one = invoice.model_copy(
        update={"lines": (line,), "subtotal": Decimal("1.00"), "tax_total": Decimal("0.19"), "total": Decimal("1.19")}
    )
    [item] = _checked(one).findall(".//ram:IncludedSupplyChainTradeLineItem", N)
    assert item.findtext(".//ram:BilledQuantity", namespaces=N) == "4"
    assert item.findtext(".//ram:ChargeAmount", namespaces=N) == "0.25"
    assert item.find(".//ram:BasisQuantity", N) is None
    assert item.findtext(".//ram:SpecifiedTradeProduct/ram:Description", namespaces=N) == "4 calls at 0.25"
