"""Invoices as documents: CSV lines, HTML and PDF, in the buyer's language (English or German).

HTML and PDF need the ``[invoices]`` extra (Babel formats numbers and dates per
locale; fpdf2 writes the PDF in pure Python, no system library). They read
only the stored invoice: re-rendering an old invoice after a rate or a profile
changed shows it exactly as issued.

PDFs draw their text in DejaVu Sans (shipped in ``rating/fonts``, its licence
beside it: Latin, Greek, Cyrillic, Hebrew, Arabic and more), then in the font
files the billing file names (``fonts:``, e.g. a CJK font), tried in order for
what DejaVu Sans lacks. Text in a script that needs shaping (right-to-left,
combining marks, Indic) is shaped by HarfBuzz (``uharfbuzz``, in the same
extra). A character no font covers is never replaced: rendering stops with
``unrenderable_text``, naming the character and the field it is in.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rating.billing.statements import Statement
from rating.distribution import install_hint
from rating.errors import DocumentError, RatingError
from rating.invoices.issue import Invoice
from rating.invoices.profiles import Party
from rating.refusals import DocumentRefusal

#: The fonts shipped with the package: DejaVu Sans, regular and bold (licence: LICENSE-DejaVu.txt beside them).
FONTS = Path(__file__).parent.parent / "fonts"

#: The words of an invoice, per language.
WORDS = {
    "en": {
        "invoice": "Invoice",
        "number": "Invoice number",
        "issued": "Issue date",
        "due": "Due date",
        "period": "Billing period",
        "bill_to": "Bill to",
        "tax_id": "Tax ID",
        "description": "Description",
        "quantity": "Quantity",
        "unit_price": "Unit price",
        "amount": "Amount",
        "subtotal": "Subtotal",
        "tax": "Tax",
        "total": "Total due",
        "carried": "Credit carried from {number} ({period})",
        "terms": "Payment due by {due}. Please quote {number} with your payment.",
        "reverse": "Reverse charge: VAT to be accounted for by the recipient.",
        "exempt": "Exempt from tax.",
        "tiers": "tiered",
        "statement": "Statement",
        "customer": "Customer",
        "asset": "Asset",
        "opening": "Opening balance",
        "closing": "Closing balance",
        "owed": "Owed",
        "value": "Value",
        "usage by meter": "Usage by meter and model",
        "top-ups": "Top-ups",
        "grants": "Grants",
        "usage": "Usage",
        "expiries": "Expired",
        "refunds": "Refunds",
        "chargebacks": "Chargebacks",
        "owed usage": "Usage owed (spent before funds arrived)",
    },
    "de": {
        "invoice": "Rechnung",
        "number": "Rechnungsnummer",
        "issued": "Rechnungsdatum",
        "due": "Fällig am",
        "period": "Leistungszeitraum",
        "bill_to": "Rechnungsempfänger",
        "tax_id": "USt-IdNr.",
        "description": "Beschreibung",
        "quantity": "Menge",
        "unit_price": "Einzelpreis",
        "amount": "Betrag",
        "subtotal": "Zwischensumme",
        "tax": "Steuer",
        "total": "Gesamtbetrag",
        "carried": "Verrechnete Gutschrift {number} ({period})",
        "terms": "Zahlbar bis {due}. Bitte geben Sie bei der Zahlung {number} an.",
        "reverse": "Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge).",
        "exempt": "Steuerfrei.",
        "tiers": "gestaffelt",
        "statement": "Kontoauszug",
        "customer": "Kunde",
        "asset": "Einheit",
        "opening": "Anfangssaldo",
        "closing": "Endsaldo",
        "owed": "Offen",
        "value": "Wert",
        "usage by meter": "Nutzung nach Zähler und Modell",
        "top-ups": "Aufladungen",
        "grants": "Gutschriften",
        "usage": "Nutzung",
        "expiries": "Verfallen",
        "refunds": "Erstattungen",
        "chargebacks": "Rückbuchungen",
        "owed usage": "Offene Nutzung (vor Eingang der Mittel)",
    },
}

CSV_COLUMNS = ["number", "customer", "period", "description", "quantity", "unit", "unit_price", "amount", "tax"]


def invoice_csv(invoices: list[Invoice]) -> str:
    """One row per invoice line, amounts as exact decimal text: what an accountant imports."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in invoices:
        for line in invoice.lines:
            quantity = "" if line.quantity is None else str(line.quantity)
            price = "" if line.unit_price is None else f"{line.unit_price:f}"
            writer.writerow(
                [invoice.number, invoice.customer, invoice.period, line.description, quantity, line.unit or "", price]
                + [str(line.amount), str(line.tax)]
            )
        for credit in invoice.carried:  # taken off after tax: no tax of its own
            description = WORDS["en"]["carried"].format(number=credit.number, period=credit.period)
            writer.writerow(
                [invoice.number, invoice.customer, invoice.period, description, "", "", ""] + [str(-credit.amount), "0"]
            )
    return out.getvalue()


