"""Invoices, credit notes and statements as documents: CSV lines, HTML and PDF, in the buyer's language.

English and German labels are built in (:data:`WORDS`); French, Spanish and Polish ship as translation files,
and any other language is a translation file the billing file names (:mod:`rating.invoices.translations`).
Each page shows the seller's and the buyer's blocks (the buyer's country always, tax id and register where
given), the seller's logo top left, how to pay (the billing file's ``payment:``), and in its footer the
seller's contact and "Page 1 of 2".

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

import base64
import csv
import datetime as dt
import html
import io
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rating.billing.statements import Statement
from rating.distribution import install_hint
from rating.errors import DocumentError, RatingError
from rating.invoices.issue import CreditNote, Invoice
from rating.invoices.lines import LINE_WORDS, line_description, unit_price_text
from rating.invoices.profiles import Party
from rating.invoices.translations import BUILT_IN, available, load_translation, shipped
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
        "credit_note": "Credit note",
        "credit_number": "Credit note number",
        "credits_invoice": "Credits invoice",
        "invoice_of": "{number} of {date}",
        "credits_period": "Credit balance of",
        "reason": "Reason",
        "line": "Line",
        "total_credited": "Total credited",
        "refund_customer": "{amount} of this credit was already paid and is refunded to you.",
        "refund_wallet": "{amount} of this credit was already paid and is returned to your wallet.",
        "credit_applied": "This credit is taken off what is due on invoice {invoice}.",
        "credit_carried": "This credit is carried to your next invoice.",
        "page": "Page {page} of {pages}",
        "registration": "Register",
        "payment": "Payment details",
        "account_holder": "Account holder",
        "bank": "Bank",
        "iban": "IBAN",
        "bic": "BIC",
        "pay_online": "Pay online",
        "email": "Email",
        "phone": "Phone",
        "website": "Web",
        "funds": "Funds ({asset})",
        "added": "Added",
        "taken": "Taken",
        "balance": "Funds",
        "amount_due": "Amount due",
        "credit_balance": "Credit balance",
        "meter": "Meter and model",
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
        "credit_note": "Gutschrift",
        "credit_number": "Gutschriftsnummer",
        "credits_invoice": "Zur Rechnung",
        "invoice_of": "{number} vom {date}",
        "credits_period": "Guthaben aus",
        "reason": "Grund",
        "line": "Position",
        "total_credited": "Gutschrift gesamt",
        "refund_customer": "{amount} dieser Gutschrift wurden bereits bezahlt und werden Ihnen erstattet.",
        "refund_wallet": "{amount} dieser Gutschrift wurden bereits bezahlt und Ihrem Guthabenkonto gutgeschrieben.",
        "credit_applied": "Diese Gutschrift wird mit dem offenen Betrag der Rechnung {invoice} verrechnet.",
        "credit_carried": "Diese Gutschrift wird mit Ihrer nächsten Rechnung verrechnet.",
        "page": "Seite {page} von {pages}",
        "registration": "Handelsregister",
        "payment": "Bankverbindung",
        "account_holder": "Kontoinhaber",
        "bank": "Bank",
        "iban": "IBAN",
        "bic": "BIC",
        "pay_online": "Online bezahlen",
        "email": "E-Mail",
        "phone": "Telefon",
        "website": "Web",
        "funds": "Guthaben ({asset})",
        "added": "Zugang",
        "taken": "Abgang",
        "balance": "Guthaben",
        "amount_due": "Offener Betrag",
        "credit_balance": "Guthaben zu Ihren Gunsten",
        "meter": "Zähler und Modell",
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
            description = line_description(line)
            writer.writerow(
                [invoice.number, invoice.customer, invoice.period, description, quantity, line.unit or "", price]
                + [str(line.amount), str(line.tax)]
            )
        for credit in invoice.carried:  # taken off after tax: no tax of its own
            description = WORDS["en"]["carried"].format(number=credit.number, period=credit.period)
            writer.writerow(
                [invoice.number, invoice.customer, invoice.period, description, "", "", ""] + [str(-credit.amount), "0"]
            )
    return out.getvalue()


CREDIT_NOTE_CSV_COLUMNS = ["number", "customer", "credits", "credits_issued", "line", "description", "amount", "tax"]


def credit_note_csv(notes: list[CreditNote]) -> str:
    """One row per credited line (and per earlier credit a period's note took over), amounts as exact decimal
    text: ``credits`` is the invoice credited (or ``period:P`` for a period's credit balance)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CREDIT_NOTE_CSV_COLUMNS)
    for note in notes:
        credits = note.invoice or f"period:{note.period}"
        issued = note.invoice_issued.isoformat() if note.invoice_issued else ""
        for line in note.lines:
            writer.writerow(
                [note.number, note.customer, credits, issued, line.line, line.description]
                + [str(line.amount), str(line.tax)]
            )
        for credit in note.carried:
            description = WORDS["en"]["carried"].format(number=credit.number, period=credit.period)
            writer.writerow([note.number, note.customer, credits, issued, "", description, str(credit.amount), "0"])
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


#: Translation files by language beyond those built in and shipped (a billing file's ``languages:``), or None.
Languages = Mapping[str, str | Path] | None


def labels(language: str, languages: Languages = None) -> tuple[str, dict[str, str]]:
    """Babel's locale and the labels of ``language``: built in (en, de), from a file of ``languages`` (a billing
    file's), or shipped (fr, es, pl); a label a file leaves out is the English one.

    Raises ``DocumentError`` (``unknown_language``) for a language with none."""
    if language in BUILT_IN:
        return BUILT_IN[language], {**WORDS["en"], **WORDS[language]}
    path = (languages or {}).get(language) or shipped().get(language)
    if path is None:
        raise DocumentError(
            DocumentRefusal.UNKNOWN_LANGUAGE,
            f"no labels for language {language!r}: {', '.join(available(languages))}, or a translation file"
            " under languages: in the billing file (--billing)",
        )
    translation = load_translation(path, frozenset(WORDS["en"]))
    return translation.locale, {**WORDS["en"], **translation.words}


class _Words:
    """Words, numbers, money and dates in a document's language (Babel)."""

    def __init__(self, language: str, currency: str, scale: int, languages: Languages = None) -> None:
        self.numbers, self.dates = _babel()
        self.language, self.currency, self.scale = language, currency, scale
        self.locale, self.words = labels(language, languages)

    def money(self, amount: Decimal) -> str:
        pattern = "#,##0." + "0" * self.scale if self.scale else "#,##0"
        text = self.numbers.format_decimal(amount, format=pattern, locale=self.locale, decimal_quantization=False)
        return f"{text} {self.currency}"

    def number(self, amount: Decimal | None) -> str:
        if amount is None:
            return ""
        return str(self.numbers.format_decimal(amount, format="#,##0.##########", locale=self.locale))

    def date(self, day: dt.date) -> str:
        return str(self.dates.format_date(day, format="medium", locale=self.locale))

    def price(self, amount: Decimal) -> str:
        """A unit price shown per 1,000 or 1,000,000 units: at least two decimals, every digit it has."""
        return str(self.numbers.format_decimal(amount, format="#,##0.00########", locale=self.locale))

    def country(self, code: str, language: str | None = None) -> str:
        """The country's name in the document's language (or ``language``); the code when Babel has none."""
        from babel import Locale

        locale = Locale.parse(language or self.locale)
        return str(locale.territories.get(code, code))


class _Format(_Words):
    """An invoice's lines, totals and notes as text in its buyer's language."""

    def __init__(self, invoice: Invoice, languages: Languages = None) -> None:
        super().__init__(invoice.buyer.language, invoice.currency, invoice.scale, languages)
        self.invoice = invoice

    def rows(self) -> list[tuple[str, str, str, str]]:
        """Each line as (description, quantity, unit price, amount) text."""
        result = []
        language = self.invoice.buyer.language
        for line in self.invoice.lines:
            quantity = f"{self.number(line.quantity)} {line.unit or ''}".strip() if line.quantity is not None else ""
            price = unit_price_text(line, language, self.price if line.per else self.number)
            description = line_description(line, language, self.number)
            result.append((description, quantity, price, self.money(line.amount)))
        return result

    def notes(self) -> list[str]:
        words, invoice = self.words, self.invoice
        notes = [words["terms"].format(due=self.date(invoice.due), number=invoice.number)]
        notes[:0] = self.tax_reasons()
        if invoice.tax.name == "reverse charge":
            notes.insert(0, words["reverse"])
        elif invoice.tax.name == "exempt":
            notes.insert(0, words["exempt"])
        return notes

    def tax_reasons(self) -> list[str]:
        """Why a tax applies as it does (an exemption, reverse charge, a reduced rate), as the billing file says
        it: each reason once, named by its tax when the invoice has several categories."""
        taxes, language = self.invoice.taxes, self.invoice.buyer.language
        reasons = []
        for tax in taxes:
            if tax.reason:
                named = f"{tax.label(language)} {self.number(tax.rate)} %: {tax.reason}"
                reasons.append(tax.reason if len(taxes) == 1 else named)
        return list(dict.fromkeys(reasons))

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
            *self.tax_rows(),
            *carried,
            ("label", words["total"], invoice.total, True),
        ]

    def tax_rows(self) -> list[tuple[str, str, Decimal, bool]]:
        """The tax under the subtotal: one row, or with several tax categories one per category, each with its
        rate and taxable amount."""
        taxes = self.invoice.taxes
        if len(taxes) == 1:
            return [("tax.name", self.tax_label(), self.invoice.tax_total, False)]
        line_words = LINE_WORDS.get(self.invoice.buyer.language, LINE_WORDS["en"])
        return [
            (
                f"taxes[{index}].name",
                line_words["tax of"].format(
                    tax=self.words["tax"],
                    name=tax.label(self.invoice.buyer.language),
                    rate=self.number(tax.rate),
                    taxable=self.money(tax.taxable),
                ),
                tax.tax,
                False,
            )
            for index, tax in enumerate(taxes)
        ]

    def tax_label(self) -> str:
        name = self.invoice.tax.label(self.invoice.buyer.language)  # one category: its name in the language
        return f"{self.words['tax']} ({name} {self.number(self.invoice.tax.rate)} %)"


_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 40px auto; max-width: 800px; color: #222; }
h1 { font-size: 28px; margin-bottom: 24px; }
.logo { max-height: 60px; max-width: 240px; margin-bottom: 12px; }
.parties { display: flex; justify-content: space-between; margin-bottom: 24px; }
.label { color: #777; font-size: 12px; text-transform: uppercase; margin-bottom: 4px; }
table { border-collapse: collapse; width: 100%; }
.meta th { text-align: left; font-weight: normal; color: #777; padding-right: 16px; }
.lines { margin-top: 24px; }
.lines th { text-align: left; border-bottom: 2px solid #222; padding: 6px 4px; }
.lines th.n { text-align: right; }
.meta { width: auto; }
.lines td { border-bottom: 1px solid #ddd; padding: 6px 4px; }
.n { text-align: right; white-space: nowrap; }
.total td { font-weight: bold; border-top: 2px solid #222; }
.notes { margin-top: 24px; font-size: 13px; color: #444; }
.footer { margin-top: 32px; font-size: 12px; color: #777; border-top: 1px solid #ddd; padding-top: 8px; }
"""


def _html_page(language: str, title: str, body: str, seller: Party | None = None, f: _Words | None = None) -> str:
    """A self-contained HTML page (no outside references) in ``language``; the seller's contact at its foot."""
    e = html.escape
    footer = ""
    if seller is not None and f is not None:
        contact = _contact_line(seller, f)
        if contact:
            footer = f'\n<div class="footer">{e(seller.legal_name)} · {e(contact[0][1])}</div>'
    return f"""<!DOCTYPE html>
<html lang="{e(language)}"><head><meta charset="utf-8">
<title>{e(title)}</title>
<style>{_CSS}</style></head><body>
{body}{footer}
</body></html>
"""


def _html_head(f: _Words, title: str, seller: Party, buyer: Party, label: str, meta: list[tuple[str, str]]) -> str:
    """The top of a document: its title, the seller's and the buyer's blocks, and its numbers and dates."""
    e = html.escape

    def party(who: Party, prefix: str, label: str) -> str:
        texts = [e(text) for _, text in _party_lines(who, prefix, f)]
        lines = [f"<strong>{texts[0]}</strong>", *texts[1:]]
        return f'<div class="party"><div class="label">{e(label)}</div>{"<br>".join(lines)}</div>'

    meta_html = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta)
    logo = _logo(seller)
    image = ""
    if logo is not None:
        kind = "png" if Path(logo).read_bytes()[:4] == b"\x89PNG" else "jpeg"
        data = base64.b64encode(Path(logo).read_bytes()).decode("ascii")
        image = f'<img class="logo" alt="{e(seller.legal_name)}" src="data:image/{kind};base64,{data}">\n'
    return (
        f"{image}<h1>{e(title)}</h1>\n"
        f'<div class="parties">{party(seller, "seller", "")}{party(buyer, "buyer", label)}</div>\n'
        f'<table class="meta">{meta_html}</table>'
    )


def invoice_html(invoice: Invoice, languages: Languages = None) -> str:
    """A self-contained HTML page laid out like an invoice."""
    f, e = _Format(invoice, languages), html.escape
    words = f.words
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
    notes = "".join(f"<p>{e(note)}</p>" for note in f.notes())
    notes += "".join(f"<p>{e(text)}</p>" for _, text in _payment_lines(invoice.seller, invoice.buyer, f))
    title = f"{words['invoice']} {invoice.number}"
    head = _html_head(f, title, invoice.seller, invoice.buyer, words["bill_to"], meta)
    return _html_page(
        invoice.buyer.language,
        title,
        f"""{head}
<table class="lines"><thead><tr><th>{e(words["description"])}</th><th class=n>{e(words["quantity"])}</th>
<th class=n>{e(words["unit_price"])}</th><th class=n>{e(words["amount"])}</th></tr></thead>
<tbody>{rows}{totals}</tbody></table>
<div class="notes">{notes}</div>""",
        invoice.seller,
        f,
    )


class _PdfText:
    """An A4 PDF whose every piece of text is checked before it is drawn: each character must be covered by
    DejaVu Sans or one of the extra fonts, else ``unrenderable_text`` names it and its field."""

    def __init__(self, what: str, fonts: Sequence[str | Path], compliance: str | None = None) -> None:
        try:
            from fpdf import FPDF
        except ImportError:
            raise RatingError(f"PDF documents need the invoices extra: {install_hint('invoices')}") from None
        self.what = what
        self.pdf = FPDF(format="A4", enforce_compliance=compliance)  # compliance: "PDFA_3B" for Factur-X
        self.pdf.set_auto_page_break(auto=True, margin=26)  # room for the footer
        #: The footer of every page: lines of small text (field, text), and "Page {page} of {pages}" in words.
        self.footer_lines: list[tuple[str, str]] = []
        self.page_label = ""
        self.pdf.footer = self._footer  # type: ignore[method-assign]
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

    def _footer(self) -> None:
        """Each page's footer: the footer lines left, the page number and the page count right (fpdf2 writes
        the count in place of ``{nb}`` once the last page is known)."""
        self.pdf.set_y(-20)
        self.font("", 7)
        self.pdf.set_text_color(110)
        for field, text in self.footer_lines:
            self.multi_cell(field, 150, 3.5, text, new_x="LMARGIN", new_y="NEXT", align="L")
        if self.page_label:
            self.pdf.set_xy(160, -20)
            self.cell("label", 40, 3.5, self.page_label.format(page=self.pdf.page_no(), pages="{nb}"), align="R")
        self.pdf.set_text_color(0)

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


def _party_lines(who: Party, prefix: str, f: _Words) -> list[tuple[str, str]]:
    """A seller's or a buyer's lines on the page, each with the field it shows: name, address, country (unless
    the address ends with it), tax id and register."""
    words = f.words
    lines = [(f"{prefix}.legal_name", who.legal_name)]
    lines += [(f"{prefix}.address[{index}]", line) for index, line in enumerate(who.address)]
    country = f.country(who.country)
    last = who.address[-1].strip().casefold() if who.address else ""
    if last not in {country.casefold(), f.country(who.country, "en").casefold(), who.country.casefold()}:
        lines.append((f"{prefix}.country", country))
    if who.tax_id:
        lines.append((f"{prefix}.tax_id", f"{words['tax_id']}: {who.tax_id}"))
    if who.registration:
        lines.append((f"{prefix}.registration", f"{words['registration']}: {who.registration}"))
    return lines


def _contact_line(who: Party, f: _Words) -> list[tuple[str, str]]:
    """The seller's email, phone and website, as one footer line (none when it gives none)."""
    parts = [
        (field, f"{f.words[field]}: {value}")
        for field, value in (("email", who.email), ("phone", who.phone), ("website", who.website))
        if value
    ]
    return [("seller.contact", " · ".join(text for _, text in parts))] if parts else []


def _payment_lines(seller: Party, buyer: Party, f: _Words) -> list[tuple[str, str]]:
    """How to pay, from the buyer's profile or else the seller (field, text): bank details, a link, a note."""
    payment = buyer.payment or seller.payment
    if payment is None:
        return []
    words, who = f.words, "buyer" if buyer.payment else "seller"
    lines = []
    for keys in (("account_holder", "bank"), ("iban", "bic")):
        parts = [f"{words[key]}: {getattr(payment, key)}" for key in keys if getattr(payment, key)]
        if parts:
            lines.append((f"{who}.payment", " · ".join(parts)))
    if lines:
        lines.insert(0, (f"{who}.payment", words["payment"]))
    if payment.link:
        lines.append((f"{who}.payment.link", f"{words['pay_online']}: {payment.link}"))
    if payment.note:
        lines.append((f"{who}.payment.note", payment.note))
    return lines


def _logo(seller: Party) -> str | None:
    """The seller's logo file, if it names one that is still there (an old document whose logo file is gone
    renders without it)."""
    return seller.logo if seller.logo and Path(seller.logo).is_file() else None


def _pdf_head(
    page: _PdfText, f: _Words, title: str, seller: Party, buyer: Party, label: str, meta: list[tuple[str, str, str]]
) -> None:
    """The top of a document's first page: its title, the seller's and the buyer's blocks, and its numbers and
    dates (``meta``: field, label, value)."""
    pdf = page.pdf
    page.footer_lines = [(field, f"{seller.legal_name} · {text}") for field, text in _contact_line(seller, f)]
    page.page_label = f.words["page"]
    page.font("", 7)  # the footer's: its text is checked before any page is drawn
    page.checked("label", page.page_label)
    for field, text in page.footer_lines:
        page.checked(field, text)
    logo = _logo(seller)
    if logo is not None:
        try:
            pdf.image(logo, x=10, y=10, h=16, keep_aspect_ratio=True, w=60)
        except Exception as error:  # fpdf2 and Pillow raise many kinds for an image they cannot read
            page.close()
            raise RatingError(f"{page.what}: cannot draw the logo {logo}: {error}") from None
        pdf.set_y(30)
    page.font("B", 20)
    page.cell("number", 0, 12, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    top = pdf.get_y()
    bottom = top
    for x, who, prefix, heading in ((10, seller, "seller", ""), (110, buyer, "buyer", label)):
        pdf.set_xy(x, top)
        if heading:
            page.font("", 8)
            page.cell("label", 90, 5, heading.upper(), new_x="LEFT", new_y="NEXT")
        for number, (field, text) in enumerate(_party_lines(who, prefix, f)):
            page.font("B" if number == 0 else "", 10)
            page.multi_cell(field, 90, 5, text, new_x="LEFT", new_y="NEXT", align="L")
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(10, max(bottom, top + 35) + 4)
    page.font("", 10)
    for field, key, value in meta:
        page.cell("label", 45, 6, key)
        page.multi_cell(field, 0, 6, value, new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(4)


def invoice_pdf(
    invoice: Invoice, fonts: Sequence[str | Path] = (), languages: Languages = None, *, compliance: str | None = None
) -> bytes:
    """The invoice as a one-or-more-page A4 PDF; ``fonts`` are font files for what DejaVu Sans does not cover;
    ``compliance`` an fpdf2 ``DocumentCompliance`` such as ``PDFA_3B`` (:mod:`rating.invoices.facturx`).

    Raises ``DocumentError`` (``unrenderable_text``) for a character no font covers."""
    f = _Format(invoice, languages)
    words = f.words
    page = _PdfText(f"invoice {invoice.number}", fonts, compliance)
    pdf = page.pdf
    meta = [
        ("number", words["number"], invoice.number),
        ("issued", words["issued"], f.date(invoice.issued)),
        ("due", words["due"], f.date(invoice.due)),
        ("period", words["period"], f"{f.date(invoice.period_start)} – {f.date(invoice.period_end)}"),
    ]
    _pdf_head(page, f, f"{words['invoice']} {invoice.number}", invoice.seller, invoice.buyer, words["bill_to"], meta)
    widths = (88, 36, 30, 36)
    page.font("B", 9)
    for width, title, align in zip(widths, ("description", "quantity", "unit_price", "amount"), "LRRR", strict=True):
        page.cell("label", width, 7, words[title], border="B", align=align)
    pdf.ln()
    page.font("", 9)
    for index, row in enumerate(f.rows()):
        fields = (f"lines[{index}].description", f"lines[{index}].unit", "label", "currency")
        # A long description (a display name, its group and tier) wraps within its column; the row grows with it.
        wrapped = pdf.multi_cell(widths[0], 4.5, page.checked(fields[0], row[0]), dry_run=True, output="LINES")
        height = max(6.0, 4.5 * len(wrapped) + 1.5)  # type: ignore[arg-type]  # a list of lines, with output="LINES"
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
        top = pdf.get_y()
        pdf.set_xy(pdf.l_margin, top + 0.75)
        page.multi_cell(fields[0], widths[0], 4.5, row[0], align="L", new_x="RIGHT", new_y="TOP")
        pdf.set_xy(pdf.l_margin + widths[0], top)
        for width, field, text, align in zip(widths[1:], fields[1:], row[1:], "RRR", strict=True):
            page.cell(field, width, height, text, align=align)
        pdf.line(pdf.l_margin, top + height, pdf.l_margin + sum(widths), top + height)
        pdf.set_xy(pdf.l_margin, top + height)
    for field, label, amount, bold in f.totals():
        page.font("B" if bold else "", 10)
        page.cell(field, sum(widths[:3]), 7, label, align="R")
        page.cell("currency", widths[3], 7, f.money(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    page.font("", 9)
    for note in f.notes():
        page.multi_cell("notes", 0, 5, note, new_x="LMARGIN", new_y="NEXT")
    _pdf_payment(page, f, invoice.seller, invoice.buyer)
    return page.output()


def _pdf_payment(page: _PdfText, f: _Words, seller: Party, buyer: Party) -> None:
    """How to pay, under the notes."""
    lines = _payment_lines(seller, buyer, f)
    if lines:
        page.pdf.ln(2)
    for field, text in lines:
        page.multi_cell(field, 0, 5, text, new_x="LMARGIN", new_y="NEXT", align="L")


class _NoteFormat(_Words):
    """A credit note's numbers, lines, totals and notes as text in its buyer's language."""

    def __init__(self, note: CreditNote, languages: Languages = None) -> None:
        numbers, _ = _babel()
        scale = note.scale if note.scale is not None else int(numbers.get_currency_precision(note.currency))
        super().__init__(note.buyer.language, note.currency, scale, languages)
        self.note = note

    @property
    def title(self) -> str:
        return f"{self.words['credit_note']} {self.note.number}"

    def meta(self) -> list[tuple[str, str, str]]:
        """(field, label, value): its number and date, the invoice it credits (number and date) or the period
        whose credit balance it is, and why."""
        words, note = self.words, self.note
        meta = [("number", words["credit_number"], note.number), ("issued", words["issued"], self.date(note.issued))]
        if note.invoice is not None:
            credited = note.invoice
            if note.invoice_issued is not None:
                credited = words["invoice_of"].format(number=note.invoice, date=self.date(note.invoice_issued))
            meta.append(("invoice", words["credits_invoice"], credited))
        else:
            meta.append(("period", words["credits_period"], note.period or ""))
        meta.append(("reason", words["reason"], note.reason))
        return meta

    def rows(self) -> list[tuple[str, str, str, str]]:
        """Each credited line as (invoice line number, description, tax, amount) text."""
        return [
            (
                str(line.line) if self.note.invoice else "",
                line.description,
                self.money(line.tax),
                self.money(line.amount),
            )
            for line in self.note.lines
        ]

    def totals(self) -> list[tuple[str, str, Decimal, bool]]:
        """(field, label, amount, bold): subtotal, tax, the earlier credits a period's note took over, the total."""
        words, note = self.words, self.note
        tax = words["tax"]
        if note.tax is not None:
            tax = f"{tax} ({note.tax.name} {self.number(note.tax.rate)} %)"
        carried = [
            ("carried", words["carried"].format(number=c.number, period=c.period), c.amount, False)
            for c in note.carried
        ]
        return [
            ("label", words["subtotal"], note.subtotal, False),
            ("tax.name", tax, note.tax_total, False),
            *carried,
            ("label", words["total_credited"], note.total, True),
        ]

    def notes(self) -> list[str]:
        words, note = self.words, self.note
        if note.invoice is None:
            return [words["credit_carried"]]
        notes = []
        if note.total > note.refund:
            notes.append(words["credit_applied"].format(invoice=note.invoice))
        if note.refund and note.refund_to is not None:
            notes.append(words[f"refund_{note.refund_to}"].format(amount=self.money(note.refund)))
        return notes


def credit_note_html(note: CreditNote, languages: Languages = None) -> str:
    """A self-contained HTML page of a credit note, naming the invoice it credits (number and date)."""
    f, e = _NoteFormat(note, languages), html.escape
    words = f.words
    rows = "".join(
        f"<tr><td>{e(n)}</td><td>{e(d)}</td><td class=n>{e(t)}</td><td class=n>{e(a)}</td></tr>"
        for n, d, t, a in f.rows()
    )
    totals = "".join(
        f"<tr{' class=total' if bold else ''}><td colspan=3>{e(label)}</td><td class=n>{e(f.money(amount))}</td></tr>"
        for _, label, amount, bold in f.totals()
    )
    head = _html_head(f, f.title, note.seller, note.buyer, words["bill_to"], [(k, v) for _, k, v in f.meta()])
    notes = "".join(f"<p>{e(text)}</p>" for text in f.notes())
    return _html_page(
        f.language,
        f.title,
        f"""{head}
<table class="lines"><thead><tr><th>{e(words["line"])}</th><th>{e(words["description"])}</th>
<th class=n>{e(words["tax"])}</th><th class=n>{e(words["amount"])}</th></tr></thead>
<tbody>{rows}{totals}</tbody></table>
<div class="notes">{notes}</div>""",
        note.seller,
        f,
    )


def credit_note_pdf(note: CreditNote, fonts: Sequence[str | Path] = (), languages: Languages = None) -> bytes:
    """A credit note as an A4 PDF, naming the invoice it credits (number and date); ``fonts`` as for invoices.

    Raises ``DocumentError`` (``unrenderable_text``) for a character no font covers."""
    f = _NoteFormat(note, languages)
    words = f.words
    page = _PdfText(f"credit note {note.number}", fonts)
    pdf = page.pdf
    _pdf_head(page, f, f.title, note.seller, note.buyer, words["bill_to"], f.meta())
    widths = (18, 100, 36, 36)
    page.font("B", 9)
    for width, title, align in zip(widths, ("line", "description", "tax", "amount"), "LLRR", strict=True):
        page.cell("label", width, 7, words[title], border="B", align=align)
    pdf.ln()
    page.font("", 9)
    for index, row in enumerate(f.rows()):
        fields = ("label", f"lines[{index}].description", "currency", "currency")
        for width, field, text, align in zip(widths, fields, row, "LLRR", strict=True):
            page.cell(field, width, 6, text, border="B", align=align)
        pdf.ln()
    for field, label, amount, bold in f.totals():
        page.font("B" if bold else "", 10)
        page.cell(field, sum(widths[:3]), 7, label, align="R")
        page.cell("currency", widths[3], 7, f.money(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    page.font("", 9)
    for text in f.notes():
        page.multi_cell("notes", 0, 5, text, new_x="LMARGIN", new_y="NEXT")
    return page.output()


def _described(meter: str, group: tuple[str, ...]) -> str:
    return f"{meter} ({', '.join(group)})" if group else meter


#: A row of a statement's funds table: (label, added, taken, funds, bold); empty cells are "".
_FundsRow = tuple[str, str, str, str, bool]


class _StatementFormat(_Words):
    """A statement as text in ``language``: what moved the funds of each asset in two columns (added, taken),
    never a negative amount: funds are never below zero, and what is owed is shown as the amount due."""

    def __init__(self, item: Statement, language: str, languages: Languages = None) -> None:
        super().__init__(language, item.currency, 0, languages)
        self.item = item

    def amount(self, value: Decimal, asset: str) -> str:
        return f"{self.numbers.format_decimal(value, format='#,##0.##########', locale=self.locale)} {asset}"

    @property
    def title(self) -> str:
        return f"{self.words['statement']} {self.item.customer} {self.item.period}"

    def meta(self) -> list[tuple[str, str, str]]:
        item = self.item
        end = item.end - dt.timedelta(microseconds=1)
        return [
            ("customer", self.words["customer"], item.customer),
            ("period", self.words["period"], f"{self.date(item.start.date())} – {self.date(end.date())}"),
        ]

    def funds(self) -> list[tuple[str, list[_FundsRow]]]:
        """Per asset: its opening funds, each movement as added or taken, its closing funds, their value in the
        pricebook currency, and the amount due."""
        words, tables = self.words, []
        for asset in self.item.assets:
            name = asset.asset
            rows: list[_FundsRow] = [(words["opening"], "", "", self.amount(asset.opening, name), False)]
            for key, moved in asset.movements.items():
                shown = self.amount(abs(moved), name)
                rows.append((words.get(key, key), shown if moved > 0 else "", shown if moved < 0 else "", "", False))
            rows.append((words["closing"], "", "", self.amount(asset.closing, name), True))
            if asset.closing_value is not None and name != self.item.currency:
                rows.append((words["value"], "", "", self.amount(asset.closing_value, self.item.currency), False))
            if asset.owed > 0:
                rows.append((words["amount_due"], "", "", self.amount(asset.owed, name), True))
            elif asset.owed < 0:  # the customer paid more than it owed: owed back, shown as a credit
                rows.append((words["credit_balance"], "", "", self.amount(-asset.owed, name), True))
            tables.append((name, rows))
        return tables

    def usage(self) -> list[tuple[str, str, str]]:
        return [
            (_described(u.meter, u.group), self.number(u.quantity), self.amount(u.amount, u.asset))
            for u in self.item.usage
        ]


def _statement_party(item: Statement, buyer: Party | None) -> Party:
    """The buyer block of a statement: the customer's billing profile, or its id alone."""
    if buyer is not None:
        return buyer
    return Party.model_construct(legal_name=item.customer, address=(), country="", tax_id=None)


def statement_html(
    item: Statement,
    language: str = "en",
    seller: Party | None = None,
    buyer: Party | None = None,
    languages: Languages = None,
) -> str:
    """A self-contained HTML page of a statement: the seller's and the customer's blocks (from the billing file,
    when given), each asset's funds as added and taken, the amount due, and the usage, under column headers."""
    e, f = html.escape, _StatementFormat(item, language, languages)
    words = f.words
    meta = [(k, v) for _, k, v in f.meta()]
    if seller is not None:
        head = _html_head(f, f.title, seller, _statement_party(item, buyer), words["customer"], meta)
    else:
        meta_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta)
        head = f'<h1>{e(f.title)}</h1>\n<table class="meta">{meta_rows}</table>'
    tables = []
    for asset, rows in f.funds():
        body = "".join(
            f"<tr{' class=total' if bold else ''}><td>{e(label)}</td><td class=n>{e(added)}</td>"
            f"<td class=n>{e(taken)}</td><td class=n>{e(funds)}</td></tr>"
            for label, added, taken, funds, bold in rows
        )
        tables.append(
            f'<table class="lines"><thead><tr><th>{e(words["funds"].format(asset=asset))}</th>'
            f"<th class=n>{e(words['added'])}</th><th class=n>{e(words['taken'])}</th>"
            f"<th class=n>{e(words['balance'])}</th></tr></thead><tbody>{body}</tbody></table>"
        )
    usage = "".join(f"<tr><td>{e(m)}</td><td class=n>{e(q)}</td><td class=n>{e(a)}</td></tr>" for m, q, a in f.usage())
    return _html_page(
        language,
        f.title,
        f"""{head}
{"".join(tables)}
<h2>{e(words["usage by meter"])}</h2>
<table class="lines"><thead><tr><th>{e(words["meter"])}</th><th class=n>{e(words["quantity"])}</th>
<th class=n>{e(words["amount"])}</th></tr></thead><tbody>{usage}</tbody></table>""",
        seller,
        f,
    )


def statement_pdf(
    item: Statement,
    language: str = "en",
    fonts: Sequence[str | Path] = (),
    seller: Party | None = None,
    buyer: Party | None = None,
    languages: Languages = None,
) -> bytes:
    """A statement as an A4 PDF (as :func:`statement_html` lays it out); ``fonts`` are font files for what
    DejaVu Sans does not cover.

    Raises ``DocumentError`` (``unrenderable_text``) for a character no font covers."""
    f = _StatementFormat(item, language, languages)
    words = f.words
    page = _PdfText(f"statement {item.customer} {item.period}", fonts)
    pdf = page.pdf
    if seller is not None:
        _pdf_head(page, f, f.title, seller, _statement_party(item, buyer), words["customer"], f.meta())
    else:
        page.page_label = words["page"]
        page.font("B", 18)
        page.cell("customer", 0, 12, f.title, new_x="LMARGIN", new_y="NEXT")
        page.font("", 10)
        for field, key, value in f.meta():
            page.cell("label", 45, 6, key)
            page.cell(field, 0, 6, value, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    widths = (85, 35, 35, 35)
    for asset, rows in f.funds():
        page.font("B", 9)
        headers = (words["funds"].format(asset=asset), words["added"], words["taken"], words["balance"])
        for width, title, align in zip(widths, headers, "LRRR", strict=True):
            page.cell("asset", width, 7, title, border="B", align=align)
        pdf.ln()
        for label, added, taken, funds, bold in rows:
            page.font("B" if bold else "", 9)
            for width, text, align in zip(widths, (label, added, taken, funds), "LRRR", strict=True):
                page.cell("asset", width, 6, text, border="B", align=align)
            pdf.ln()
        pdf.ln(5)
    page.font("B", 12)
    page.cell("label", 0, 9, words["usage by meter"], new_x="LMARGIN", new_y="NEXT")
    usage_widths = (100, 45, 45)
    page.font("B", 9)
    for width, title, align in zip(usage_widths, ("meter", "quantity", "amount"), "LRR", strict=True):
        page.cell("label", width, 7, words[title], border="B", align=align)
    pdf.ln()
    page.font("", 9)
    for index, (meter, quantity, amount) in enumerate(f.usage()):
        page.cell(f"usage[{index}].meter and group", 100, 6, meter, border="B")
        page.cell("quantity", 45, 6, quantity, border="B", align="R")
        page.cell(f"usage[{index}].asset", 45, 6, amount, border="B", align="R", new_x="LMARGIN", new_y="NEXT")
    return page.output()
