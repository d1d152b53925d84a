"""Electronic invoices: Factur-X / ZUGFeRD (EN 16931 profile) XML, alone or embedded in a PDF/A-3.

``facturx_xml(invoice)`` builds the UN/CEFACT Cross Industry Invoice (CII) XML of an issued
invoice in the EN 16931 profile (``urn:cen.eu:en16931:2017``): seller and buyer, each line, the
tax breakdown per category, the totals, the currency, the dates, the due date. It is checked
against the profile's XSD by the ``factur-x`` library (:func:`check_xsd`); the schematron
(business rules) and veraPDF (PDF/A) checks need a Java engine and are not run here.
``facturx_pdf(invoice)`` renders the invoice's PDF as PDF/A-3B (fpdf2's compliance mode) and
embeds the XML as ``factur-x.xml`` (``factur-x``'s ``generate_from_binary``, which also writes
the Factur-X XMP metadata). Both need the ``[invoices]`` extra.

How the invoice maps onto EN 16931:

- **Lines**: a line with a unit price whose quantity times price is its amount shows them as
  they are; any other line (tiered usage, fees, corrections: an amount without a unit price, or
  a rounded one) is priced at its amount per its quantity (net price BT-146 = the amount, base
  quantity BT-149 = the quantity), so that quantity times price is the line's amount, exactly.
  A negative line (a correction, what a prepaid commitment paid) has a negative quantity and a
  positive price (BR-27). Quantities are in unit ``C62`` ("one"); the unit's own name is in the
  item description.
- **Tax**: one breakdown row per tax category (:func:`categories_of`): ``S`` at the rule's rate,
  ``AE`` for reverse charge (``VATEX-EU-AE``), ``E`` for exempt, and for a rule of rate 0 ``G``
  (export outside the EU, ``VATEX-EU-G``) for a buyer outside the EU, else ``Z``.
- **Credits carried** from earlier credit notes are the paid amount (BT-113): the amount due
  (BT-115) is the invoice's total.
- **Credit notes** are not written as Factur-X (type 381): out of scope.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rating.errors import RatingError
from rating.invoices.issue import Invoice
from rating.invoices.profiles import EU, Party
from rating.money import ZERO

if TYPE_CHECKING:
    from rating.invoices.render import Languages

#: The EN 16931 profile's guideline id (BT-24).
EN16931 = "urn:cen.eu:en16931:2017"
#: The name the XML has inside the PDF (the Factur-X standard's).
XML_NAME = "factur-x.xml"
NAMESPACES = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
#: An address line that is a postcode and a city: ``10115 Berlin``, ``75001 Paris``.
_POSTCODE_CITY = re.compile(r"^(\d{4,5})\s+(\S.*)$")
INSTALL = "Factur-X invoices need the invoices extra: pip install 'rating-engine[invoices]'"


class TaxCategory(NamedTuple):
    """One row of an invoice's tax breakdown (BG-23): the category, its rate, what it taxes and its tax."""

    #: UNTDID 5305 category: S standard, AE reverse charge, E exempt, G export outside the EU, Z zero rated.
    code: str
    rate: Decimal
    #: The taxable amount (BT-116): the net sum of the category's lines.
    basis: Decimal
    #: The tax amount (BT-117).
    tax: Decimal
    #: Why there is no tax (BT-120, BT-121), for AE, E and G.
    reason: str | None
    reason_code: str | None
    #: The indexes (from 0) of the invoice lines in this category.
    lines: tuple[int, ...]


def categories_of(invoice: Invoice) -> list[TaxCategory]:
    """The tax breakdown of ``invoice``, one row per tax category.

    Today an invoice has one category: its tax rule, on every line (``subtotal`` taxed ``tax_total``).
    When invoices carry a breakdown of their own, this is the one function to read it from."""
    tax, buyer = invoice.tax, invoice.buyer
    lines = tuple(range(len(invoice.lines)))
    if tax.name == "reverse charge":
        code, reason, reason_code = "AE", "Reverse charge", "VATEX-EU-AE"
    elif tax.name == "exempt":
        code, reason, reason_code = "E", "Exempt from tax", None
    elif tax.rate:
        code, reason, reason_code = "S", None, None
    elif buyer.country not in EU:
        code, reason, reason_code = "G", "Export outside the EU", "VATEX-EU-G"
    else:
        code, reason, reason_code = "Z", None, None
    return [TaxCategory(code, tax.rate, invoice.subtotal, invoice.tax_total, reason, reason_code, lines)]


def _amount(value: Decimal, scale: int) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-scale)) + ZERO:f}"


