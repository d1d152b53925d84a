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
