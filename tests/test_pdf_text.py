"""PDF text is drawn as written, never replaced: every character is rendered, or refused by name.

Issue 20, item 13: a Polish or Japanese customer name became ``Za?ó?? G??l?``
in the PDF (the built-in Helvetica draws Latin-1 only), with exit 0. PDFs now
draw in the shipped DejaVu Sans (Latin, Greek, Cyrillic, Hebrew, Arabic...) and
in the font files the billing file names; a character none covers is refused
with ``unrenderable_text``, naming it and its field, while the invoice itself
(JSON, HTML) is issued all the same.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from rating.billing.close import close_period
from rating.billing.statements import statement
from rating.cli import main
from rating.engine import Engine
from rating.errors import DocumentError, PricebookError
from rating.invoices.issue import Invoice, issue_invoices
from rating.invoices.profiles import load_billing, parse_billing
from rating.invoices.render import FONTS, invoice_html, invoice_pdf, statement_pdf
from rating.pricebook.catalog import Catalog
from rating.refusals import DocumentRefusal
from rating.storage.memory import MemoryStorage
from tests.helpers import ROOT, SIMPLE_PRICEBOOK, event
from tests.test_invoices import ISSUED, NOVEMBER
from tests.test_statements import history
from tests.test_telescoping import REGISTRY

PdfReader = pytest.importorskip("pypdf").PdfReader
pytest.importorskip("fpdf")

#: A subset of Droid Sans Fallback (Apache 2.0) holding 山田太郎株式会社東京: see tests/fixtures/fonts/README.md.
CJK_FONT = ROOT / "tests" / "fixtures" / "fonts" / "DroidSansFallback-subset.ttf"
POLISH, GREEK, CYRILLIC = "Zażółć Gęślą Jaźń Sp. z o.o.", "Ωμέγα Αθήνα Ε.Π.Ε.", "ООО «Щука и Ёжик»"
JAPANESE = "山田太郎株式会社"


def billing_text(legal_name: str, address: list[str], fonts: str = "") -> str:
    return (
        "seller: {legal_name: Seller GmbH, address: [Berlin], country: DE, tax_id: DE1}\n"
        "tax_rules: [{country: PL, rate: 23, name: VAT}, {country: JP, rate: 10, name: 消費税}]\n"
        f"profiles:\n  acme: {{legal_name: {json.dumps(legal_name)}, address: {json.dumps(address)}, country: PL}}\n"
        + fonts
    )


def issued(book, legal_name: str, address: list[str], model: str = "m", fonts: str = "") -> Invoice:  # type: ignore[no-untyped-def]
    engine = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), REGISTRY)
    engine.rate_batch([event("e1", at=NOVEMBER, tokens=1500, model=model)])
    close_period(engine, "2026-11")
    billing = parse_billing(billing_text(legal_name, address, fonts))
    [invoice] = issue_invoices(engine.storage, Catalog([engine.pricebook]), billing, "2026-11", issued=ISSUED).issued
    return invoice


def pdf_text(document: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)


def test_polish_greek_and_cyrillic_text_comes_out_of_the_pdf_exactly(book) -> None:  # type: ignore[no-untyped-def]
    invoice = issued(book, POLISH, [GREEK, CYRILLIC, "ul. Żółkiewskiego 5, 00-950 Łódź"], model="Щука-Ωμέγα")
    text = pdf_text(invoice_pdf(invoice))
    for expected in (POLISH, GREEK, CYRILLIC, "ul. Żółkiewskiego 5, 00-950 Łódź", "Tokens (Щука-Ωμέγα)",
                     "Nov 1, 2026 – Nov 30, 2026"):  # fmt: skip
        assert expected in text.splitlines() or expected in text
    assert "?" not in text


def test_right_to_left_and_combining_text_is_shaped_and_kept(book) -> None:  # type: ignore[no-untyped-def]
    arabic, hebrew, combining = "مرحبا بالعالم", "שלום עולם", "Cafe\u0301 e\u0301te\u0301"
    text = pdf_text(invoice_pdf(issued(book, "Acme", [arabic, hebrew, combining])))
    assert arabic in text and hebrew in text and combining in text


def test_a_japanese_name_is_refused_by_name_with_the_default_font_yet_the_invoice_is_issued(book) -> None:  # type: ignore[no-untyped-def]
    invoice = issued(book, JAPANESE, ["Tokyo"])
    with pytest.raises(DocumentError) as refused:
        invoice_pdf(invoice)
    assert refused.value.code == DocumentRefusal.UNRENDERABLE_TEXT
    message = str(refused.value)
    assert "buyer.legal_name" in message and "'山'" in message and "U+5C71 CJK UNIFIED IDEOGRAPH-5C71" in message
    assert invoice.buyer.legal_name == JAPANESE and JAPANESE in invoice_html(invoice)  # issued, HTML correct
    # Each address line, line description and the tax rule's name is a field of its own.
    taxed = invoice.model_copy(update={"buyer": invoice.buyer.model_copy(update={"legal_name": "Acme"}),
                                       "tax": invoice.tax.model_copy(update={"name": "消費税"})})  # fmt: skip
    with pytest.raises(DocumentError, match=r"tax\.name has '消'"):
        invoice_pdf(taxed)
    with pytest.raises(DocumentError, match=r"buyer\.address\[1\] has '東'"):
        invoice_pdf(issued(book, "Acme", ["Tokyo", "東京"]))
    with pytest.raises(DocumentError, match=r"lines\[1\]\.description has '山'"):
        invoice_pdf(issued(book, "Acme", [], model="山"))


def test_a_font_file_named_in_the_billing_file_renders_what_dejavu_lacks(book, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(CJK_FONT, tmp_path / "cjk.ttf")
    (tmp_path / "billing.yaml").write_text(billing_text(JAPANESE, ["東京", POLISH], "fonts: [cjk.ttf]\n"))
    billing = load_billing(tmp_path / "billing.yaml")
    assert billing.fonts == (str(tmp_path / "cjk.ttf"),)  # relative to the billing file
    invoice = issued(book, JAPANESE, ["東京", POLISH])
    text = pdf_text(invoice_pdf(invoice, billing.fonts))
    assert JAPANESE in text and "東京" in text and POLISH in text and "Invoice number" in text


def test_a_missing_font_file_is_a_billing_file_problem_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "billing.yaml").write_text(billing_text("Acme", [], "fonts: [missing.ttf]\n"))
    with pytest.raises(PricebookError, match=r"billing.yaml:5:\d+: fonts\[0\]: no font file .*missing.ttf"):
        load_billing(tmp_path / "billing.yaml")


def test_a_statement_names_the_field_it_cannot_draw(book) -> None:  # type: ignore[no-untyped-def]
    storage = MemoryStorage()
    engine, _ = history(storage, book)
    item = statement(storage, engine.pricebook, "wally", "2026-11")
    usage = [u.model_copy(update={"group": ("東京",)}) if u.group else u for u in item.usage]
    japanese = item.model_copy(update={"usage": usage})
    with pytest.raises(DocumentError, match=r"usage\[\d\]\.meter and group has '東'"):
        statement_pdf(japanese)
    assert "tokens (東京)" in pdf_text(statement_pdf(japanese, "en", [CJK_FONT]))


def test_the_fonts_ship_with_their_licence_and_stay_small() -> None:
    sizes = {path.name: path.stat().st_size for path in FONTS.iterdir()}
    assert set(sizes) == {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE-DejaVu.txt"}
    assert sum(sizes.values()) < 1_600_000
    assert "Bitstream Vera" in (FONTS / "LICENSE-DejaVu.txt").read_text()


def test_the_cli_issues_the_invoice_but_writes_no_pdf_it_cannot_draw(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK + "  beta: {plan: basic}\n")
    lines = [
        json.dumps({"id": f"e-{customer}", "customer": customer, "type": "api.call",
                    "timestamp": "2026-11-05T12:00:00Z", "properties": {"tokens": 100, "model": "m"}})
        for customer in ("acme", "beta")
    ]  # fmt: skip
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["rate", "events.jsonl", "-p", "book.yaml", "--db", "h.db"]) == 0
    assert main(["close-period", "--db", "h.db", "--period", "2026-11", "-p", "book.yaml"]) == 0
    text = billing_text(JAPANESE, ["東京"]) + "  beta: {legal_name: Beta Sp. z o.o., country: PL}\n"
    (tmp_path / "billing.yaml").write_text(text)
    issue = ["invoice", "issue", "--db", "h.db", "--period", "2026-11", "-p", "book.yaml", "--billing", "billing.yaml"]
    capsys.readouterr()
    assert main([*issue, "--date", "2026-12-01", "--pdf", "docs", "--html", "pages"]) != 0
    err = capsys.readouterr().err
    assert "unrenderable_text" in err and "buyer.legal_name has '山'" in err and "Traceback" not in err
    assert not (tmp_path / "docs").exists() and not (tmp_path / "pages").exists()  # nothing written half-way
    assert main(["invoice", "list", "--db", "h.db", "-o", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2  # both invoices are issued all the same
    shutil.copy(CJK_FONT, tmp_path / "cjk.ttf")
    (tmp_path / "billing.yaml").write_text(text + "fonts: [cjk.ttf]\n")
    assert (
        main(["invoice", "show", "INV-2026-000001", "--db", "h.db", "--pdf", "docs", "--billing", "billing.yaml"]) == 0
    )
    assert JAPANESE in pdf_text((tmp_path / "docs" / "INV-2026-000001.pdf").read_bytes())
