"""``rating serve --billing FILE`` (and ``create_app(billing=...)``): the documents served draw with the billing
file's fonts, so an invoice whose seller the default font cannot draw is served as a PDF carrying that seller."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from rating.billing.close import close_period
from rating.cli import main
from rating.engine import Engine
from rating.events import parse_event
from rating.invoices.issue import issue_invoices
from rating.invoices.profiles import load_billing
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.server import create_app
from tests.helpers import EXAMPLE, ROOT, later
from tests.server.conftest import bearer, event
from tests.server.test_serve import free_port, wait_ready

pytest.importorskip("fpdf")
PdfReader = pytest.importorskip("pypdf").PdfReader

READ = bearer("read")
#: A subset of Droid Sans Fallback holding these characters (see tests/fixtures/fonts/README.md).
CJK_FONT = ROOT / "tests" / "fixtures" / "fonts" / "DroidSansFallback-subset.ttf"
SELLER, CITY = "山田太郎株式会社", "東京"
BILLING = f"""\
seller: {{legal_name: {SELLER}, address: [{CITY}], country: JP, tax_id: T1234567890123}}
tax_rules: [{{country: "*", rate: 10, name: VAT}}]
profiles:
  acme-labs: {{legal_name: Acme Labs GmbH, address: [Berlin], country: DE}}
fonts: [cjk.ttf]
"""


def pdf_text(document: bytes) -> str:
    import io

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)


@pytest.fixture
def billing(tmp_path: Path) -> Path:
    """The billing file, its font beside it (named relative to the file)."""
    shutil.copy(CJK_FONT, tmp_path / "cjk.ttf")
    path = tmp_path / "billing.yaml"
    path.write_text(BILLING, encoding="utf-8")
    return path


@pytest.fixture
def invoiced(db: str, registry: Registry, billing: Path) -> str:
    """The number of acme-labs's November invoice, issued with :data:`BILLING` into ``db``."""
    catalog = load_catalog([EXAMPLE], registry)
    with registry.open_storage(db) as storage:
        engine = Engine(catalog, storage, registry, clock=later)
        usage = [parse_event(event(f"a{n}", "acme-labs", input_tokens=1_000_000)) for n in range(2)]
        assert not engine.rate_batch(usage).rejected
        close_period(engine, "2026-11", ["acme-labs"])
        report = issue_invoices(
            storage, catalog, load_billing(billing), "2026-11", ["acme-labs"], issued=dt.date(2026, 12, 1)
        )
        [invoice] = report.issued
    assert invoice.seller.legal_name == SELLER
    return invoice.number


def test_the_invoice_pdf_draws_the_seller_with_the_billing_files_fonts(
    db: str, keys: Path, registry: Registry, billing: Path, invoiced: str
) -> None:
    app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later, billing=billing)
    with TestClient(app) as client:
        pdf = client.get(f"/v1/invoices/{invoiced}.pdf", headers=READ)
        assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
        text = pdf_text(pdf.content)
        assert SELLER in text and CITY in text and invoiced in text and "Acme Labs GmbH" in text
        html = client.get(f"/v1/invoices/{invoiced}.html", headers=READ)
        assert html.status_code == 200 and SELLER in html.text
        statement = client.get("/v1/customers/acme-labs/statement?period=2026-11&format=pdf", headers=READ)
        assert statement.status_code == 200 and "acme-labs" in pdf_text(statement.content)
    # Without the billing file the same PDF is refused by name (the shipped font has no CJK), never drawn wrong.
    with TestClient(create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later)) as plain:
        refused = plain.get(f"/v1/invoices/{invoiced}.pdf", headers=READ)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "unrenderable_text")
        assert "seller.legal_name" in refused.json()["error"]["message"]


def test_rating_serve_takes_the_billing_file_from_the_environment_in_every_worker(
    db: str, keys: Path, billing: Path, invoiced: str
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "rating", "serve", "--db", db, "-p", str(EXAMPLE), "--port", str(port)]
    command += ["--api-keys", str(keys), "--workers", "2"]  # the workers learn it from RATING_SERVE_BILLING
    environment = {**os.environ, "RATING_SERVE_BILLING": str(billing)}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        with httpx.Client(base_url=base, timeout=30) as client:
            pdf = client.get(f"/v1/invoices/{invoiced}.pdf", headers=READ)
        assert pdf.status_code == 200, pdf.text
        assert SELLER in pdf_text(pdf.content)
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_serve_refuses_a_bad_billing_file_before_it_starts(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "billing.yaml"
    bad.write_text("seller: {legal_name: X, country: Germany}\n", encoding="utf-8")
    assert main(["serve", "--db", db, "-p", str(EXAMPLE), "--no-auth", "--billing", str(bad)]) == 3
    error = capsys.readouterr().err
    assert "billing.yaml" in error and "country" in error
