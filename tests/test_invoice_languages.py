"""Languages: English and German built in, French, Spanish and Polish shipped as translation files (data), and any
other by a translation file the billing file names; a language with no labels is refused, never guessed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from rating.cli import main
from rating.errors import DocumentError, PricebookError
from rating.invoices.issue import Invoice
from rating.invoices.profiles import load_billing, parse_billing
from rating.invoices.render import WORDS, credit_note_pdf, invoice_html, invoice_pdf, labels
from rating.invoices.settle import credit_invoice
from rating.invoices.translations import SHIPPED, available, load_translation
from rating.refusals import DocumentRefusal
from rating.storage.memory import MemoryStorage
from tests.helpers import EXAMPLE, ROOT
from tests.test_settlement import issued_invoice

PdfReader = pytest.importorskip("pypdf").PdfReader


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def in_language(invoice: Invoice, language: str) -> Invoice:
    return invoice.model_copy(update={"buyer": invoice.buyer.model_copy(update={"language": language})})


def test_the_shipped_translation_files_have_every_label_and_keep_the_placeholders() -> None:
    assert sorted(path.stem for path in SHIPPED.glob("*.yaml")) == ["es", "fr", "pl"]
    assert available() == ["de", "en", "es", "fr", "pl"]
    for language in ("fr", "es", "pl"):
        words = load_translation(SHIPPED / f"{language}.yaml", frozenset(WORDS["en"])).words
        assert sorted(words) == sorted(WORDS["en"]), language  # a label added in English needs its translation
        for key, english in WORDS["en"].items():
            wanted = sorted(part.split("}")[0] for part in english.split("{")[1:])
            assert sorted(part.split("}")[0] for part in words[key].split("{")[1:]) == wanted, (language, key)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", ("Facture INV-2026-000001", "Date d'émission", "1 déc. 2026", "Total à payer", "1,50 USD",
                "Taxe (VAT 19 %)", "Allemagne", "Page 1 sur 1")),
        ("es", ("Factura INV-2026-000001", "Fecha de emisión", "1 dic 2026", "Total a pagar", "1,50 USD",
                "Alemania", "Página 1 de 1")),
        ("pl", ("Faktura INV-2026-000001", "Data wystawienia", "1 gru 2026", "Do zapłaty", "1,50 USD",
                "Niemcy", "Strona 1 z 1")),
    ],
)  # fmt: skip
def test_invoices_and_credit_notes_in_french_spanish_and_polish(book, language: str, expected: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    storage = MemoryStorage()
    invoice = in_language(issued_invoice(storage, book), language)
    text = pdf_text(invoice_pdf(invoice))
    for part in expected:
        assert part in text, part
    assert f'lang="{language}"' in invoice_html(invoice)
    note, _ = credit_invoice(storage, invoice.number, "cn-1", "goodwill")
    note = note.model_copy(update={"buyer": note.buyer.model_copy(update={"language": language})})
    title = {"fr": "Avoir", "es": "Factura rectificativa", "pl": "Faktura korygująca"}[language]
    assert f"{title} {note.number}" in pdf_text(credit_note_pdf(note))


IT = """\
locale: it_IT
words:
  invoice: Fattura
  total: Totale da pagare
  page: Pagina {page} di {pages}
"""


def test_any_language_with_a_translation_file_named_in_the_billing_file(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "it.yaml").write_text(IT, encoding="utf-8")
    text = (
        "seller: {legal_name: Seller GmbH, country: DE}\n"
        "languages: {it: it.yaml}\n"
        "profiles:\n  acme: {legal_name: Acme SpA, country: IT, language: it}\n"
    )
    (tmp_path / "billing.yaml").write_text(text, encoding="utf-8")
    billing = load_billing(tmp_path / "billing.yaml")
    assert billing.languages == {"it": str(tmp_path / "it.yaml")}
    invoice = in_language(issued_invoice(MemoryStorage(), book), "it")
    shown = pdf_text(invoice_pdf(invoice, (), billing.languages))
    # Its labels, Babel's Italian numbers, dates and country names; a label it leaves out is the English one.
    for part in ("Fattura INV-2026-000001", "Totale da pagare", "1,50 USD", "1 dic 2026", "Germania", "Pagina 1 di 1",
                 "Subtotal"):  # fmt: skip
        assert part in shown, part
    with pytest.raises(DocumentError) as refused:  # without the billing file: no labels for Italian
        invoice_pdf(invoice)
    assert refused.value.code == DocumentRefusal.UNKNOWN_LANGUAGE and "'it'" in str(refused.value)
    with pytest.raises(DocumentError, match="unknown_language: no labels for language 'xx'"):
        labels("xx")


def test_a_language_without_labels_or_a_bad_translation_file_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(PricebookError) as raised:
        parse_billing(
            "seller: {legal_name: S, country: DE}\nprofiles:\n  acme: {legal_name: A, country: IT, language: it}\n",
            "billing.yaml",
        )
    [problem] = raised.value.problems
    assert problem.startswith("billing.yaml:3:") and "profiles.acme.language: no labels for language 'it'" in problem
    (tmp_path / "it.yaml").write_text(IT.replace("  invoice:", "  invoce:"), encoding="utf-8")
    (tmp_path / "billing.yaml").write_text(
        "seller: {legal_name: S, country: DE}\nlanguages: {it: it.yaml}\n", encoding="utf-8"
    )
    with pytest.raises(PricebookError, match=r"languages\.it: .*it\.yaml:3:3: words\.invoce: no label is called"):
        load_billing(tmp_path / "billing.yaml")
    (tmp_path / "billing.yaml").write_text(
        "seller: {legal_name: S, country: DE}\nlanguages: {it: missing.yaml}\n", encoding="utf-8"
    )
    with pytest.raises(PricebookError, match=r"languages\.it: .*missing\.yaml: cannot read translation file"):
        load_billing(tmp_path / "billing.yaml")
    assert yaml.safe_load(IT)["locale"] == "it_IT"


def test_the_example_billing_file_bills_hooli_in_french(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    issue = ["invoice", "issue", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]
    assert main([*issue, "--billing", billing, "--date", "2026-12-01", "--html", "docs"]) == 1  # initech refused
    pages = [path.read_text(encoding="utf-8") for path in Path("docs").glob("*.html")]
    assert any('lang="fr"' in page and "Facture" in page and "Hooli SAS" in page for page in pages)
    statement = ["statement", "show", "--db", "history.db", "--period", "2026-11", "-p", str(EXAMPLE)]
    capsys.readouterr()
    assert main([*statement, "--customer", "hooli", "--html", "st", "--language", "xx"]) != 0
    assert "unknown_language: no labels for language 'xx'" in capsys.readouterr().err
    assert not Path("st").exists()