def require_renderers(pdf: bool) -> None:
    """Refuse early, before anything is issued, when the ``[invoices]`` extra that renders documents is missing."""
    _babel()
    if pdf:
        try:
            import fpdf  # noqa: F401
        except ImportError:
            raise RatingError(f"PDF documents need the invoices extra: {install_hint('invoices')}") from None


def _babel() -> tuple[Any, Any]:
    """Babel's numbers and dates modules (the ``[invoices]`` extra)."""
    try:
        from babel import dates, numbers
    except ImportError:
        raise RatingError(f"HTML and PDF documents need the invoices extra: {install_hint('invoices')}") from None
    return numbers, dates


class _Format:
    """Numbers, money and dates in the invoice's language (Babel)."""

    def __init__(self, invoice: Invoice) -> None:
        self.numbers, self.dates = _babel()
        self.invoice = invoice
        self.locale = {"en": "en_US", "de": "de_DE"}[invoice.buyer.language]
        self.words = WORDS[invoice.buyer.language]

    def money(self, amount: Decimal) -> str:
        pattern = "#,##0." + "0" * self.invoice.scale if self.invoice.scale else "#,##0"
        text = self.numbers.format_decimal(amount, format=pattern, locale=self.locale, decimal_quantization=False)
        return f"{text} {self.invoice.currency}"

    def number(self, amount: Decimal | None) -> str:
        if amount is None:
            return ""
        return str(self.numbers.format_decimal(amount, format="#,##0.##########", locale=self.locale))

    def date(self, day: dt.date) -> str:
        return str(self.dates.format_date(day, format="medium", locale=self.locale))

    def rows(self) -> list[tuple[str, str, str, str]]:
        """Each line as (description, quantity, unit price, amount) text."""
        result = []
        for line in self.invoice.lines:
            quantity = f"{self.number(line.quantity)} {line.unit or ''}".strip() if line.quantity is not None else ""
            price = self.number(line.unit_price) if line.unit_price is not None else ""
            if line.quantity is not None and line.unit_price is None:
                price = self.words["tiers"]
            result.append((line.description, quantity, price, self.money(line.amount)))
        return result

    def notes(self) -> list[str]:
        words, invoice = self.words, self.invoice
        notes = [words["terms"].format(due=self.date(invoice.due), number=invoice.number)]
        if invoice.tax.name == "reverse charge":
            notes.insert(0, words["reverse"])
        elif invoice.tax.name == "exempt":
            notes.insert(0, words["exempt"])
        return notes

    def totals(self) -> list[tuple[str, str, Decimal, bool]]:
        """The rows under the lines, as (field, label, amount, bold): subtotal, tax, each credit carried from an
        earlier period's credit note, and the total due."""
        words, invoice = self.words, self.invoice
        carried = [
            ("carried", words["carried"].format(number=c.number, period=c.period), -c.amount, False)
            for c in invoice.carried
        ]
        return [
            ("label", words["subtotal"], invoice.subtotal, False),
            ("tax.name", self.tax_label(), invoice.tax_total, False),
            *carried,
            ("label", words["total"], invoice.total, True),
        ]

    def tax_label(self) -> str:
        return f"{self.words['tax']} ({self.invoice.tax.name} {self.number(self.invoice.tax.rate)} %)"


