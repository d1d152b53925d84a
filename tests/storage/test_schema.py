"""One logical schema: SQLite and PostgreSQL databases, fresh or migrated from any older version, are the same.

Compared logically: tables, their columns in order (types as SQLite stores them:
``NUMERIC``, ``TIMESTAMPTZ`` and ``JSONB`` are text there, ``BOOLEAN`` and
``BIGINT`` integers), which are NOT NULL, the unique keys (primary keys, UNIQUE
constraints and unique indexes alike: PostgreSQL keys period state by a hash of
the group, ``rating_sha256(group_key)``, read here as the column), the other
indexes by name and columns, and the foreign keys.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rating.storage.migrations import SCHEMA_VERSION
from rating.storage.sqlite import SQLiteStorage
from tests.conftest import POSTGRES_URL, postgres_url
from tests.storage.test_migrations import FIXTURES, legacy_steps

Schema = dict[str, dict[str, Any]]

_SQLITE_TYPES = {"TEXT": "text", "INTEGER": "integer", "INT": "integer"}
_POSTGRES_TYPES = {
    "text": "text",
    "numeric": "text",
    "timestamp with time zone": "text",
    "jsonb": "text",
    "boolean": "integer",
    "bigint": "integer",
    "integer": "integer",
}
_HASHED = re.compile(r"rating_sha256\((\w+)\)")


def sqlite_schema(path: Path) -> Schema:
    """The logical schema of the SQLite database at ``path``."""
    schema: Schema = {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in sorted(t for t in tables if not t.startswith("sqlite_")):
            info = db.execute(f"PRAGMA table_info({table})").fetchall()
            columns = [
                (name, _SQLITE_TYPES[kind.upper()], bool(notnull or pk)) for _, name, kind, notnull, _, pk in info
            ]
            primary = tuple(name for _, name in sorted((c[5], c[1]) for c in info if c[5]))
            unique = {primary} if primary else set()
            indexes = {}
            for _, name, is_unique, _, _ in db.execute(f"PRAGMA index_list({table})").fetchall():
                keyed = tuple(column for _, _, column in db.execute(f"PRAGMA index_info({name})"))
                if is_unique:
                    unique.add(keyed)
                else:
                    indexes[name] = keyed
            foreign = {
                (source, target, to) for _, _, target, source, to, *_ in db.execute(f"PRAGMA foreign_key_list({table})")
            }
            schema[table] = {"columns": columns, "unique": unique, "indexes": indexes, "foreign": foreign}
    return schema


def postgres_schema(url: str) -> Schema:
    """The logical schema of the PostgreSQL database schema ``url`` searches."""
    import psycopg

    schema: Schema = {}
    with psycopg.connect(url, autocommit=True) as db:
        tables = [name for (name,) in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        for table in sorted(tables):
            columns = [
                (name, _POSTGRES_TYPES[kind], nullable == "NO")
                for name, kind, nullable in db.execute(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
            ]
            unique, indexes = set(), {}
            for name, is_unique, keyed in db.execute(
                "SELECT c.relname, i.indisunique,"
                " array(SELECT pg_get_indexdef(i.indexrelid, k + 1, true) FROM generate_subscripts(i.indkey, 1) AS k"
                "       ORDER BY k)"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass",
                (table,),
            ):
                columns_of = tuple(_HASHED.sub(r"\1", column).strip('"') for column in keyed)
                if is_unique:
                    unique.add(columns_of)
                else:
                    indexes[name] = columns_of
            foreign = set()
            for (definition,) in db.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass",
                (table,),
            ):
                match = re.fullmatch(r"FOREIGN KEY \((\w+)\) REFERENCES (\w+)\((\w+)\)", definition)
                assert match, definition
                foreign.add((match[1], match[2], match[3]))
            schema[table] = {"columns": columns, "unique": unique, "indexes": indexes, "foreign": foreign}
    return schema


def _sqlite_at(path: Path, version: int) -> Path:
    """A SQLite database as the released history left it at ``version``."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for step, statements in legacy_steps("sqlite").items():
            if step <= version:
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?, '2026-11-01')", (step,))
    return path


def _postgres_at(version: int) -> str:
    """A PostgreSQL database (schema) as its own released history left it at ``version``."""
    import psycopg

    url = postgres_url()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for step, statements in legacy_steps("postgres").items():
            if step <= version:
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (%s, '2026-11-01')", (step,))
    return url


def _migrated_sqlite(path: Path) -> Schema:
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == SCHEMA_VERSION
    return sqlite_schema(path)


def test_sqlite_databases_of_every_version_migrate_to_the_fresh_schema(tmp_path: Path) -> None:
    fresh = _migrated_sqlite(tmp_path / "fresh.db")
    assert "charges_by_event" in fresh["charges"]["indexes"]
    assert fresh["events"]["indexes"]["events_by_customer"] == ("customer", "timestamp")
    assert ("customer", "sequence") in fresh["customer_versions"]["unique"]  # versions appended once each
    for version in range(1, 7):
        assert _migrated_sqlite(_sqlite_at(tmp_path / f"v{version}.db", version)) == fresh, version
    shutil.copy(FIXTURES / "legacy-v3.db", tmp_path / "legacy.db")  # with rows in flight
    assert _migrated_sqlite(tmp_path / "legacy.db") == fresh


@pytest.mark.skipif(POSTGRES_URL is None, reason="RATING_TEST_POSTGRES_URL is not set")
def test_postgres_and_sqlite_have_one_schema_fresh_or_migrated(tmp_path: Path) -> None:
    from rating.storage.postgres import PostgresStorage

    sqlite = _migrated_sqlite(tmp_path / "fresh.db")
    urls = {"fresh": postgres_url(), **{f"v{version}": _postgres_at(version) for version in range(1, 6)}}
    for name, url in urls.items():
        with PostgresStorage(url) as storage:
            assert storage.schema_version() == SCHEMA_VERSION, name
        migrated = postgres_schema(url)
        # Compared table by table first, for a readable failure.
        assert set(migrated) == set(sqlite), name
        for table in sqlite:
            assert migrated[table] == sqlite[table], (name, table)
        # The prefix index is gone: postings are found by account, never by a text range of its name.
        assert migrated["postings"]["indexes"]["postings_by_account"] == ("account", "asset")
        # Customer specs are TEXT on both (compared byte for byte on a replay; JSONB would reorder keys).
        assert ("spec", "text", True) in migrated["customer_versions"]["columns"]


@pytest.mark.skipif(POSTGRES_URL is None, reason="RATING_TEST_POSTGRES_URL is not set")
def test_no_postgres_index_is_a_prefix_index() -> None:
    import psycopg

    from rating.storage.postgres import PostgresStorage

    url = _postgres_at(5)
    PostgresStorage(url).close()
    with psycopg.connect(url, autocommit=True) as db:
        definitions = [d for (d,) in db.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()")]
    assert definitions and not [d for d in definitions if "pattern_ops" in d]
