"""SQLite storage: the embedded default (``rating.db`` in the working directory).

Amounts are stored as decimal text and summed in Python, never by SQLite (whose
SUM would go through floats). Writes run in ``BEGIN IMMEDIATE`` transactions in
WAL mode with ``synchronous=FULL``: a batch is durable once ``record`` returns,
and a process killed mid-batch leaves it wholly absent. The queries, the writes
and the schema history are the SQL adapter's (:mod:`rating.storage.sql`); this
module is SQLite's dialect of it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from rating.errors import StorageError
from rating.storage.base import Scope
from rating.storage.migrations import MIGRATIONS as _LOGICAL
from rating.storage.migrations import SCHEMA_VERSION
from rating.storage.sql import SqlStorage

__all__ = ["LOCK_WAIT", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteStorage"]

#: The schema history as SQLite runs it: (version, script), each applied exactly once, in order.
MIGRATIONS: list[tuple[int, str]] = [(m.version, ";\n".join(m.render("sqlite"))) for m in _LOGICAL]

#: Values per ``IN (...)`` list: SQLite limits the parameters of one statement.
CHUNK = 500


def _utc(timestamp: dt.datetime) -> str:
    """Event time as UTC ISO text, so that text order is time order (the body keeps the original)."""
    return timestamp.astimezone(dt.UTC).isoformat()


LOCK_WAIT = 30.0
"""Seconds a connection waits for another process's lock before giving up."""


class SQLiteStorage(SqlStorage):
    """Storage in one SQLite file (``:memory:`` works too, for tests)."""

    dialect = "sqlite"
    damage_errors = (sqlite3.DatabaseError,)

    def __init__(self, path: str | Path, *, read_only: bool = False, existing: bool = False) -> None:
        """Open (create and migrate) the file at ``path``.

        ``read_only`` opens it for reading only; ``existing`` opens it for writing but, like
        ``read_only``, never creates nor migrates it: a missing file (or one without a rating
        schema) is ``no_database``, an older schema ``schema_outdated``.
        """
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        if (read_only or existing) and not Path(self.path).is_file():
            if Path(self.path).is_dir():
                raise StorageError(f"{self.path}: a directory, not a database file")
            raise StorageError(f"{self.path}: no such database", code="no_database")
        try:
            if read_only:
                uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=LOCK_WAIT)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=LOCK_WAIT)
        except sqlite3.Error as error:  # a directory, a missing folder, no permission
            raise StorageError(f"{self.path}: cannot open as a rating database: {error}") from None
        try:
            if read_only:
                self._check_readable(self.schema_version())
            else:
                self._enter_wal()
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA foreign_keys=ON")
                if existing:
                    self._check_readable(self.schema_version())
                else:
                    self.migrate()
        except BaseException as error:
            self._db.close()
            if isinstance(error, sqlite3.DatabaseError):
                raise StorageError(f"{self.path}: cannot open as a rating database: {error}", "damaged") from None
            raise

    def _enter_wal(self) -> None:
        """Switch the file to write-ahead logging, waiting for other processes as long as for any lock.

        SQLite takes the exclusive lock this switch needs without calling its busy handler,
        so a process opening a new file while another holds it (migrating, or switching
        too) gets "database is locked" at once; this waits for it like every other lock.
        """
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.001
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # -- the dialect ---------------------------------------------------------------

    def _name(self) -> str:
        return self.path

    def _has_schema_table(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone() is not None

    def _check_readable(self, version: int, missing: str = "not a rating database (no schema)") -> None:
        super()._check_readable(version, missing)

    def _sql(self, query: str) -> str:
        return query

    def _run(self, query: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(query, args)

    def _executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(query, rows)

    def _in_rows(self, query: str, values: Iterable[object], leading: Sequence[object] = ()) -> Iterator[Any]:
        batch = list(dict.fromkeys(values))
        for start in range(0, len(batch), CHUNK):
            part = batch[start : start + CHUNK]
            marks = "IN (" + ",".join("?" * len(part)) + ")"
            yield from self._db.execute(query.replace("{in}", marks), [*leading, *part])

    def _insert(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join("?" * (columns.count(",") + 1))
        self._db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)  # noqa: S608 - our names

    @staticmethod
    def _money(value: Decimal) -> object:
        return str(value)

    @staticmethod
    def _decimal(raw: Any) -> Decimal:
        return Decimal(str(raw))

    @staticmethod
    def _time(value: dt.datetime) -> object:
        return _utc(value)

    @staticmethod
    def _read_time(raw: Any) -> dt.datetime:
        return dt.datetime.fromisoformat(raw)

    @staticmethod
    def _read_json(raw: Any) -> dict[str, Any]:
        return json.loads(raw)

    @staticmethod
    def _flag(value: bool) -> object:
        return int(value)

    @contextmanager
    def _atomic(self, customers: Scope = None) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")  # one writer at a time, whatever the scope
            try:
                yield
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (a full disk does)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if "full" in str(error):
                raise StorageError(
                    f"{self.path}: the disk is full ({error}); nothing of this write was stored"
                ) from None
            if "readonly" in str(error):
                raise StorageError(f"{self.path}: the database is read-only ({error}); nothing was written") from None
            raise

    def change_marker(self) -> object | None:
        # data_version moves when another connection commits; total_changes when this one writes.
        row = self._db.execute("PRAGMA data_version").fetchone()
        return (row[0] if row else None, self._db.total_changes)

    def _raw_metadata(self) -> Iterator[tuple[str, str]]:
        yield from self._db.execute("SELECT id, metadata FROM transactions")
