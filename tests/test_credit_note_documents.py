"""Credit notes are documents: JSON, CSV, HTML and PDF, each naming the invoice it credits (number and date)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.invoices.issue import CreditNote
from rating.invoices.render import credit_note_csv, credit_note_html, credit_note_pdf
from rating.invoices.settle import credit_invoice
from rating.storage.memory import MemoryStorage
from tests.helpers import EXAMPLE, ROOT
from tests.test_settlement import issued_invoice

PdfReader = pytest.importorskip("pypdf").PdfReader


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def credited(book, language: str = "de") -> CreditNote:  # type: ignore[no-untyped-def]
    """0.50 USD (0.10 of tax) of line 2 of acme's invoice INV-2026-000001 (issued 2026-12-01, VAT 19 %)."""
    storage = MemoryStorage()
    invoice = issued_invoice(storage, book)
    note, _ = credit_invoice(storage, invoice.number, "cn-1", "goodwill", line=2, amount=Decimal("0.50"))
    return note.model_copy(update={"buyer": note.buyer.model_copy(update={"language": language})})


def test_a_credit_note_names_the_invoice_it_credits_by_number_and_date_in_every_format(book) -> None:  # type: ignore[no-untyped-def]
    note = credited(book, "en")
    assert (note.invoice, note.invoice_issued.isoformat() if note.invoice_issued else None) == (
        "INV-2026-000001", "2026-12-01"
    )  # fmt: skip
    assert (note.scale, note.tax.rate if note.tax else None) == (2, Decimal(19))
    stored = json.loads(note.model_dump_json())
    assert (stored["invoice"], stored["invoice_issued"], stored["total"]) == ("INV-2026-000001", "2026-12-01", "0.60")
    [row] = list(csv.DictReader(io.StringIO(credit_note_csv([note]))))
    assert (row["number"], row["credits"], row["credits_issued"], row["line"], row["amount"], row["tax"]) == (
        note.number, "INV-2026-000001", "2026-12-01", "2", "0.50", "0.10"
    )  # fmt: skip
    page = credit_note_html(note)
    for expected in (f"Credit note {note.number}", "INV-2026-000001 of Dec 1, 2026", "Total credited", "0.60 USD"):
        assert expected in page
    text = pdf_text(credit_note_pdf(note))
    for expected in (f"Credit note {note.number}", "Credits invoice", "INV-2026-000001 of Dec 1, 2026", "goodwill",
                     "Tax (VAT 19 %)", "0.10 USD", "Total credited", "0.60 USD",
                     "This credit is taken off what is due on invoice INV-2026-000001."):  # fmt: skip
        assert expected in text
    german = pdf_text(
        credit_note_pdf(note.model_copy(update={"buyer": note.buyer.model_copy(update={"language": "de"})}))
    )
    for expected in (f"Gutschrift {note.number}", "INV-2026-000001 vom 01.12.2026", "Gutschrift gesamt", "0,60 USD"):
        assert expected in german


def test_a_credit_note_issued_before_its_invoice_date_was_recorded_still_renders(book) -> None:  # type: ignore[no-untyped-def]
    old = credited(book, "en").model_copy(update={"invoice_issued": None, "scale": None, "tax": None})
    text = pdf_text(credit_note_pdf(old))
    assert "Credits invoice INV-2026-000001" in text and "0.60 USD" in text and "Tax\n" not in text


def test_credit_and_show_write_the_credit_note_as_html_and_pdf(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", "history.db"]
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", *db, "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    capsys.readouterr()
    issue = ["invoice", "issue", *db, "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing, "-o", "json"]
    assert main([*issue, "--date", "2026-12-01"]) == 1  # initech refused: it gets a statement
    number = json.loads(capsys.readouterr().out)[0]["number"]
    credit = ["invoice", "credit", number, *db, "--reference", "cn-1", "--reason", "billing error"]
    assert main([*credit, "--pdf", "credit", "--html", "credit"]) == 0
    err = capsys.readouterr().err
    cn = err.split("issued ")[1].split(":")[0]
    assert sorted(p.name for p in Path("credit").iterdir()) == [f"{cn}.html", f"{cn}.pdf"]  # the note, not the invoice
    assert f"{number} of Dec 1, 2026" in pdf_text(Path("credit", f"{cn}.pdf").read_bytes())
    assert main(["invoice", "show", cn, *db, "-o", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and {row["credits"] for row in rows} == {number} and {row["number"] for row in rows} == {cn}
    assert main(["invoice", "show", cn, *db, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["invoice_issued"] == "2026-12-01"
    assert main(["invoice", "show", cn, *db, "--pdf", "shown", "--billing", billing]) == 0
    assert "billing error" in pdf_text(Path("shown", f"{cn}.pdf").read_bytes())


def test_a_periods_credit_note_names_its_period_and_says_it_is_carried(book) -> None:  # type: ignore[no-untyped-def]
    from rating.invoices.issue import CarriedCredit

    note = credited(book, "en").model_copy(
        update={
            "invoice": None,
            "invoice_issued": None,
            "period": "2026-12",
            "carried": (CarriedCredit(number="CN-2026-000009", period="2026-11", amount=Decimal("1.00")),),
        }
    )
    text = pdf_text(credit_note_pdf(note))
    for expected in ("Credit balance of 2026-12", "Credit carried from CN-2026-000009 (2026-11)",
                     "This credit is carried to your next invoice."):  # fmt: skip
        assert expected in text, expected
    [line, carried] = list(csv.DictReader(io.StringIO(credit_note_csv([note]))))
    assert (line["credits"], line["line"], carried["amount"]) == ("period:2026-12", "2", "1.00")
