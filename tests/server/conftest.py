"""The service's fixtures: a migrated SQLite ledger, API keys of each scope, and clients of the app over them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402 -- after the skip when the server extra is missing

from rating.registry import Registry  # noqa: E402
from rating.server import create_app  # noqa: E402
from rating.server.auth import digest  # noqa: E402
from tests.helpers import EXAMPLE, later  # noqa: E402

#: One key per scope, as a client sends it.
KEYS = {"read": "rk_read_key", "write": "rk_write_key", "admin": "rk_admin_key"}


def bearer(scope: str) -> dict[str, str]:
    """The Authorization header of the key with ``scope``."""
    return {"Authorization": f"Bearer {KEYS[scope]}"}


def event(
    id: str, customer: str = "dev-1", input_tokens: int = 1000, output_tokens: int = 500, **extra: Any
) -> dict[str, Any]:
    """An LLM request to a small model (the example pricebook's developer plan: 0.0002 a request, 0.00000015 an
    input token, 0.0000006 an output token)."""
    return {
        "id": id,
        "customer": customer,
        "type": "llm.request",
        "timestamp": "2026-11-05T10:00:00Z",
        "properties": {
            "model": "gpt-5-mini",
            "provider": "openai",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        },
        **extra,
    }


def write_keys(path: Path) -> Path:
    """A key file holding the hash (never the key) of each of :data:`KEYS`."""
    entries = [{"name": scope, "sha256": digest(key).hex(), "scopes": [scope]} for scope, key in KEYS.items()]
    path.write_text(json.dumps({"keys": entries}), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path, registry: Registry) -> str:
    """A new, migrated SQLite ledger (``rating db migrate`` would make the same)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    registry.open_storage(url).close()
    return url


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return write_keys(tmp_path / "keys.json")


@pytest.fixture
def client(db: str, keys: Path, registry: Registry) -> Iterator[TestClient]:
    """A client of the app over ``db`` and the example pricebook, its clock after every test period."""
    app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later)
    with TestClient(app) as test_client:
        yield test_client