def _number(value: Decimal) -> str:
    """A quantity, price or rate as plain decimal text (no exponent, no trailing zeros past the point)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _date(parent: ET.Element, tag: str, day: Any) -> None:
    holder = ET.SubElement(parent, tag)
    ET.SubElement(holder, "udt:DateTimeString", format="102").text = day.strftime("%Y%m%d")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _party(parent: ET.Element, tag: str, who: Party) -> None:
    party = _sub(parent, tag)
    _sub(party, "ram:Name", who.legal_name)
    address = _sub(party, "ram:PostalTradeAddress")
    lines, postcode, city = list(who.address), None, None
    for index, line in enumerate(lines):
        found = _POSTCODE_CITY.match(line.strip())
        if found:
            postcode, city = found.groups()
            del lines[index]
            break
    if postcode:
        _sub(address, "ram:PostcodeCode", postcode)
    if lines:
        _sub(address, "ram:LineOne", lines[0])
    if len(lines) > 1:
        _sub(address, "ram:LineTwo", lines[1])
    if len(lines) > 2:
        _sub(address, "ram:LineThree", ", ".join(lines[2:]))
    if city:
        _sub(address, "ram:CityName", city)
    _sub(address, "ram:CountryID", who.country)
    if who.region:
        _sub(address, "ram:CountrySubDivisionName", who.region)
    if who.tax_id:
        registration = _sub(party, "ram:SpecifiedTaxRegistration")
        _sub(registration, "ram:ID", who.tax_id, schemeID="VA")


def _price(
    quantity: Decimal | None, unit_price: Decimal | None, amount: Decimal
) -> tuple[Decimal, Decimal, Decimal | None]:
    """(billed quantity, net price, base quantity or None) whose product is ``amount`` exactly, price never negative."""
    if quantity is not None and unit_price is not None and quantity * unit_price == amount and unit_price >= 0:
        return quantity, unit_price, None
    if quantity:
        sign = -1 if amount < 0 else 1
        return sign * abs(quantity), abs(amount), abs(quantity)
    return (Decimal(-1) if amount < 0 else Decimal(1)), abs(amount), None


def facturx_xml(invoice: Invoice) -> bytes:
    """The CII XML (Factur-X / ZUGFeRD, EN 16931 profile) of an issued invoice, UTF-8 encoded."""
    scale, currency = invoice.scale, invoice.currency
    money = lambda value: _amount(value, scale)  # noqa: E731
    root = ET.Element("rsm:CrossIndustryInvoice", {f"xmlns:{p}": uri for p, uri in NAMESPACES.items()})
    context = _sub(root, "rsm:ExchangedDocumentContext")
    _sub(_sub(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)
    document = _sub(root, "rsm:ExchangedDocument")
    _sub(document, "ram:ID", invoice.number)
    _sub(document, "ram:TypeCode", "380")  # a commercial invoice
    _date(document, "ram:IssueDateTime", invoice.issued)
    categories = categories_of(invoice)
    notes = [f"Pricebook {invoice.pricebook}, billing period {invoice.period}."]
    notes += [f"Credit carried from {c.number} ({c.period}): {c.amount} {currency}." for c in invoice.carried]
    notes += [f"{c.reason}." for c in categories if c.reason]
    for note in notes:
        _sub(_sub(document, "ram:IncludedNote"), "ram:Content", note)
    transaction = _sub(root, "rsm:SupplyChainTradeTransaction")
    category_of = {index: category for category in categories for index in category.lines}
    for index, line in enumerate(invoice.lines):
        category = category_of[index]
        item = _sub(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _sub(_sub(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(index + 1))
        product = _sub(item, "ram:SpecifiedTradeProduct")
        _sub(product, "ram:Name", line.description)
        if line.quantity is not None:
            shown = f"{_number(line.quantity)} {line.unit or ''}".strip()
            price = f" at {_number(line.unit_price)}" if line.unit_price is not None else ""
            _sub(product, "ram:Description", f"{shown}{price}")
        quantity, net_price, basis = _price(line.quantity, line.unit_price, line.amount)
        agreement = _sub(item, "ram:SpecifiedLineTradeAgreement")
        net = _sub(agreement, "ram:NetPriceProductTradePrice")
        _sub(net, "ram:ChargeAmount", _number(net_price))
        if basis is not None:
            _sub(net, "ram:BasisQuantity", _number(basis), unitCode="C62")
        _sub(_sub(item, "ram:SpecifiedLineTradeDelivery"), "ram:BilledQuantity", _number(quantity), unitCode="C62")
        settlement = _sub(item, "ram:SpecifiedLineTradeSettlement")
        tax = _sub(settlement, "ram:ApplicableTradeTax")
        _sub(tax, "ram:TypeCode", "VAT")
        _sub(tax, "ram:CategoryCode", category.code)
        _sub(tax, "ram:RateApplicablePercent", _number(category.rate))
        summation = _sub(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        _sub(summation, "ram:LineTotalAmount", money(line.amount))
    agreement = _sub(transaction, "ram:ApplicableHeaderTradeAgreement")
    _sub(agreement, "ram:BuyerReference", invoice.customer)
    _party(agreement, "ram:SellerTradeParty", invoice.seller)
    _party(agreement, "ram:BuyerTradeParty", invoice.buyer)
    delivery = _sub(_sub(transaction, "ram:ApplicableHeaderTradeDelivery"), "ram:ActualDeliverySupplyChainEvent")
    _date(delivery, "ram:OccurrenceDateTime", invoice.period_end)  # the service was delivered over the period
    settlement = _sub(transaction, "ram:ApplicableHeaderTradeSettlement")
    _sub(settlement, "ram:PaymentReference", invoice.number)
    _sub(settlement, "ram:InvoiceCurrencyCode", currency)
    for category in categories:
        tax = _sub(settlement, "ram:ApplicableTradeTax")
        _sub(tax, "ram:CalculatedAmount", money(category.tax))
        _sub(tax, "ram:TypeCode", "VAT")
        if category.reason:
            _sub(tax, "ram:ExemptionReason", category.reason)
        _sub(tax, "ram:BasisAmount", money(category.basis))
        _sub(tax, "ram:CategoryCode", category.code)
        if category.reason_code:
            _sub(tax, "ram:ExemptionReasonCode", category.reason_code)
        _sub(tax, "ram:RateApplicablePercent", _number(category.rate))
    period = _sub(settlement, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", invoice.period_start)
    _date(period, "ram:EndDateTime", invoice.period_end)
    terms = _sub(settlement, "ram:SpecifiedTradePaymentTerms")
    _sub(terms, "ram:Description", f"Payment due by {invoice.due.isoformat()}. Please quote {invoice.number}.")
    _date(terms, "ram:DueDateDateTime", invoice.due)
    totals = _sub(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    carried = sum((c.amount for c in invoice.carried), ZERO)
    _sub(totals, "ram:LineTotalAmount", money(sum((line.amount for line in invoice.lines), ZERO)))
    _sub(totals, "ram:TaxBasisTotalAmount", money(invoice.subtotal))
    _sub(totals, "ram:TaxTotalAmount", money(invoice.tax_total), currencyID=currency)
    _sub(totals, "ram:GrandTotalAmount", money(invoice.subtotal + invoice.tax_total))
    if carried:
        _sub(totals, "ram:TotalPrepaidAmount", money(carried))
    _sub(totals, "ram:DuePayableAmount", money(invoice.total))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _facturx() -> Any:
    """The ``factur-x`` library (the ``[invoices]`` extra)."""
    try:
        import facturx
    except ImportError:
        raise RatingError(INSTALL) from None
    return facturx


def require_facturx() -> None:
    """Refuse early, before anything is issued, when the ``factur-x`` library (``[invoices]`` extra) is missing."""
    _facturx()


def check_xsd(xml: bytes) -> None:
    """Refuse XML that the EN 16931 profile's XSD does not validate (``factur-x``'s check); a RatingError names why."""
    try:
        _facturx().xml_check_xsd(xml, flavor="factur-x", level="en16931")
    except RatingError:
        raise
    except Exception as error:  # factur-x raises a bare Exception naming the XSD error
        raise RatingError(f"the Factur-X XML does not validate: {error}") from None


def facturx_pdf(invoice: Invoice, fonts: Sequence[str | Path] = (), languages: Languages = None) -> bytes:
    """The invoice as a PDF/A-3B with its EN 16931 XML embedded (``factur-x.xml``, relationship ``Data``)."""
    from rating.invoices.render import invoice_pdf

    facturx = _facturx()
    xml = facturx_xml(invoice)
    check_xsd(xml)
    pdf = invoice_pdf(invoice, fonts, languages, compliance="PDFA_3B")
    metadata = {
        "author": invoice.seller.legal_name,
        "keywords": "Factur-X, Invoice",
        "title": f"{invoice.seller.legal_name}: Invoice {invoice.number}",
        "subject": f"Factur-X invoice {invoice.number} dated {invoice.issued.isoformat()}"
        f" issued by {invoice.seller.legal_name}",
    }
    language = {"en": "en-US", "de": "de-DE"}.get(invoice.buyer.language, invoice.buyer.language.replace("_", "-"))
    return bytes(
        facturx.generate_from_binary(
            pdf, xml, flavor="factur-x", level="en16931", check_xsd=False, pdf_metadata=metadata, lang=language
        )
    )
