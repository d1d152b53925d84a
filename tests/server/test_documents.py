"""Credit notes, statements and the upcoming bill over HTTP: read from the ledger, never written."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rating.accounts import receivable_account
from rating.billing.close import close_period
from rating.engine import Engine
from rating.invoices.issue import issue_invoices
from rating.invoices.profiles import load_billing
from rating.invoices.settle import credit_invoice
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.server import create_app
from rating.wallet.wallets import Wallets
from tests.helpers import EXAMPLE, ROOT, later
from tests.server.conftest import bearer, event

READ, WRITE = bearer("read"), bearer("write")
#: A plan with a monthly fee and a minimum spend, so that closing a period posts something of its own.
FEES = """\
pricebook: fees
version: 2026-11-01
currency: USD
meters:
  requests: {event: api.call, count: true}
plans:
  basic:
    period: month
    fee: "10.00"
    minimum: "25.00"
    charges:
      - {meter: requests, model: per_call, price: "0.50"}
customers:
  c1: {plan: basic}
"""
#: The ledger's clock in the middle of November 2026: the open period is 2026-11.
MID_NOVEMBER = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def call(id: str, customer: str = "c1") -> dict[str, object]:
    return {"id": id, "customer": customer, "type": "api.call", "timestamp": "2026-11-05T10:00:00Z"}


@pytest.fixture
def november(db: str, keys: Path, registry: Registry, tmp_path: Path) -> Iterator[TestClient]:
    """A client of the app over the fee pricebook, its clock in the open period 2026-11."""
    book = tmp_path / "fees.yaml"
    book.write_text(FEES, encoding="utf-8")
    app = create_app(db, [book], api_keys=keys, registry=registry, clock=lambda: MID_NOVEMBER)
    with TestClient(app) as client:
        yield client


def test_upcoming_is_what_closing_the_open_period_now_would_bill_and_writes_nothing(
    november: TestClient, db: str, registry: Registry, tmp_path: Path
) -> None:
    for n in range(3):
        assert november.post("/v1/events", json=call(f"e{n}"), headers=WRITE).status_code == 201
    answer = november.get("/v1/customers/c1/upcoming", headers=READ)
    assert answer.status_code == 200
    shown = answer.json()
    assert (shown["period"], shown["start"], shown["end"], shown["closed"]) == (
        "2026-11", "2026-11-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00", False
    )  # fmt: skip
    assert shown["usage"] == [{"meter": "requests", "asset": "USD", "quantity": "3", "amount": "1.50"}]
    # The fee (10.00), then the minimum's true-up: 25.00 - (1.50 + 10.00) = 13.50.
    assert [(line["description"], line["amount"]) for line in shown["closing"]] == [
        ("basic fee for 2026-11", "10.00"),
        ("minimum spend true-up for 2026-11", "13.50"),
    ]
    assert (shown["totals"], shown["paid_from_wallet"]) == ({"USD": "25.00"}, False)
    with registry.open_storage(db) as storage:  # nothing of the close was written
        assert storage.closed_periods([("c1", "2026-11")]) == set()
        assert sum(storage.balances([receivable_account("c1")]).values(), Decimal(0)) == Decimal("1.50")
    assert november.get("/v1/customers/c1/upcoming", headers=READ).json() == shown  # and so it says the same again
    # Closing the period once it has ended posts exactly what upcoming said.
    catalog = load_catalog([tmp_path / "fees.yaml"], registry)
    december = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    with registry.open_storage(db) as storage:
        report = close_period(Engine(catalog, storage, registry, clock=lambda: december), "2026-11", ["c1"])
        assert [t.id for t in report.posted if t.postings] == [line["id"] for line in shown["closing"]]
        assert sum(storage.balances([receivable_account("c1")]).values(), Decimal(0)) == Decimal("25.00")


def test_upcoming_of_a_customer_without_events_is_the_fee_and_minimum(november: TestClient) -> None:
    shown = november.get("/v1/customers/c1/upcoming", headers=READ).json()
    assert (shown["usage"], shown["totals"]) == ([], {"USD": "25.00"})
    unknown = november.get("/v1/customers/nobody/upcoming", headers=READ)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_customer")
    assert november.get("/v1/customers/c1/upcoming").status_code == 401


def test_credit_notes_are_listed_and_shown(client: TestClient, db: str, registry: Registry) -> None:
    for n in range(3):
        client.post("/v1/events", json=event(f"a{n}", "acme-labs", input_tokens=1_000_000), headers=WRITE)
    catalog = load_catalog([EXAMPLE], registry)
    with registry.open_storage(db) as storage:
        close_period(Engine(catalog, storage, registry, clock=later), "2026-11", ["acme-labs"])
        billing = load_billing(ROOT / "pricebooks" / "billing.yaml")
        report = issue_invoices(storage, catalog, billing, "2026-11", ["acme-labs"], issued=dt.date(2026, 12, 1))
        [issued] = report.issued
        note, _ = credit_invoice(storage, issued.number, "goodwill-1", "goodwill", line=1, amount=Decimal("0.10"))
    listed = client.get("/v1/credit-notes", headers=READ).json()["credit_notes"]
    assert [(n["number"], n["invoice"], n["total"]) for n in listed] == [(note.number, issued.number, str(note.total))]
    assert client.get("/v1/credit-notes?customer=globex", headers=READ).json() == {"credit_notes": []}
    shown = client.get(f"/v1/credit-notes/{note.number}", headers=READ)
    assert shown.status_code == 200
    assert (shown.json()["customer"], shown.json()["reason"]) == ("acme-labs", "goodwill")
    missing = client.get("/v1/credit-notes/CN-9999", headers=READ)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_invoice")


def test_a_statement_shows_the_periods_funds_and_renders(client: TestClient, db: str, registry: Registry) -> None:
    with registry.open_storage(db) as storage:
        Wallets(storage, lambda: dt.datetime(2026, 11, 2, tzinfo=dt.UTC)).deposit("dev-2", "USD", Decimal("5"), "pay-1")
    client.post("/v1/events", json=event("s1", "dev-2"), headers=WRITE)
    answer = client.get("/v1/customers/dev-2/statement?period=2026-11", headers=READ)
    assert answer.status_code == 200
    [usd] = answer.json()["assets"]
    # dev-2 is billed on account: its usage is owed, its deposit stays in its wallet.
    assert (usd["asset"], usd["opening"], usd["closing"], usd["owed"]) == ("USD", "0", "5", "0.00065000")
    usage = [(line["meter"], line["quantity"], line["amount"]) for line in answer.json()["usage"]]
    assert usage == [
        ("requests", "1", "0.0002"),
        ("small_input_tokens", "1000", "0.00015000"),
        ("small_output_tokens", "500", "0.0003000"),
    ]
    html = client.get("/v1/customers/dev-2/statement?period=2026-11&format=html", headers=READ)
    assert html.headers["content-type"].startswith("text/html") and "dev-2" in html.text
    pdf = client.get("/v1/customers/dev-2/statement?period=2026-11&format=pdf", headers=READ)
    assert pdf.content[:5] == b"%PDF-"
    bad = client.get("/v1/customers/dev-2/statement?period=last-week", headers=READ)
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
    french = client.get("/v1/customers/dev-2/statement?period=2026-11&format=html&language=fr", headers=READ)
    assert 'lang="fr"' in french.text and "Relevé dev-2 2026-11" in french.text and "Montant dû" in french.text
    unknown = client.get("/v1/customers/dev-2/statement?period=2026-11&format=pdf&language=xx", headers=READ)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_language")


def test_a_statements_amounts_are_plain_decimal_text_never_exponent_form(client: TestClient) -> None:
    # One input token costs 0.00000015: pydantic's own JSON wrote it "1.5E-7"; money is plain decimal text.
    client.post("/v1/events", json=event("tiny", "dev-2", input_tokens=1, output_tokens=1), headers=WRITE)
    answer = client.get("/v1/customers/dev-2/statement?period=2026-11", headers=READ)
    usage = {line["meter"]: (line["quantity"], line["amount"]) for line in answer.json()["usage"]}
    assert usage["small_input_tokens"] == ("1", "0.00000015")
    assert usage["small_output_tokens"] == ("1", "0.0000006")
    assert "E-" not in answer.text and "E+" not in answer.text


def test_a_statement_in_an_unknown_language_is_refused_not_a_server_error(client: TestClient) -> None:
    # schemathesis found it: ?language=xx&format=html was a KeyError in the renderer (500).
    for format in ("html", "pdf"):
        answer = client.get(f"/v1/customers/dev-2/statement?period=2026-11&format={format}&language=xx", headers=READ)
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, "unknown_language")
    german = client.get("/v1/customers/dev-2/statement?period=2026-11&format=html&language=de", headers=READ)
    assert german.status_code == 200 and 'lang="de"' in german.text


def test_a_credit_note_renders_as_pdf_and_html_naming_the_invoice_it_credits(
    client: TestClient, db: str, registry: Registry
) -> None:
    from pypdf import PdfReader

    client.post("/v1/events", json=event("a1", "acme-labs", input_tokens=1_000_000), headers=WRITE)
    catalog = load_catalog([EXAMPLE], registry)
    with registry.open_storage(db) as storage:
        close_period(Engine(catalog, storage, registry, clock=later), "2026-11", ["acme-labs"])
        billing = load_billing(ROOT / "pricebooks" / "billing.yaml")
        report = issue_invoices(storage, catalog, billing, "2026-11", ["acme-labs"], issued=dt.date(2026, 12, 1))
        [issued] = report.issued
        note, _ = credit_invoice(storage, issued.number, "goodwill-1", "goodwill", line=1, amount=Decimal("0.10"))
    pdf = client.get(f"/v1/credit-notes/{note.number}.pdf", headers=READ)
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert f"Credit note {note.number}" in text and f"{issued.number} of Dec 1, 2026" in text
    page = client.get(f"/v1/credit-notes/{note.number}.html", headers=READ)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"{issued.number} of Dec 1, 2026" in page.text and "goodwill" in page.text
    missing = client.get("/v1/credit-notes/CN-9999.pdf", headers=READ)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_invoice")
    assert client.get(f"/v1/credit-notes/{note.number}.pdf").status_code == 401
    spec = client.get("/openapi.json").json()
    assert "/v1/credit-notes/{number}" in spec["paths"]
    assert "application/pdf" in spec["paths"]["/v1/credit-notes/{number}"]["get"]["responses"]["200"]["content"]
