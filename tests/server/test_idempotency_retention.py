"""Idempotency keys are kept 24 hours (``RETENTION``): the server's background pass purges older ones, after which
the same key runs afresh; the library's own idempotency by id still answers a late retry ``duplicate``."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from fastapi.testclient import TestClient

from rating.records import IdempotentRequest
from rating.registry import Registry
from rating.server import create_app
from rating.server.idempotency import RETENTION
from rating.server.outbox import purge
from rating.storage import Storage
from tests.helpers import EXAMPLE, later
from tests.server.conftest import bearer, event

NOW = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)


def request(key: str, started: dt.datetime, status: int | None = 201) -> IdempotentRequest:
    return IdempotentRequest("owner", key, "f" * 64, started, status, "application/json" if status else None,
                             "{}" if status else None)  # fmt: skip


def test_purge_drops_the_keys_started_before_the_retention_on_every_storage(storage: Storage) -> None:
    for made in (
        request("old-answered", NOW - RETENTION - dt.timedelta(seconds=1)),
        request("old-claimed", NOW - dt.timedelta(days=3), status=None),
        request("kept", NOW - RETENTION + dt.timedelta(seconds=1)),
    ):
        assert storage.claim_idempotent(made, made.started_at) is None
    assert purge(storage, NOW) == 2
    assert purge(storage, NOW) == 0  # idempotent: another server's pass finds nothing left
    fresh = request("probe", NOW)
    for key, kept in (("old-answered", False), ("old-claimed", False), ("kept", True)):
        found = storage.claim_idempotent(fresh._replace(key=key), NOW - dt.timedelta(minutes=5))
        assert (found is not None) == kept, key  # None: the key was free, and is claimed afresh


def test_the_server_purges_in_its_background_pass_and_a_purged_key_runs_afresh(
    db: str, keys: Path, registry: Registry
) -> None:
    headers = {**bearer("write"), "Idempotency-Key": "k-1"}
    app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later)
    with TestClient(app) as client:
        assert client.post("/v1/events", json=event("r-1"), headers=headers).status_code == 201
        conflict = client.post("/v1/events", json=event("r-2"), headers=headers)
        assert conflict.json()["error"]["code"] == "idempotency_conflict"  # the key is kept: another body refused
    with registry.open_storage(db) as storage:  # the key as if first used more than a day ago
        [owner] = [row[0] for row in storage._raw_rows("idempotent_requests", "owner")]
        [old] = [storage._idempotent_row(owner, "k-1")]
        assert old is not None
        storage.purge_idempotent(dt.datetime.max.replace(tzinfo=dt.UTC))
        assert storage.claim_idempotent(old._replace(started_at=old.started_at - RETENTION), old.started_at) is None
        storage.answer_idempotent(old._replace(started_at=old.started_at - RETENTION))
    app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later, webhook_interval=0.05)
    with TestClient(app) as client:
        for _ in range(200):  # the background pass purges at its first run
            with registry.open_storage(db) as storage:
                if storage._idempotent_row(owner, "k-1") is None:
                    break
            time.sleep(0.05)
        rerun = client.post("/v1/events", json=event("r-1"), headers=headers)
        assert (rerun.status_code, rerun.json()["status"]) == (200, "duplicate")  # ran afresh: the ledger says
        assert "idempotent-replayed" not in rerun.headers
        other = client.post("/v1/events", json=event("r-2"), headers=headers)
        assert other.json()["error"]["code"] == "idempotency_conflict"  # kept again, from the retry's first use
