"""SQLite storage: the embedded default (``rating.db`` in the working directory).

Amounts are stored as decimal text and summed in Python, never by SQLite (whose
SUM would go through floats). Writes run in ``BEGIN IMMEDIATE`` transactions in
WAL mode with ``synchronous=FULL``: a batch is durable once ``record`` returns,
and a process killed mid-batch leaves it wholly absent.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from rating.accounts import is_cost
from rating.charges import Charge, Correction, RatedEvent, StateKey
from rating.errors import StorageError
from rating.events import UsageEvent
from rating.ledger import RATING_PREFIX, Posting, Transaction, rating_id
from rating.meters import PeriodState
from rating.money import ZERO, exact
from rating.storage.base import (
    STATE_NAMESPACES_MIGRATION,
    Activity,
    Storage,
    StoredCharge,
    StoredKey,
    balance_moves,
    final_states,
    group_key,
    stored_states,
)

#: Versioned schema migrations, applied in order, each exactly once.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE transactions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            timestamp TEXT NOT NULL,
            description TEXT NOT NULL,
            metadata TEXT NOT NULL,
            fingerprint TEXT NOT NULL
        );
        CREATE TABLE postings (
            transaction_id TEXT NOT NULL REFERENCES transactions(id),
            line INTEGER NOT NULL,
            account TEXT NOT NULL,
            asset TEXT NOT NULL,
            amount TEXT NOT NULL,
            PRIMARY KEY (transaction_id, line)
        );
        CREATE INDEX postings_by_account ON postings (account, asset);
        CREATE TABLE balances (
            account TEXT NOT NULL,
            asset TEXT NOT NULL,
            amount TEXT NOT NULL,
            PRIMARY KEY (account, asset)
        );
        CREATE TABLE events (
            id TEXT PRIMARY KEY,
            customer TEXT NOT NULL,
            type TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            body TEXT NOT NULL,
            transaction_id TEXT NOT NULL REFERENCES transactions(id)
        );
        CREATE INDEX events_by_customer ON events (customer, timestamp);
        CREATE TABLE usage (
            event_id TEXT NOT NULL REFERENCES events(id),
            meter TEXT NOT NULL,
            customer TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            reading TEXT NOT NULL,
            before TEXT NOT NULL,
            after TEXT NOT NULL,
            PRIMARY KEY (event_id, meter)
        );
        CREATE TABLE charges (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL REFERENCES events(id),
            customer TEXT NOT NULL,
            plan TEXT NOT NULL,
            meter TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            model TEXT NOT NULL,
            before TEXT NOT NULL,
            after TEXT NOT NULL,
            amount TEXT NOT NULL,
            asset TEXT NOT NULL,
            unit TEXT NOT NULL,
            unit_price TEXT,
            explanation TEXT NOT NULL
        );
        CREATE INDEX charges_by_customer ON charges (customer, period);
        CREATE TABLE period_state (
            customer TEXT NOT NULL,
            meter TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            quantity TEXT NOT NULL,
            is_unique INTEGER NOT NULL,
            PRIMARY KEY (customer, meter, group_key, period)
        );
        CREATE TABLE period_members (
            customer TEXT NOT NULL,
            meter TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            member TEXT NOT NULL,
            PRIMARY KEY (customer, meter, group_key, period, member)
        );
        """,
    ),
    (2, "CREATE INDEX charges_by_period ON charges (period, customer)"),
    (3, "CREATE INDEX events_by_time ON events (timestamp)"),
    (
        4,
        # Transactions are found by kind and customer, never by an id prefix; closed periods are
        # a table of their own, checked inside every write.
        """
        ALTER TABLE transactions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
        ALTER TABLE transactions ADD COLUMN customer TEXT;
        UPDATE transactions SET
            kind = CASE WHEN instr(id, ':') > 0 THEN substr(id, 1, instr(id, ':') - 1) ELSE id END,
            customer = json_extract(metadata, '$.customer');
        CREATE INDEX transactions_by_kind ON transactions (kind, customer);
        CREATE TABLE closed_periods (
            customer TEXT NOT NULL,
            period TEXT NOT NULL,
            transaction_id TEXT NOT NULL REFERENCES transactions(id),
            PRIMARY KEY (customer, period)
        );
        INSERT INTO closed_periods
            SELECT customer, json_extract(metadata, '$.period'), id FROM transactions WHERE kind = 'close';
        CREATE TABLE legacy_totals AS SELECT * FROM period_state WHERE meter LIKE 'total:%[%]%';
        DELETE FROM period_state WHERE meter LIKE 'total:%[%]%'
        """,
    ),
]
MIGRATIONS.append(
    (
        5,
        # Issued documents (invoices): numbered gaplessly per series inside the write, immutable once stored.
        """
        CREATE TABLE documents (
            number TEXT PRIMARY KEY,
            series TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            kind TEXT NOT NULL,
            customer TEXT NOT NULL,
            period TEXT NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (series, sequence),
            UNIQUE (kind, customer, period)
        )
        """,
    )
)
MIGRATIONS.append((6, STATE_NAMESPACES_MIGRATION))
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _utc(timestamp: dt.datetime) -> str:
    """Event time as UTC ISO text, so that text order is time order (the body keeps the original)."""
    return timestamp.astimezone(dt.UTC).isoformat()


