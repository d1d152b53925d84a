"""Databases written by earlier schemas open, migrate forward and keep what was in flight."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from rating.engine import Engine, adopt_legacy_totals
from rating.errors import EventError, StorageError
from rating.events import UsageEvent
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import load_pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage import Storage, migrations
from rating.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from rating.wallet.wallets import Wallets
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
            for table in ("transactions", "postings", "balances", "events", "usage", "charges", "period_state"):
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


def _wallet_history(storage: Storage) -> None:
    """Grants and reservations in every state a wallet leaves them: issued, forfeited, held, settled, voided,
    expired; times in another offset than UTC where they are the wallet's own."""
    now = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    clock = [now]
    wallets = Wallets(storage, lambda: clock[0])
    wallets.deposit("walt", "USD", Decimal(50), "d1")
    paris = dt.timezone(dt.timedelta(hours=1))
    wallets.grant(
        "walt", "USD", Decimal("7.5"), "promo", priority=1, expires=dt.datetime(2026, 11, 3, 13, tzinfo=paris)
    )
    wallets.grant("walt", "USD", Decimal(2), "bonus", kind="purchased")
    wallets.reserve("walt", "USD", Decimal(3), "settled", dt.timedelta(hours=1))
    wallets.reserve("walt", "USD", Decimal(4), "voided", dt.timedelta(hours=1))
    wallets.reserve("walt", "USD", Decimal(1), "expired", dt.timedelta(minutes=5))
    wallets.reserve("walt", "USD", Decimal(1), "held", dt.timedelta(days=30))
    wallets.settle("settled", Decimal("2.5"), "revenue:api")
    wallets.void("voided")
    clock[0] = now + dt.timedelta(days=3)
    wallets.expire()
    assert wallets.expire_grants()


#: The step that made grants and reservations tables (numbered 11 when written; a merge may renumber it).
FUNDING_STEP = next(m.version for m in migrations.MIGRATIONS if m.why.startswith("grants and reservations"))


def _back_to_version_9(run: object, dialect: str) -> None:
    """Undo the funding step as a database of the schema before never had it (its transactions stay)."""
    assert callable(run)
    run("DROP TABLE grants")
    run("DROP TABLE reservations")
    run("DROP TABLE customer_versions")  # a later step's table: the steps after the funding one run again
    run("DROP TABLE api_keys")
    run("DROP TABLE idempotent_requests")
    for table in ("deliveries", "outbox", "webhook_endpoints"):  # step 14's (webhooks)
        run(f"DROP TABLE {table}")
    run(f"DELETE FROM schema_version WHERE version >= {FUNDING_STEP}")


@pytest.mark.parametrize("kind", ["sqlite"] + (["postgres"] if POSTGRES_URL else []))
def test_grants_and_reservations_are_filled_from_the_transactions_of_schema_9(kind: str, tmp_path: Path) -> None:
    """Schema 11: the grants and reservations tables hold what the metadata of older transactions says."""
    from rating.storage.memory import MemoryStorage
    from rating.storage.postgres import PostgresStorage

    memory = MemoryStorage()
    _wallet_history(memory)
    if kind == "sqlite":
        storage: SQLiteStorage | PostgresStorage = SQLiteStorage(tmp_path / "v9.db")
    else:
        url = postgres_url()
        storage = PostgresStorage(url)
    with storage:
        _wallet_history(storage)
        written = storage.grants(), storage.reservations(["settled", "voided", "expired", "held", "none"])
        assert written == (
            memory.grants(),
            memory.reservations(["settled", "voided", "expired", "held", "none"]),
        )
        _back_to_version_9(storage._db.execute, kind)
        if kind == "sqlite":
            storage._db.commit()
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(tmp_path / "v9.db")) as db:
            assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] < FUNDING_STEP
    else:
        import psycopg

        with psycopg.connect(url) as db:
            found = db.execute("SELECT max(version), to_regclass('grants') FROM schema_version").fetchone()
            assert found is not None and found[0] < FUNDING_STEP and found[1] is None
    reopened = SQLiteStorage(tmp_path / "v9.db") if kind == "sqlite" else PostgresStorage(url)
    with reopened:
        assert reopened.schema_version() == SCHEMA_VERSION
        ids = ["settled", "voided", "expired", "held", "none"]
        assert (reopened.grants(), reopened.reservations(ids)) == written
        assert {r.id: r.state for r in written[1].values()} == {
            "settled": "settled",
            "voided": "voided",
            "expired": "expired",
            "held": "held",
        }
        assert [g.forfeits for g in written[0]["walt"]] == [1, 0]
        assert [r.id for r in reopened.held_reservations()] == ["held"]
        assert reopened.verify() == []