def invoice_html(invoice: Invoice) -> str:
    """A self-contained HTML page laid out like an invoice."""
    f, words, e = _Format(invoice), WORDS[invoice.buyer.language], html.escape
    seller, buyer = invoice.seller, invoice.buyer

    def party(who: Party, label: str) -> str:
        lines = [f"<strong>{e(who.legal_name)}</strong>", *map(e, who.address)]
        if who.tax_id:
            lines.append(f"{e(words['tax_id'])}: {e(who.tax_id)}")
        return f'<div class="party"><div class="label">{e(label)}</div>{"<br>".join(lines)}</div>'

    rows = "".join(
        f"<tr><td>{e(d)}</td><td class=n>{e(q)}</td><td class=n>{e(p)}</td><td class=n>{e(a)}</td></tr>"
        for d, q, p, a in f.rows()
    )
    totals = "".join(
        f"<tr{' class=total' if bold else ''}><td colspan=3>{e(label)}</td><td class=n>{e(f.money(amount))}</td></tr>"
        for _, label, amount, bold in f.totals()
    )
    meta = [
        (words["number"], invoice.number),
        (words["issued"], f.date(invoice.issued)),
        (words["due"], f.date(invoice.due)),
        (words["period"], f"{f.date(invoice.period_start)} – {f.date(invoice.period_end)}"),
    ]
    meta_html = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta)
    notes = "".join(f"<p>{e(note)}</p>" for note in f.notes())
    return f"""<!DOCTYPE html>
<html lang="{invoice.buyer.language}"><head><meta charset="utf-8">
<title>{e(words["invoice"])} {e(invoice.number)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 40px auto; max-width: 800px; color: #222; }}
h1 {{ font-size: 28px; margin-bottom: 24px; }}
.parties {{ display: flex; justify-content: space-between; margin-bottom: 24px; }}
.label {{ color: #777; font-size: 12px; text-transform: uppercase; margin-bottom: 4px; }}
table {{ border-collapse: collapse; width: 100%; }}
.meta th {{ text-align: left; font-weight: normal; color: #777; padding-right: 16px; }}
.lines {{ margin-top: 24px; }}
.lines th {{ text-align: left; border-bottom: 2px solid #222; padding: 6px 4px; }}
.lines th.n {{ text-align: right; }}
.meta {{ width: auto; }}
.lines td {{ border-bottom: 1px solid #ddd; padding: 6px 4px; }}
.n {{ text-align: right; white-space: nowrap; }}
.total td {{ font-weight: bold; border-top: 2px solid #222; }}
.notes {{ margin-top: 24px; font-size: 13px; color: #444; }}
</style></head><body>
<h1>{e(words["invoice"])} {e(invoice.number)}</h1>
<div class="parties">{party(seller, "")}{party(buyer, words["bill_to"])}</div>
<table class="meta">{meta_html}</table>
<table class="lines"><thead><tr><th>{e(words["description"])}</th><th class=n>{e(words["quantity"])}</th>
<th class=n>{e(words["unit_price"])}</th><th class=n>{e(words["amount"])}</th></tr></thead>
<tbody>{rows}{totals}</tbody></table>
<div class="notes">{notes}</div>
</body></html>
"""


class _PdfText:
    """An A4 PDF whose every piece of text is checked before it is drawn: each character must be covered by
    DejaVu Sans or one of the extra fonts, else ``unrenderable_text`` names it and its field."""

    def __init__(self, what: str, fonts: Sequence[str | Path]) -> None:
        try:
            from fpdf import FPDF
        except ImportError:
            raise RatingError(f"PDF documents need the invoices extra: {install_hint('invoices')}") from None
        self.what = what
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=20)
        self.pdf.add_font("dejavu", "", FONTS / "DejaVuSans.ttf")
        self.pdf.add_font("dejavu", "B", FONTS / "DejaVuSans-Bold.ttf")
        extra = []
        for number, path in enumerate(fonts):
            try:
                self.pdf.add_font(f"extra{number}", "", str(path))
            except Exception as error:  # fpdf2 and fontTools raise many kinds for a file that is not a font
                self.close()
                raise RatingError(f"cannot use font file {path}: {error}") from None
            extra.append(f"extra{number}")
        if extra:
            self.pdf.set_fallback_fonts(extra, exact_match=False)  # a regular CJK font also draws bold text
        self._extra: list[Any] = [self.pdf.fonts[key] for key in extra]  # TTFFonts (fpdf2 is optional)
        self.pdf.add_page()

    def font(self, style: str, size: float) -> None:
        self.pdf.set_font("dejavu", style, size)

    def checked(self, field: str, text: str) -> str:
        """``text``, once every character of it has a glyph in the current font or an extra one."""
        covered = self.pdf.current_font.cmap  # type: ignore[union-attr]
        for character in text:
            code = ord(character)
            if code not in covered and not any(code in font.cmap for font in self._extra):
                name = unicodedata.name(character, "unnamed")
                self.close()
                raise DocumentError(
                    DocumentRefusal.UNRENDERABLE_TEXT,
                    f"{self.what}: {field} has {character!r} (U+{code:04X} {name}), which no font of the PDF covers; "
                    "name a font file that does under fonts: in the billing file",
                )
        return text

    def cell(self, field: str, width: float, height: float, text: str, **options: Any) -> None:
        self._draw(self.pdf.cell, field, width, height, text, **options)

    def multi_cell(self, field: str, width: float, height: float, text: str, **options: Any) -> None:
        self._draw(self.pdf.multi_cell, field, width, height, text, **options)

    def _draw(self, draw: Any, field: str, width: float, height: float, text: str, **options: Any) -> None:
        text = self.checked(field, text)
        shaped = _needs_shaping(text)
        if shaped:
            try:
                self.pdf.set_text_shaping(True)
            except Exception as error:  # FPDFException: uharfbuzz is missing
                self.close()
                raise RatingError(
                    f"{self.what}: {field} is in a script that needs text shaping: {install_hint('invoices')} ({error})"
                ) from None
        try:
            draw(width, height, text, **options)
        finally:
            if shaped:
                self.pdf.set_text_shaping(False)
        if self._extra and any(ord(c) not in self.pdf.current_font.cmap for c in text):  # type: ignore[union-attr]
            # fpdf2 (2.8) sets a text that starts in a fallback font inside q/Q yet records the page's font as
            # set: the next text would be drawn in the font and size the page had before. Set it again.
            self.pdf.current_font_is_set_on_page = False

    def output(self) -> bytes:
        try:
            return bytes(self.pdf.output())
        finally:
            self.close()

    def close(self) -> None:
        """Close the font files (fpdf2 closes those it embedded only when it writes the PDF)."""
        for font in self.pdf.fonts.values():
            if hasattr(font, "close"):
                font.close()


