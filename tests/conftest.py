"""Shared fixtures: a plugin registry, storages of every kind, pricebooks and events."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.engine import Engine
from rating.pricebook.model import Pricebook, parse_pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage
from tests.helpers import EXAMPLE, SIMPLE_PRICEBOOK

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
def book(registry: Registry) -> Callable[[str], Pricebook]:
    """Parse pricebook text with the installed plugins."""
    return lambda text: parse_pricebook(text, registry, "test.yaml")


#: PostgreSQL tests run when this variable names a server (CI sets it); each test gets a schema of its own.
POSTGRES_URL = os.environ.get("RATING_TEST_POSTGRES_URL")
STORAGE_KINDS = ["memory", "sqlite"] + (["postgres"] if POSTGRES_URL else [])
_SCHEMAS: list[str] = []


def postgres_url() -> str:
    """A URL whose search_path is a new, empty schema (dropped at the end of the session)."""
    import psycopg

    assert POSTGRES_URL is not None
    schema = f"rating_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    _SCHEMAS.append(schema)
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> Iterator[None]:
    yield
    if POSTGRES_URL and _SCHEMAS:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            for schema in _SCHEMAS:
                admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def open_kind(kind: str, directory: Path) -> Storage:
    if kind == "memory":
        return MemoryStorage()
    if kind == "postgres":
        from rating.storage.postgres import PostgresStorage

        return PostgresStorage(postgres_url())
    return SQLiteStorage(directory / "rating.db")


@pytest.fixture(params=STORAGE_KINDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each storage adapter in turn: the contract holds for all of them."""
    store = open_kind(request.param, tmp_path)
    yield store
    store.close()


@pytest.fixture
def engine(book: Callable[[str], Pricebook], registry: Registry) -> Engine:
    return Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry)


@pytest.fixture
def demo_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """300 demo events, rated by the example pricebook into ``history.db`` in the (temporary) working directory."""
    monkeypatch.chdir(tmp_path)
    events = write_demo_events(tmp_path / "demo-events.jsonl", 300)
    assert main(["rate", str(events), "-p", str(EXAMPLE), "--db", "history.db"]) == 0
    return events
