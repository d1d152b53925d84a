"""The server delivers the outbox in the background while it runs, on a connection of its own."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from rating.outbox import INVOICE_PAID, message
from rating.registry import Registry
from rating.server import create_app
from rating.webhooks import add_endpoint, new_secret
from tests.helpers import EXAMPLE
from tests.test_webhooks import Receiver


def test_the_server_delivers_what_any_writer_put_in_the_outbox(db: str, keys: Path, registry: Registry) -> None:
    receiver = Receiver()
    secret = new_secret()
    with registry.open_storage(db) as storage:  # another writer (the CLI, an embedding program)
        add_endpoint(storage, receiver.url, [secret])
        storage.announce([message(INVOICE_PAID, "INV-2026-000001", {"number": "INV-2026-000001"})])
    try:
        app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, webhook_interval=0.05)
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            assert receiver.arrived.wait(30), "the background delivery never sent the message"
        [(headers, body)] = receiver.received
        assert Webhook(secret).verify(body, headers)["data"] == {"number": "INV-2026-000001"}
        with registry.open_storage(db) as storage:
            assert [d.state for d in storage.deliveries()] == ["claimed", "delivered"]
    finally:
        receiver.close()


def test_webhook_endpoints_are_managed_over_http_by_admin_keys_and_never_show_a_secret_twice(
    client: TestClient, db: str, registry: Registry
) -> None:
    from tests.server.conftest import bearer

    made = client.post("/v1/webhook-endpoints", json={"url": "https://example.test/hook"}, headers=bearer("admin"))
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["secrets"] == 1 and endpoint["events"] == []
    given = client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://example.test/paid", "events": ["invoice.paid"], "secrets": [new_secret()]},
        headers=bearer("admin"),
    )
    assert given.status_code == 201 and "secret" not in given.json()  # the caller has it already
    listed = client.get("/v1/webhook-endpoints", headers=bearer("admin")).json()["webhook_endpoints"]
    assert sorted(e["url"] for e in listed) == ["https://example.test/hook", "https://example.test/paid"]
    assert all("secret" not in e for e in listed)
    assert client.get("/v1/webhook-endpoints", headers=bearer("read")).status_code == 403
    bad = client.post("/v1/webhook-endpoints", json={"url": "ftp://x"}, headers=bearer("admin"))
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_endpoint")
    gone = client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=bearer("admin"))
    assert gone.status_code == 200 and gone.json()["active"] is False
    again = client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=bearer("admin"))
    assert (again.status_code, again.json()["error"]["code"]) == (404, "unknown_endpoint")
    with registry.open_storage(db) as storage:  # the CLI sees what the API did
        from rating.webhooks import endpoints

        assert [e.url for e in endpoints(storage)] == ["https://example.test/paid"]


def test_the_server_expires_reservations_in_the_background_and_announces_it(
    db: str, keys: Path, registry: Registry
) -> None:
    import datetime as dt
    import time
    from decimal import Decimal

    from rating.wallet.wallets import Wallets

    with registry.open_storage(db) as storage:
        wallets = Wallets(storage)
        wallets.deposit("dev-1", "USD", Decimal(10), "pay-1")
        wallets.reserve("dev-1", "USD", Decimal(4), "req-1", timeout=dt.timedelta(milliseconds=200))
    time.sleep(0.3)
    app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, webhook_interval=0.05)
    with TestClient(app):
        for _ in range(200):
            with registry.open_storage(db) as storage:
                if not Wallets(storage).open_reservations():
                    break
            time.sleep(0.05)
    with registry.open_storage(db) as storage:
        assert Wallets(storage).open_reservations() == []
        assert [m.type for m in storage.outbox()] == ["reservation.expired"]
        assert Wallets(storage).balance("dev-1")["USD"].available == Decimal(10)


def test_refused_events_are_announced_best_effort_once_per_event_and_reason(client: TestClient, db: str) -> None:
    import json

    from rating.registry import Registry
    from tests.server.conftest import bearer, event

    bad = event("nope", type="no.such.type")
    assert client.post("/v1/events", json=bad, headers=bearer("write")).status_code == 422
    assert client.post("/v1/events", json=bad, headers=bearer("write")).status_code == 422  # retried
    body = json.dumps(event("ok-1")) + "\n" + json.dumps(event("nope-2", type="no.such.type")) + "\n"
    answer = client.post("/v1/events/batch", content=body, headers={**bearer("write"), "Content-Type": "text/plain"})
    assert answer.json()["rejected"] == 1
    with Registry.load().open_storage(db) as storage:
        sent = sorted(json.loads(m.payload)["data"]["id"] for m in storage.outbox() if m.type == "event.rejected")
    assert sent == ["nope", "nope-2"]
