"""Every route of the service through FastAPI's TestClient, on a SQLite ledger and the example pricebook."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rating.billing.close import close_period
from rating.engine import Engine
from rating.invoices.issue import issue_invoices
from rating.invoices.profiles import load_billing
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.server import create_app
from rating.storage.migrations import SCHEMA_VERSION
from rating.wallet.wallets import Wallets
from tests.helpers import EXAMPLE, ROOT, later
from tests.server.conftest import bearer, event

#: What one :func:`event` costs on the developer plan: 0.0002 + 1,000 x 0.00000015 + 500 x 0.0000006.
ONE = Decimal("0.00065")
WRITE, READ = bearer("write"), bearer("read")


def owed(client: TestClient, customer: str) -> Decimal:
    """What the customer owes in USD, by the balance route (0 when nothing is posted)."""
    assets = client.get(f"/v1/customers/{customer}/balance", headers=READ).json()["assets"]
    return sum((Decimal(row["owed"]) for row in assets if row["asset"] == "USD"), Decimal(0))


def test_one_event_is_accepted_a_replay_is_a_duplicate_and_other_content_a_conflict(client: TestClient) -> None:
    first = client.post("/v1/events", json=event("e1"), headers=WRITE)
    assert first.status_code == 201
    shown = first.json()
    assert (shown["status"], shown["plan"], shown["period"]) == ("accepted", "developer", "2026-11")
    assert shown["totals"] == {"USD": "0.00065000"}  # money as decimal text, exactly
    assert [(c["meter"], c["quantity"], c["amount"]) for c in shown["charges"]] == [
        ("requests", "1", "0.0002"),
        ("small_input_tokens", "1000", "0.00015000"),
        ("small_output_tokens", "500", "0.0003000"),
    ]
    replay = client.post("/v1/events", json=event("e1"), headers=WRITE)
    assert (replay.status_code, replay.json()) == (200, {"id": "e1", "status": "duplicate"})
    conflict = client.post("/v1/events", json=event("e1", input_tokens=7), headers=WRITE)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "duplicate_conflict"
    assert owed(client, "dev-1") == ONE  # posted once


def test_a_refused_event_is_422_with_its_refusal_code_and_posts_nothing(client: TestClient) -> None:
    unknown = client.post("/v1/events", json=event("e1", type="nope"), headers=WRITE)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_event_type"
    not_json = client.post("/v1/events", content=b'{"id": "e2",', headers=WRITE)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (422, "invalid_record")
    floats = client.post("/v1/events", content=b'{"id": "e3", "customer": "c", "type": 1}', headers=WRITE)
    assert floats.json()["error"]["code"] == "invalid_record"
    future = client.post("/v1/events", json=event("e4", timestamp="2031-01-01T00:00:00Z"), headers=WRITE)
    assert future.json()["error"]["code"] == "future_timestamp"
    assert client.get("/v1/customers/dev-1/balance", headers=READ).json()["assets"] == []


def test_a_batch_posts_the_good_events_and_names_each_bad_one(client: TestClient) -> None:
    client.post("/v1/events", json=event("old"), headers=WRITE)
    records = [event("b1"), {"id": "b2"}, event("old"), event("b3", customer="dev-2"), event("b1", input_tokens=5)]
    lines = "\n".join(json.dumps(record) for record in records) + "\nnot json\n"
    answer = client.post("/v1/events/batch", content=lines, headers={**WRITE, "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200
    shown = answer.json()
    assert (shown["accepted"], shown["duplicate"], shown["rejected"]) == (2, 1, 3)
    statuses = [(r["index"], r["id"], r["status"], r.get("code")) for r in shown["results"]]
    assert statuses == [
        (0, "b1", "accepted", None),
        (1, None, "rejected", "invalid_record"),
        (2, "old", "duplicate", None),
        (3, "b3", "accepted", None),
        (4, "b1", "rejected", "duplicate_conflict"),
        (5, None, "rejected", "invalid_record"),
    ]
    assert "customer: Field required" in shown["results"][1]["reason"]
    assert (owed(client, "dev-1"), owed(client, "dev-2")) == (2 * ONE, ONE)


def test_a_strict_batch_with_one_bad_event_posts_nothing(client: TestClient) -> None:
    batch = [event("s1"), event("s2", customer="Bad Id!"), event("s3", customer="dev-2")]
    answer = client.post("/v1/events/batch?strict=true", json=batch, headers=WRITE)
    assert answer.status_code == 422
    shown = answer.json()
    assert shown["error"]["code"] == "invalid_record"
    assert [r["status"] for r in shown["results"]] == ["not_posted", "rejected", "not_posted"]
    assert (owed(client, "dev-1"), owed(client, "dev-2")) == (0, 0)
    good = client.post("/v1/events/batch?strict=true", json=[event("s1"), event("s3", customer="dev-2")], headers=WRITE)
    assert good.json()["accepted"] == 2
    assert (owed(client, "dev-1"), owed(client, "dev-2")) == (ONE, ONE)


def test_a_batch_holds_at_most_1000_events(client: TestClient) -> None:
    too_many = [event(f"e{n}") for n in range(1001)]
    answer = client.post("/v1/events/batch", json=too_many, headers=WRITE)
    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "batch_too_large")
    assert owed(client, "dev-1") == 0


def test_a_quote_prices_without_posting(client: TestClient) -> None:
    answer = client.post("/v1/quote", json=event("q1", input_tokens=2000), headers=WRITE)
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["totals"]) == ("quoted", {"USD": "0.00080000"})
    assert client.get("/v1/customers/dev-1/balance", headers=READ).json()["assets"] == []
    assert client.post("/v1/events", json=event("q1", input_tokens=2000), headers=WRITE).status_code == 201


def test_a_metered_request_holds_its_estimate_then_pays_from_the_hold(client: TestClient, db: str, registry) -> None:  # type: ignore[no-untyped-def]
    with registry.open_storage(db) as storage:
        wallets = Wallets(storage, later)
        wallets.deposit("dev-2", "USD", Decimal("1.00"), "pay-1")
        wallets.grant("dev-2", "USD", Decimal("0.50"), "welcome", expires=later() + dt.timedelta(days=30))
    held = client.post("/v1/requests/req-1/authorize?timeout_seconds=60", json=event("req-1", "dev-2"), headers=WRITE)
    assert held.status_code == 201
    assert held.json() == {
        "reservation": "req-1",
        "customer": "dev-2",
        "asset": "USD",
        "amount": "0.00065000",
        "expires_at": "2028-01-01T00:01:00+00:00",
    }
    balance = client.get("/v1/customers/dev-2/balance", headers=READ).json()
    assert balance["assets"] == [
        {"asset": "USD", "posted": "1.50000000", "reserved": "0.00065000", "available": "1.49935000", "owed": "0"}
    ]
    [grant] = balance["grants"]  # the hold drew on the grant first
    assert (grant["amount"], grant["remaining"]) == ("0.50", "0.49935000")
    assert grant["expires"] == "2028-01-31T00:00:00+00:00"
    ran = event("req-1", "dev-2", input_tokens=2000, output_tokens=1000)  # costs 0.0011: more than held
    done = client.post("/v1/requests/req-1/complete", json=ran, headers=WRITE)
    assert done.status_code == 200
    assert done.json()["totals"] == {"USD": "0.00110000"}
    assert done.json()["reservation"]["used"] == "0.00065000"
    assert owed(client, "dev-2") == Decimal("0.00045")  # what the hold did not cover is owed, as billed
    again = client.post("/v1/requests/req-1/complete", json=ran, headers=WRITE)
    assert again.json()["status"] == "duplicate"
    second = client.post("/v1/requests/req-2/authorize", json=event("req-2", "dev-2"), headers=WRITE)
    assert second.status_code == 201
    voided = client.post("/v1/requests/req-2/void", headers=WRITE)
    assert voided.json()["released"] == "0.00065000"
    assert client.post("/v1/requests/req-2/void", headers=WRITE).json()["error"]["code"] == "reservation_refused"
    [after] = client.get("/v1/customers/dev-2/balance", headers=READ).json()["assets"]
    assert (Decimal(after["reserved"]), after["available"], after["owed"]) == (0, "1.49935000", "0.00045000")


def test_authorize_refuses_a_hold_the_wallet_cannot_pay(client: TestClient) -> None:
    answer = client.post("/v1/requests/r9/authorize", json=event("r9", "broke"), headers=WRITE)
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "insufficient_funds")


def test_the_usage_report_sums_the_customers_events(client: TestClient) -> None:
    client.post("/v1/events/batch", json=[event("u1"), event("u2", input_tokens=3000)], headers=WRITE)
    answer = client.get("/v1/customers/dev-1/usage?period=2026-11&group_by=customer", headers=READ)
    assert answer.status_code == 200
    [row] = answer.json()["rows"]
    assert (row["group"], row["events"], row["cost"]) == ("dev-1", 2, {"USD": "0.00160000"})  # 0.00065 + 0.00095
    assert row["quantities"]["small_input_tokens"] == "4000"
    bad = client.get("/v1/customers/dev-1/usage?period=last-week", headers=READ)
    assert bad.status_code == 422


def test_invoices_are_listed_shown_and_rendered(client: TestClient, db: str, registry: Registry) -> None:
    acme = [event(f"a{n}", "acme-labs") for n in range(3)]
    totals = [Decimal(client.post("/v1/events", json=e, headers=WRITE).json()["totals"]["USD"]) for e in acme]
    catalog = load_catalog([EXAMPLE], registry)
    with registry.open_storage(db) as storage:
        close_period(Engine(catalog, storage, registry, clock=later), "2026-11", ["acme-labs"])
        billing = load_billing(ROOT / "pricebooks" / "billing.yaml")
        report = issue_invoices(storage, catalog, billing, "2026-11", ["acme-labs"], issued=dt.date(2026, 12, 1))
        [issued] = report.issued
    listed = client.get("/v1/invoices", headers=READ).json()["invoices"]
    assert [(i["number"], i["customer"]) for i in listed] == [(issued.number, "acme-labs")]
    shown = client.get(f"/v1/invoices/{issued.number}", headers=READ).json()
    assert shown["total"] == str(issued.total) and Decimal(shown["subtotal"]) == sum(totals).quantize(Decimal("0.01"))
    assert (shown["status"]["state"], shown["status"]["due"]) == ("open", str(issued.total))
    pdf = client.get(f"/v1/invoices/{issued.number}.pdf", headers=READ)
    assert (pdf.headers["content-type"], pdf.content[:5]) == ("application/pdf", b"%PDF-")
    html = client.get(f"/v1/invoices/{issued.number}.html", headers=READ)
    assert issued.number in html.text and "Acme Labs Inc." in html.text
    missing = client.get("/v1/invoices/INV-9999.pdf", headers=READ)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_invoice")


def test_keys_are_required_and_scoped(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}  # health needs no key
    assert client.get("/readyz").json() == {"status": "ready"}
    balance = "/v1/customers/dev-1/balance"
    assert client.get(balance).status_code == 401
    assert client.get(balance, headers={"Authorization": "Bearer rk_unknown"}).status_code == 401
    assert client.get(balance, headers={"Authorization": "Basic rk_read_key"}).status_code == 401
    assert client.get(balance, headers=WRITE).status_code == 403  # write does not read
    assert client.get(balance, headers=bearer("admin")).status_code == 200
    assert client.get(balance, headers=READ).status_code == 200
    refused = client.post("/v1/events", json=event("e1"), headers=READ)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert client.post("/v1/events", json=event("e1"), headers=bearer("admin")).status_code == 201
    assert client.post("/v1/events", json=event("e2")).json()["error"]["code"] == "unauthenticated"


def test_readyz_says_503_when_the_database_is_not_there(tmp_path: Path, registry: Registry) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'missing.db'}", [EXAMPLE], registry=registry)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        answer = client.get("/readyz")
        assert (answer.status_code, answer.json()["error"]["code"]) == (503, "no_database")
        assert not (tmp_path / "missing.db").exists()  # never created by a server


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("DELETE FROM schema_version WHERE version = {v}", "schema_outdated"),
        ("INSERT INTO schema_version VALUES ({v} + 1, 'later')", "schema_newer"),
    ],
)
def test_readyz_says_503_when_the_schema_moved_under_a_running_server(
    client: TestClient, db: str, change: str, code: str
) -> None:
    assert client.get("/readyz").status_code == 200  # the database is open from here on
    with closing(sqlite3.connect(db.removeprefix("sqlite:///"))) as raw, raw:  # closed, and committed first
        raw.execute(change.format(v=SCHEMA_VERSION))
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, code)
    assert f"this server reads {SCHEMA_VERSION}" in answer.json()["error"]["message"]


def test_two_apps_over_two_ledgers_in_one_process_stay_apart(tmp_path: Path, registry: Registry) -> None:
    urls = [f"sqlite:///{tmp_path / f'{name}.db'}" for name in ("one", "two")]
    for url in urls:
        registry.open_storage(url).close()
    apps = [create_app(url, [EXAMPLE], registry=registry, clock=later) for url in urls]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        assert one.post("/v1/events", json=event("e1")).status_code == 201
        assert two.post("/v1/events", json=event("e1")).status_code == 201  # not a duplicate: another ledger
        assert one.post("/v1/events", json=event("e2")).status_code == 201
        [first] = one.get("/v1/customers/dev-1/balance").json()["assets"]
        [second] = two.get("/v1/customers/dev-1/balance").json()["assets"]
        assert (Decimal(first["owed"]), Decimal(second["owed"])) == (2 * ONE, ONE)


def test_an_embedder_mounts_the_app_inside_its_own(db: str, registry: Registry) -> None:
    from fastapi import FastAPI

    host = FastAPI()
    host.mount("/billing", create_app(db, [EXAMPLE], registry=registry, clock=later))  # its lifespan never runs
    with TestClient(host) as client:
        assert client.post("/billing/v1/events", json=event("m1")).status_code == 201
        assert client.get("/billing/v1/customers/dev-1/balance").json()["assets"][0]["owed"] == "0.00065000"


def test_a_batch_body_that_is_not_json_or_not_an_array_is_refused_whole(client: TestClient) -> None:
    json_body = {**WRITE, "Content-Type": "application/json"}
    broken = client.post("/v1/events/batch", content=b'[{"id": ', headers=json_body)
    assert (broken.status_code, broken.json()["error"]["code"]) == (422, "invalid_record")
    single = client.post("/v1/events/batch", json=event("e1"), headers=WRITE)
    assert (single.status_code, single.json()["error"]["code"]) == (422, "invalid_request")
    assert owed(client, "dev-1") == 0


def test_every_request_has_an_id_in_its_answer_and_one_json_log_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="rating.server"):
        mine = client.get("/v1/customers/dev-1/balance", headers={**bearer("read"), "X-Request-Id": "trace-42"})
        theirs = client.get("/v1/customers/dev-1/balance", headers={**bearer("read"), "X-Request-Id": "bad id\t"})
    assert mine.headers["x-request-id"] == "trace-42"
    assert theirs.headers["x-request-id"] != "bad id\t" and len(theirs.headers["x-request-id"]) == 32
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rating.server"]
    assert lines[0] | {"ms": 0} == {
        "request_id": "trace-42",
        "method": "GET",
        "route": "/v1/customers/{customer}/balance",  # the template: customer ids stay out of the log
        "status": 200,
        "ms": 0,
    }
