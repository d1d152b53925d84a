"""Databases written by earlier schemas open, migrate forward and keep what was in flight."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from rating.catalog import Catalog
from rating.engine import Engine, adopt_legacy_totals
from rating.errors import EventError, StorageError
from rating.events import UsageEvent
from rating.pricebook import load_pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from rating.wallet import Wallets
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


def legacy_steps(dialect: str) -> dict[int, list[str]]:
    """The schema history ``dialect`` databases went through before the SQL adapters merged: version -> statements."""
    text = (FIXTURES / f"{dialect}-legacy.sql").read_text()
    steps: dict[int, list[str]] = {}
    for part in text.split("-- version ")[1:]:
        version, _, script = part.partition("\n")
        steps[int(version)] = [s.strip() for s in script.split(";") if s.strip()]
    return steps


NOV = dt.datetime(2026, 11, 6, tzinfo=dt.UTC)


def _call(id: str, at: dt.datetime, tokens: int, customer: str = "acme") -> UsageEvent:
    return UsageEvent(id=id, customer=customer, type="api.call", timestamp=at, properties={"tokens": tokens})


def _check_in_flight_state_survives(storage: Storage, registry: Registry) -> None:
    book = load_pricebook(FIXTURES / "legacy-v3.yaml", registry)
    assert storage.legacy_running_totals() != []  # building an engine migrates nothing: `rating db migrate` does
    with pytest.raises(StorageError) as unadopted:  # and rates nothing on totals it would start again from zero
        Engine(book, storage, registry)
    assert unadopted.value.code == "schema_outdated" and "rating db migrate -p" in str(unadopted.value)
    adopt_legacy_totals(storage, Catalog([book]))
    engine = Engine(book, storage, registry)
    assert storage.legacy_running_totals() == []  # adopted under the charges' identities
    # 700 tokens were charged 7.00 against a cap of 5 before the migration: 100 more add nothing.
    rated = engine.rate(_call("n3", NOV, 100))
    assert rated is not None and rated.total() == {"USD": Decimal("0.01")}
    with pytest.raises(EventError) as late:  # October was closed before the migration
        engine.rate(_call("o2", dt.datetime(2026, 10, 20, tzinfo=dt.UTC), 1))
    assert late.value.code is Refusal.CLOSED_PERIOD
    wallets = Wallets(storage, lambda: dt.datetime(2026, 11, 10, 0, 30, tzinfo=dt.UTC))
    balance = wallets.balance("walt")["USD"]
    assert (balance.available, balance.reserved) == (Decimal(48), Decimal(7))
    assert [r.id for r in wallets.open_reservations()] == ["res1"]
    wallets.settle("res1", Decimal(2), "revenue:api")
    assert wallets.balance("walt")["USD"].available == Decimal(53)
    assert storage.verify() == []


def test_a_schema_3_sqlite_database_migrates_forward(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "legacy.db"
    shutil.copy(FIXTURES / "legacy-v3.db", path)
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == SCHEMA_VERSION
        _check_in_flight_state_survives(storage, registry)


@pytest.mark.skipif(POSTGRES_URL is None, reason="RATING_TEST_POSTGRES_URL is not set")
def test_a_schema_1_postgres_database_migrates_forward(registry: Registry) -> None:
    import psycopg

    from rating.storage.postgres import MIGRATIONS, PostgresStorage

    url = postgres_url()
    with psycopg.connect(url, autocommit=True) as db:  # what schema version 1 wrote, row for row
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for statement in legacy_steps("postgres")[1]:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (1, '2026-11-01')")
        legacy = sqlite3.connect(f"file:{FIXTURES / 'legacy-v3.db'}?mode=ro", uri=True)
        try:
            for table in ("transactions", "postings", "balances", "events", "usage", "period_state"):
                columns = [row[1] for row in legacy.execute(f"PRAGMA table_info({table})") if row[1] != "seq"]
                marks = ", ".join(["%s"] * len(columns))
                for row in legacy.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                    values = [*row[:-1], bool(row[-1])] if table == "period_state" else list(row)
                    db.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
        finally:
            legacy.close()
    with PostgresStorage(url) as storage:
        assert storage.schema_version() == MIGRATIONS[-1][0]
        _check_in_flight_state_survives(storage, registry)


def test_policy_state_moves_into_its_namespace(tmp_path: Path) -> None:
    """Schema 6: the spend cap's and prepaid commitments' state leaves the meters' namespace (rows and readings)."""
    from rating.storage.sqlite import MIGRATIONS

    path = tmp_path / "v5.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # closed, and committed first
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for version, script in MIGRATIONS[:5]:
            db.executescript(script)
            db.execute("INSERT INTO schema_version VALUES (?, '2026-11-01')", (version,))
        db.executemany(
            "INSERT INTO period_state VALUES ('acme', ?, '[]', ?, ?, 0)",
            [("spend", "2026-11", "4.5"), ("prepaid:deal", "term", "7"), ("tokens", "2026-11", "9")],
        )
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == SCHEMA_VERSION
        states = storage.period_states(
            [("acme", "policy:spend", (), "2026-11"), ("acme", "policy:prepaid:deal", (), "term"),
             ("acme", "tokens", (), "2026-11"), ("acme", "spend", (), "2026-11")]
        )  # fmt: skip
    assert {key[1]: state.quantity for key, state in states.items()} == {
        "policy:spend": Decimal("4.5"),
        "policy:prepaid:deal": Decimal("7"),
        "tokens": Decimal("9"),
    }


def _at_version_8(dialect: str) -> list[str]:
    """The statements that make a database of schema 8 (before the payments table)."""
    from rating.storage.migrations import statements

    return [sql for version, steps in statements(dialect, 0) if version <= 8 for sql in steps]


_MARKER = (
    "payment:pi_1",
    "2026-11-02T00:00:00+00:00",
    "top-up pi_1",
    '{"customer": "acme", "purpose": "top-up", "asset": "USD", "amount": "12.50"}',
    "fp",
    "payment",
    "acme",
)


def test_payment_markers_become_payment_rows_sqlite(tmp_path: Path) -> None:
    """Schema 9: the payments table is filled from the payment registry's marker transactions."""
    from rating.storage.base import Payment

    path = tmp_path / "v8.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for statement in _at_version_8("sqlite"):
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (8, '2026-11-01')")
        db.execute(
            "INSERT INTO transactions (id, timestamp, description, metadata, fingerprint, kind, customer)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            _MARKER,
        )
    with SQLiteStorage(path) as storage:
        assert storage.payments(["pi_1"]) == {
            "pi_1": Payment("pi_1", "top-up", "acme", "USD", Decimal("12.50"), "payment:pi_1")
        }


@pytest.mark.skipif(POSTGRES_URL is None, reason="RATING_TEST_POSTGRES_URL is not set")
def test_payment_markers_become_payment_rows_postgres() -> None:
    import psycopg

    from rating.storage.base import Payment
    from rating.storage.postgres import PostgresStorage

    url = postgres_url()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for statement in _at_version_8("postgres"):
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (8, '2026-11-01')")
        db.execute(
            "INSERT INTO transactions (id, timestamp, description, metadata, fingerprint, kind, customer)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            _MARKER,
        )
    with PostgresStorage(url) as storage:
        assert storage.payments(["pi_1"]) == {
            "pi_1": Payment("pi_1", "top-up", "acme", "USD", Decimal("12.50"), "payment:pi_1")
        }
