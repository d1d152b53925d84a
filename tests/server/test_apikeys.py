"""API keys kept in the database: ``rating apikey create|list|revoke`` and the server checking them per request."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from rating.apikeys import ApiKeyError, ApiKeys, digest
from rating.cli import main
from rating.registry import Registry
from rating.server import create_app
from tests.helpers import EXAMPLE, later
from tests.server.conftest import bearer, event
from tests.server.test_serve import free_port, wait_ready


def create(db: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``rating apikey create ARGS``: the key it printed (its only output on stdout)."""
    assert main(["apikey", "create", "--db", db, *args]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("rk_") and "\n" not in key
    return key


def test_create_prints_the_key_once_stores_its_hash_and_list_never_shows_it(
    db: str, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    key = create(db, capsys, "--scope", "write", "--name", "backend")
    assert main(["apikey", "list", "--db", db, "-o", "json"]) == 0
    listed = capsys.readouterr().out
    assert "backend" in listed and '"write"' in listed and key not in listed
    with registry.open_storage(db) as storage:
        [stored] = storage.api_keys()
        assert stored.sha256 == digest(key) and stored.scopes == ("write",) and stored.revoked_at is None
    assert main(["apikey", "create", "--db", db, "--scope", "read", "--name", "backend"]) == 3  # the name is taken
    assert "already exists" in capsys.readouterr().err
    assert main(["apikey", "create", "--db", db, "--scope", "root"]) == 2
    assert main(["apikey", "revoke", "--db", db, "nobody"]) == 3
    assert "no API key named 'nobody'" in capsys.readouterr().err
    assert main(["apikey", "revoke", "--db", db, "backend"]) == 0
    with registry.open_storage(db) as storage:
        assert storage.api_keys()[0].revoked_at is not None
        with pytest.raises(ApiKeyError, match="key name"):
            ApiKeys(storage).create(["read"], "has space")


def test_the_app_accepts_database_keys_by_scope_refuses_revoked_ones_and_still_reads_the_key_file(
    db: str, keys: Path, registry: Registry
) -> None:
    with registry.open_storage(db) as storage:
        writer, _ = ApiKeys(storage).create(["write"], "backend")
        reader, _ = ApiKeys(storage).create(["read"])
    app = create_app(db, [EXAMPLE], api_keys=keys, database_keys=True, registry=registry, clock=later)
    with TestClient(app) as client:
        posted = client.post("/v1/events", json=event("k-1"), headers={"Authorization": f"Bearer {writer}"})
        assert posted.status_code == 201, posted.text
        as_reader = client.post("/v1/events", json=event("k-2"), headers={"Authorization": f"Bearer {reader}"})
        assert as_reader.status_code == 403 and as_reader.json()["error"]["code"] == "forbidden"
        assert client.post("/v1/events", json=event("k-3"), headers=bearer("write")).status_code == 201  # the file
        with registry.open_storage(db) as storage:  # another connection, as another process would
            ApiKeys(storage).revoke("backend")
        refused = client.post("/v1/events", json=event("k-4"), headers={"Authorization": f"Bearer {writer}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        assert client.get("/v1/invoices", headers={"Authorization": f"Bearer {reader}"}).status_code == 200


def test_an_app_without_database_keys_does_not_read_them(db: str, keys: Path, registry: Registry) -> None:
    with registry.open_storage(db) as storage:
        writer, _ = ApiKeys(storage).create(["write"])
    with TestClient(create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later)) as client:
        answer = client.post("/v1/events", json=event("k-1"), headers={"Authorization": f"Bearer {writer}"})
        assert answer.status_code == 401


def test_a_key_revoked_by_the_cli_is_refused_by_every_worker_of_a_running_server(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = create(db, capsys, "--scope", "write", "--name", "backend")
    port = free_port()
    command = [sys.executable, "-m", "rating", "serve", "--db", db, "-p", str(EXAMPLE), "--port", str(port)]
    server = subprocess.Popen([*command, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    try:
        wait_ready(base, server)
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            for number in range(4):  # each new connection may reach either worker
                posted = client.post("/v1/events", json=event(f"r-{number}", timestamp=stamp))
                assert posted.status_code == 201, posted.text
            assert main(["apikey", "revoke", "--db", db, "backend"]) == 0
            for number in range(4, 12):
                with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as fresh:
                    refused = fresh.post("/v1/events", json=event(f"r-{number}", timestamp=stamp))
                assert refused.status_code == 401, refused.text
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)
    assert b"Traceback" not in log and b"(2 workers, 1 API key in the database)" in log


def test_the_file_keys_still_work_with_no_key_in_the_database(db: str, keys: Path, registry: Registry) -> None:
    app = create_app(db, [EXAMPLE], api_keys=keys, database_keys=True, registry=registry, clock=later)
    with TestClient(app) as client:
        assert client.post("/v1/events", json=event("f-1"), headers=bearer("write")).status_code == 201
        unknown = client.post("/v1/events", json=event("f-2"), headers={"Authorization": "Bearer rk_nobody"})
        assert unknown.status_code == 401