def _optional(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


LOCK_WAIT = 30.0
"""Seconds a connection waits for another process's lock before giving up."""


class SQLiteStorage(Storage):
    """Storage in one SQLite file (``:memory:`` works too, for tests)."""

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

    # -- schema ----------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the database file (0 for a new file)."""
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone()
        if exists is None:
            return 0
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _check_readable(self, version: int) -> None:
        if version == 0:
            raise StorageError(
                f"{self.path}: not a rating database (no schema); rating rate or rating db migrate creates one",
                code="no_database",
            )
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"{self.path}: schema version {version}, this rating reads {SCHEMA_VERSION};"
                " run rating db migrate (only rate and db migrate upgrade a database)",
                code="schema_outdated" if version < SCHEMA_VERSION else "schema_newer",
            )

    def migrate(self) -> int:
        """Apply pending migrations in one write transaction; return the resulting version.

        The version is read inside that transaction, so processes opening a new file
        together apply each migration once (the others find it done).
        """
        with self._atomic():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path}: schema version {current} is newer than this rating knows "
                    f"({SCHEMA_VERSION}); upgrade rating"
                )
            for version, script in MIGRATIONS:
                if version <= current:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                now = dt.datetime.now(dt.UTC).isoformat()
                self._db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now))
        return SCHEMA_VERSION

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
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

    def close(self) -> None:
        self._db.close()

    # -- reads -----------------------------------------------------------------

    def _in_chunks(
        self, sql: str, values: Iterable[object], leading: tuple[object, ...] = ()
    ) -> Iterator[tuple[object, ...]]:
        """Run ``sql`` (``leading`` parameters, then one ``{marks}`` IN list) over ``values`` in chunks."""
        batch = list(dict.fromkeys(values))
        for start in range(0, len(batch), 500):
            part = batch[start : start + 500]
            yield from self._db.execute(sql.format(marks=",".join("?" * len(part))), [*leading, *part])

    def rated_events(self, ids: Iterable[str]) -> dict[str, UsageEvent]:
        rows = self._in_chunks("SELECT id, body FROM events WHERE id IN ({marks})", ids)
        return {str(i): UsageEvent.model_validate_json(str(body)) for i, body in rows}

    def change_marker(self) -> object | None:
        # data_version moves when another connection commits; total_changes when this one writes.
        row = self._db.execute("PRAGMA data_version").fetchone()
        return (row[0] if row else None, self._db.total_changes)

    def period_states(self, keys: Iterable[StateKey]) -> dict[StateKey, PeriodState]:
        result: dict[StateKey, PeriodState] = {}
        for customer, meter, group, period in keys:
            row = self._db.execute(
                "SELECT quantity, is_unique FROM period_state"
                " WHERE customer=? AND meter=? AND group_key=? AND period=?",
                (customer, meter, group_key(group), period),
            ).fetchone()
            if row is None:
                continue
            members = None
            if row[1]:
                members = {
                    m
                    for (m,) in self._db.execute(
                        "SELECT member FROM period_members WHERE customer=? AND meter=? AND group_key=? AND period=?",
                        (customer, meter, group_key(group), period),
                    )
                }
            result[(customer, meter, group, period)] = PeriodState(Decimal(row[0]), members)
        return result

    def _read_transaction(self, row: tuple[str, str, str, str]) -> Transaction:
        id, timestamp, description, metadata = row
        postings = tuple(
            Posting(account, asset, Decimal(amount))
            for account, asset, amount in self._db.execute(
                "SELECT account, asset, amount FROM postings WHERE transaction_id=? ORDER BY line", (id,)
            )
        )
        return Transaction(id, dt.datetime.fromisoformat(timestamp), description, postings, json.loads(metadata))

    def transaction(self, id: str) -> Transaction | None:
        row = self._db.execute(
            "SELECT id, timestamp, description, metadata FROM transactions WHERE id=?", (id,)
        ).fetchone()
        return None if row is None else self._read_transaction(row)

    def transactions(self) -> Iterator[Transaction]:
        rows = self._db.execute("SELECT id, timestamp, description, metadata FROM transactions ORDER BY seq").fetchall()
        for row in rows:
            yield self._read_transaction(row)

    def transactions_of(self, kind: str, customer: str | None = None) -> list[Transaction]:
        sql = "SELECT id, timestamp, description, metadata FROM transactions WHERE kind = ?"
        arguments: tuple[str, ...] = (kind,)
        if customer is not None:
            sql, arguments = sql + " AND customer = ?", (kind, customer)
        rows = self._db.execute(sql + " ORDER BY seq", arguments).fetchall()
        return [self._read_transaction(row) for row in rows]

    def balances(self, accounts: Iterable[str] | None = None) -> dict[tuple[str, str], Decimal]:
        if accounts is None:
            rows: Iterable[tuple[object, ...]] = self._db.execute(
                "SELECT account, asset, amount FROM balances ORDER BY account, asset"
            )
        else:
            rows = self._in_chunks("SELECT account, asset, amount FROM balances WHERE account IN ({marks})", accounts)
        return {(str(account), str(asset)): Decimal(str(amount)) for account, asset, amount in rows}

    def closed_periods(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        closed = set()
        for customer, period in set(keys):
            row = self._db.execute(
                "SELECT 1 FROM closed_periods WHERE customer = ? AND period = ?", (customer, period)
            ).fetchone()
            if row is not None:
                closed.add((customer, period))
        return closed

    def charges(self, customer: str | None = None) -> Iterator[StoredCharge]:
        sql = (
            "SELECT event_id, customer, plan, meter, group_key, period, model, before, after, amount, asset, unit,"
            " unit_price, explanation FROM charges {where} ORDER BY seq"
        )
        if customer is None:
            rows = self._db.execute(sql.format(where=""))
        else:
            rows = self._db.execute(sql.format(where="WHERE customer=?"), (customer,))
        for row in rows.fetchall():
            event_id, who, plan, meter, group, period, model, before, after, amount, asset, unit, price, text = row
            charge = Charge(
                plan,
                meter,
                tuple(json.loads(group)),
                period,
                model,
                Decimal(before),
                Decimal(after),
                Decimal(amount),
                asset,
                unit,
                stored_explanation=text,
                stored_unit_price=None if price is None else Decimal(price),
            )
            yield StoredCharge(event_id, who, charge)

    def activity(self, since: dt.datetime, until: dt.datetime, customer: str | None = None) -> Iterator[Activity]:
        sql = "SELECT id, body FROM events WHERE timestamp >= ? AND timestamp < ?"
        arguments: tuple[str, ...] = (_utc(since), _utc(until))
        if customer is not None:
            sql, arguments = sql + " AND customer = ?", arguments + (customer,)
        rows = self._db.execute(sql + " ORDER BY timestamp, id", arguments).fetchall()  # time order, ties by id
        events = {str(id): UsageEvent.model_validate_json(str(body)) for id, body in rows}
        readings: dict[str, list[tuple[str, Decimal | str]]] = {}
        for id, meter, reading in self._in_chunks(
            "SELECT event_id, meter, reading FROM usage WHERE event_id IN ({marks})", events
        ):
            readings.setdefault(str(id), []).append((str(meter), str(reading)))
        amounts: dict[str, list[tuple[str, Decimal]]] = {}
        for id, asset, amount in self._in_chunks(
            "SELECT event_id, asset, amount FROM charges WHERE event_id IN ({marks})", events
        ):
            amounts.setdefault(str(id), []).append((str(asset), Decimal(str(amount))))
        costs: dict[str, list[tuple[str, Decimal]]] = {}
        cost_rows = self._in_chunks(
            "SELECT transaction_id, account, asset, amount FROM postings WHERE transaction_id IN ({marks})",
            (rating_id(id) for id in events),
        )
        for transaction_id, account, asset, amount in cost_rows:
            if is_cost(str(account)):
                costs.setdefault(str(transaction_id).removeprefix(RATING_PREFIX), []).append(
                    (str(asset), Decimal(str(amount)))
                )
        for id, event in events.items():
            yield Activity(event, tuple(readings.get(id, ())), tuple(amounts.get(id, ())), tuple(costs.get(id, ())))

    @exact
    def account_totals(self, accounts: Iterable[str], until: dt.datetime) -> dict[tuple[str, str], Decimal]:
        rows = self._in_chunks(
            "SELECT p.account, p.asset, p.amount FROM postings p JOIN transactions t ON t.id = p.transaction_id"
            " WHERE t.timestamp < ? AND p.account IN ({marks})",
            accounts,
            (_utc(until),),
        )
        totals: dict[tuple[str, str], Decimal] = {}
        for account, asset, amount in rows:
            key = (str(account), str(asset))
            totals[key] = totals.get(key, ZERO) + Decimal(str(amount))
        return totals

    @exact
    def period_totals(self, period: str) -> dict[tuple[str, str], Decimal]:
        totals: dict[tuple[str, str], Decimal] = {}
        rows = self._db.execute("SELECT customer, asset, amount FROM charges WHERE period=?", (period,))
        for customer, asset, amount in rows:
            totals[(customer, asset)] = totals.get((customer, asset), ZERO) + Decimal(amount)
        return totals

    def legacy_running_totals(self) -> list[tuple[str, str, str, Decimal]]:
        rows = self._db.execute("SELECT customer, meter, period, quantity FROM legacy_totals").fetchall()
        return [(customer, name, period, Decimal(quantity)) for customer, name, period, quantity in rows]

    def adopt_running_totals(self, renames: Mapping[tuple[str, str, str], str]) -> None:
        with self.writing():
            for (customer, old, period), new in renames.items():
                self._db.execute(
                    "INSERT OR IGNORE INTO period_state SELECT customer, ?, group_key, period, quantity, is_unique"
                    " FROM legacy_totals WHERE customer = ? AND meter = ? AND period = ?",
                    (new, customer, old, period),
                )
                self._db.execute(
                    "DELETE FROM legacy_totals WHERE customer = ? AND meter = ? AND period = ?", (customer, old, period)
                )

    def documents(self, number: str | None = None, customer: str | None = None) -> list[str]:
        rows = self._db.execute(
            "SELECT body FROM documents WHERE (? IS NULL OR number = ?) AND (? IS NULL OR customer = ?)"
            " ORDER BY series, sequence",
            (number, number, customer, customer),
        )
        return [body for (body,) in rows]

    def _document_of(self, kind: str, customer: str, period: str) -> str | None:
        row = self._db.execute(
            "SELECT body FROM documents WHERE kind = ? AND customer = ? AND period = ?", (kind, customer, period)
        ).fetchone()
        return None if row is None else str(row[0])

    def _last_in_series(self, series: str) -> int:
        row = self._db.execute("SELECT MAX(sequence) FROM documents WHERE series = ?", (series,)).fetchone()
        return int(row[0] or 0)

    def _write_document(
        self, number: str, series: str, sequence: int, kind: str, customer: str, period: str, text: str
    ) -> None:
        self._db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (number, series, sequence, kind, customer, period, text),
        )

    def _all_transaction_ids(self) -> list[str]:
        return [id for (id,) in self._db.execute("SELECT id FROM transactions ORDER BY seq")]

    def _raw_rows(self, table: str, columns: str) -> Iterator[tuple[object, ...]]:
        yield from self._db.execute(f"SELECT {columns} FROM {table}")  # noqa: S608 - names from verify, never input

    def _all_postings(self) -> Iterator[tuple[str, str, str, object]]:
        yield from self._db.execute("SELECT transaction_id, account, asset, amount FROM postings")

    def _raw_balances(self) -> Iterator[tuple[str, str, object]]:
        yield from self._db.execute("SELECT account, asset, amount FROM balances")

    def _raw_metadata(self) -> Iterator[tuple[str, str]]:
        yield from self._db.execute("SELECT id, metadata FROM transactions")

    # -- writes (inside _atomic) ---------------------------------------------------

    def _fingerprints(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self._in_chunks("SELECT id, fingerprint FROM transactions WHERE id IN ({marks})", ids)
        return {str(i): str(f) for i, f in rows}

    def _write_transactions(self, transactions: Sequence[Transaction]) -> None:
        db = self._db
        db.executemany(
            "INSERT INTO transactions (id, timestamp, description, metadata, fingerprint, kind, customer)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    t.id,
                    _utc(t.timestamp),
                    t.description,
                    json.dumps(dict(t.metadata)),
                    t.fingerprint(),
                    t.kind,
                    t.customer,
                )
                for t in transactions
            ],
        )
        db.executemany(
            "INSERT INTO closed_periods VALUES (?, ?, ?)",
            [(t.customer, t.metadata["period"], t.id) for t in transactions if t.kind == "close"],
        )
        db.executemany(
            "INSERT INTO postings (transaction_id, line, account, asset, amount) VALUES (?, ?, ?, ?, ?)",
            [
                (t.id, line, p.account, p.asset, str(p.amount))
                for t in transactions
                for line, p in enumerate(t.postings)
            ],
        )
        for (account, asset), delta in balance_moves(transactions).items():
            row = db.execute("SELECT amount FROM balances WHERE account=? AND asset=?", (account, asset)).fetchone()
            total = (Decimal(row[0]) if row else ZERO) + delta
            db.execute("INSERT OR REPLACE INTO balances VALUES (?, ?, ?)", (account, asset, str(total)))

    def _write_ratings(self, ratings: Sequence[RatedEvent]) -> None:
        self._write_transactions([r.transaction for r in ratings])
        db = self._db
        db.executemany(
            "INSERT INTO events (id, customer, type, timestamp, body, transaction_id) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    r.event.id,
                    r.event.customer,
                    r.event.type,
                    _utc(r.event.timestamp),
                    r.event.canonical_json(),
                    r.transaction.id,
                )
                for r in ratings
            ],
        )
        db.executemany(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.event.id,
                    u.meter,
                    r.event.customer,
                    group_key(u.group),
                    u.period,
                    str(u.reading),
                    str(u.before),
                    str(u.after),
                )
                for r in ratings
                for u in r.usage
            ],
        )
        self._write_charges((r.event.id, r.event.customer, c) for r in ratings for c in r.charges)
        self._write_states(*final_states(ratings))

    def _write_corrections(self, corrections: Sequence[Correction], states: Mapping[StateKey, PeriodState]) -> None:
        self._write_transactions([c.transaction for c in corrections])
        self._write_charges((c.event_id, c.customer, charge) for c in corrections for charge in c.charges)
        self._write_states(*stored_states(states))

    def _write_charges(self, rows: Iterable[tuple[str, str, Charge]]) -> None:
        """Write charge records as (event id, customer, charge)."""
        self._db.executemany(
            "INSERT INTO charges (event_id, customer, plan, meter, group_key, period, model, before, after, amount,"
            " asset, unit, unit_price, explanation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    event_id,
                    customer,
                    c.plan,
                    c.meter,
                    group_key(c.group),
                    c.period,
                    c.model,
                    str(c.before),
                    str(c.after),
                    str(c.amount),
                    c.asset,
                    c.unit,
                    _optional(c.unit_price),
                    c.explanation,
                )
                for event_id, customer, c in rows
            ],
        )

    def _write_states(
        self, final: Mapping[StoredKey, tuple[Decimal, bool]], members: Sequence[tuple[str, str, str, str, str]]
    ) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO period_state VALUES (?, ?, ?, ?, ?, ?)",
            [(*key, str(quantity), int(unique)) for key, (quantity, unique) in final.items()],
        )
        self._db.executemany("INSERT OR IGNORE INTO period_members VALUES (?, ?, ?, ?, ?)", members)