def _needs_shaping(text: str) -> bool:
    """Whether drawing ``text`` glyph by glyph would be wrong: right-to-left letters (Hebrew, Arabic, whose
    letters also join) or combining marks (accents written apart, Indic and Thai vowel signs)."""
    return any(
        unicodedata.bidirectional(character) in ("R", "AL") or unicodedata.category(character).startswith("M")
        for character in text
        if not character.isascii()
    )


def _party_lines(who: Party, prefix: str, tax_label: str) -> list[tuple[str, str]]:
    """A seller's or a buyer's lines on the page, each with the field it shows."""
    lines = [(f"{prefix}.legal_name", who.legal_name)]
    lines += [(f"{prefix}.address[{index}]", line) for index, line in enumerate(who.address)]
    if who.tax_id:
        lines.append((f"{prefix}.tax_id", f"{tax_label}: {who.tax_id}"))
    return lines


def invoice_pdf(invoice: Invoice, fonts: Sequence[str | Path] = ()) -> bytes:
    """The invoice as a one-or-more-page A4 PDF; ``fonts`` are font files for what DejaVu Sans does not cover.

    Raises ``DocumentError`` (``unrenderable_text``) for a character no font covers."""
    f, words = _Format(invoice), WORDS[invoice.buyer.language]
    page = _PdfText(f"invoice {invoice.number}", fonts)
    pdf = page.pdf
    page.font("B", 20)
    page.cell("number", 0, 12, f"{words['invoice']} {invoice.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    top = pdf.get_y()
    for x, who, prefix, label in (
        (10, invoice.seller, "seller", ""),
        (110, invoice.buyer, "buyer", words["bill_to"]),
    ):
        pdf.set_xy(x, top)
        if label:
            page.font("", 8)
            page.cell("label", 90, 5, label.upper(), new_x="LEFT", new_y="NEXT")
        for number, (field, text) in enumerate(_party_lines(who, prefix, words["tax_id"])):
            page.font("B" if number == 0 else "", 10)
            page.cell(field, 90, 5, text, new_x="LEFT", new_y="NEXT")
    pdf.set_xy(10, max(pdf.get_y(), top + 35) + 4)
    page.font("", 10)
    meta = [
        ("number", words["number"], invoice.number),
        ("issued", words["issued"], f.date(invoice.issued)),
        ("due", words["due"], f.date(invoice.due)),
        ("period", words["period"], f"{f.date(invoice.period_start)} – {f.date(invoice.period_end)}"),
    ]
    for field, key, value in meta:
        page.cell("label", 45, 6, key)
        page.cell(field, 0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (88, 36, 30, 36)
    page.font("B", 9)
    for width, title, align in zip(widths, ("description", "quantity", "unit_price", "amount"), "LRRR", strict=True):
        page.cell("label", width, 7, words[title], border="B", align=align)
    pdf.ln()
    page.font("", 9)
    for index, row in enumerate(f.rows()):
        fields = (f"lines[{index}].description", f"lines[{index}].unit", "label", "currency")
        for width, field, text, align in zip(widths, fields, row, "LRRR", strict=True):
            page.cell(field, width, 6, text, border="B", align=align)
        pdf.ln()
    for field, label, amount, bold in f.totals():
        page.font("B" if bold else "", 10)
        page.cell(field, sum(widths[:3]), 7, label, align="R")
        page.cell("currency", widths[3], 7, f.money(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    page.font("", 9)
    for note in f.notes():
        page.multi_cell("notes", 0, 5, note, new_x="LMARGIN", new_y="NEXT")
    return page.output()


def _described(meter: str, group: tuple[str, ...]) -> str:
    return f"{meter} ({', '.join(group)})" if group else meter


def _statement_tables(item: Statement, language: str) -> tuple[str, list[list[str]], list[list[str]]]:
    """The title, the per-asset summary rows and the usage rows of a statement, as text in ``language``."""
    words = WORDS[language]
    numbers, _ = _babel()
    locale = {"en": "en_US", "de": "de_DE"}[language]

    def amount(value: Decimal | None, asset: str) -> str:
        if value is None:
            return ""
        return f"{numbers.format_decimal(value, format='#,##0.##########', locale=locale)} {asset}"

    summary = []
    for asset in item.assets:
        summary.append([words["opening"], amount(asset.opening, asset.asset)])
        summary += [[words.get(k, k), amount(v, asset.asset)] for k, v in asset.movements.items()]
        summary.append([words["closing"], amount(asset.closing, asset.asset)])
        if asset.closing_value is not None and asset.asset != item.currency:
            summary.append([words["value"], amount(asset.closing_value, item.currency)])
        if asset.owed:
            summary.append([words["owed"], amount(asset.owed, asset.asset)])
    usage = [
        [_described(u.meter, u.group), numbers.format_decimal(u.quantity, locale=locale), amount(u.amount, u.asset)]
        for u in item.usage
    ]
    return f"{words['statement']} {item.customer} {item.period}", summary, usage


def statement_html(item: Statement, language: str = "en") -> str:
    """A self-contained HTML page of a statement."""
    e, words = html.escape, WORDS[language]
    title, summary, usage = _statement_tables(item, language)
    summary_rows = "".join(f"<tr><td>{e(k)}</td><td class=n>{e(v)}</td></tr>" for k, v in summary)
    usage_rows = "".join(f"<tr><td>{e(m)}</td><td class=n>{e(q)}</td><td class=n>{e(a)}</td></tr>" for m, q, a in usage)
    return f"""<!DOCTYPE html>
<html lang="{language}"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 40px auto; max-width: 800px; color: #222; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 24px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px 4px; text-align: left; }}
.n {{ text-align: right; white-space: nowrap; }}
</style></head><body>
<h1>{e(title)}</h1>
<table>{summary_rows}</table>
<h2>{e(words["usage by meter"])}</h2>
<table><tr><th></th><th class=n>{e(words["quantity"])}</th><th class=n>{e(words["amount"])}</th></tr>
{usage_rows}</table>
</body></html>
"""


def statement_pdf(item: Statement, language: str = "en", fonts: Sequence[str | Path] = ()) -> bytes:
    """A statement as an A4 PDF; ``fonts`` are font files for what DejaVu Sans does not cover.

    Raises ``DocumentError`` (``unrenderable_text``) for a character no font covers."""
    words = WORDS[language]
    title, summary, usage = _statement_tables(item, language)
    page = _PdfText(f"statement {item.customer} {item.period}", fonts)
    pdf = page.pdf
    page.font("B", 18)
    page.cell("customer", 0, 12, title, new_x="LMARGIN", new_y="NEXT")
    page.font("", 10)
    for key, value in summary:
        page.cell("label", 120, 7, key, border="B")
        page.cell("asset", 70, 7, value, border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    page.font("B", 12)
    page.cell("label", 0, 9, words["usage by meter"], new_x="LMARGIN", new_y="NEXT")
    page.font("", 9)
    for index, (meter, quantity, amount) in enumerate(usage):
        page.cell(f"usage[{index}].meter and group", 100, 6, meter, border="B")
        page.cell("quantity", 45, 6, quantity, border="B", align="R")
        page.cell(f"usage[{index}].asset", 45, 6, amount, border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    return page.output()
