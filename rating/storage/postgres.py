"""PostgreSQL storage (psycopg 3, extra ``[postgres]``): ``--db postgresql://user@host/db``.

Amounts are ``NUMERIC`` and times ``TIMESTAMPTZ``. Bulk writes go through
``COPY``; a small write (one metered request) sends its INSERTs in one
pipeline instead, a single round trip where each ``COPY`` costs two, and the
reads before rating go out together too. Writers serialise on one
transaction-level advisory lock, so the storage's checks (idempotency,
period-state compare-and-set, wallet limits) and the writes that follow them
are atomic across processes; readers never wait. Migrations are versioned in
``schema_version`` and applied on first use (also by ``rating db migrate``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from decimal import Decimal
from typing import Any

from rating.accounts import is_cost
from rating.charges import Charge, Correction, RatedEvent, StateKey
from rating.errors import StorageError
from rating.events import UsageEvent
from rating.ledger import RATING_PREFIX, Posting, Transaction, rating_id
from rating.meters import PeriodState
from rating.storage import masked
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

try:
    import psycopg
except ImportError:  # pragma: no cover - depends on the extra
    psycopg = None  # type: ignore[assignment]

#: Key of the advisory lock all writers take.
WRITE_LOCK = 7_261_900

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE transactions (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            timestamp TIMESTAMPTZ NOT NULL,
            description TEXT NOT NULL,
            metadata JSONB NOT NULL,
            fingerprint TEXT NOT NULL
        );
        CREATE TABLE postings (
            transaction_id TEXT NOT NULL REFERENCES transactions(id),
            line INTEGER NOT NULL,
            account TEXT NOT NULL,
            asset TEXT NOT NULL,
            amount NUMERIC NOT NULL,
            PRIMARY KEY (transaction_id, line)
        );
        CREATE INDEX postings_by_account ON postings (account text_pattern_ops, asset);
        CREATE TABLE balances (
            account TEXT NOT NULL,
            asset TEXT NOT NULL,
            amount NUMERIC NOT NULL,
            PRIMARY KEY (account, asset)
        );
        CREATE TABLE events (
            id TEXT PRIMARY KEY,
            customer TEXT NOT NULL,
            type TEXT NOT NULL,
            timestamp TIMESTAMPTZ NOT NULL,
            body TEXT NOT NULL,
            transaction_id TEXT NOT NULL REFERENCES transactions(id)
        );
        CREATE INDEX events_by_time ON events (timestamp);
        CREATE TABLE usage (
            event_id TEXT NOT NULL REFERENCES events(id),
            meter TEXT NOT NULL,
            customer TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            reading TEXT NOT NULL,
            before NUMERIC NOT NULL,
            after NUMERIC NOT NULL,
            PRIMARY KEY (event_id, meter)
        );
        CREATE TABLE charges (
            seq BIGSERIAL PRIMARY KEY,
            event_id TEXT NOT NULL REFERENCES events(id),
            customer TEXT NOT NULL,
            plan TEXT NOT NULL,
            meter TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            model TEXT NOT NULL,
            before NUMERIC NOT NULL,
            after NUMERIC NOT NULL,
            amount NUMERIC NOT NULL,
            asset TEXT NOT NULL,
            unit TEXT NOT NULL,
            unit_price NUMERIC,
            explanation TEXT NOT NULL
        );
        CREATE INDEX charges_by_customer ON charges (customer, period);
        CREATE INDEX charges_by_period ON charges (period, customer);
        CREATE TABLE period_state (
            customer TEXT NOT NULL,
            meter TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            quantity NUMERIC NOT NULL,
            is_unique BOOLEAN NOT NULL,
            PRIMARY KEY (customer, meter, group_key, period)
        );
        CREATE TABLE period_members (
            customer TEXT NOT NULL,
            meter TEXT NOT NULL,
            group_key TEXT NOT NULL,
            period TEXT NOT NULL,
            member TEXT NOT NULL,
            PRIMARY KEY (customer, meter, group_key, period, member)
        )
        """,
    ),
    (
        2,
        # Transactions are found by kind and customer, never by an id prefix; closed periods are
        # a table of their own, checked inside every write.
        """
        ALTER TABLE transactions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
        ALTER TABLE transactions ADD COLUMN customer TEXT;
        UPDATE transactions SET kind = split_part(id, ':', 1), customer = metadata ->> 'customer';
        CREATE INDEX transactions_by_kind ON transactions (kind, customer);
        CREATE TABLE closed_periods (
            customer TEXT NOT NULL,
            period TEXT NOT NULL,
            transaction_id TEXT NOT NULL REFERENCES transactions(id),
            PRIMARY KEY (customer, period)
        );
        INSERT INTO closed_periods
            SELECT customer, metadata ->> 'period', id FROM transactions WHERE kind = 'close';
        CREATE TABLE legacy_totals AS SELECT * FROM period_state WHERE meter LIKE 'total:%[%]%';
        DELETE FROM period_state WHERE meter LIKE 'total:%[%]%'
        """,
    ),
    (
        3,
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
    ),
    (
        4,
        # Group values and unique members may be 1,024 UTF-8 bytes each, and a group several of them: more
        # than a B-tree entry holds (2,704 bytes). Period state is keyed by a SHA-256 of its group instead
        # (convert_to is only STABLE, for the client encoding it may name; the database's UTF-8 is fixed).
        """
        CREATE FUNCTION rating_sha256(text) RETURNS bytea IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
            AS 'SELECT sha256(convert_to($1, ''UTF8''))';
        ALTER TABLE period_state DROP CONSTRAINT period_state_pkey;
        CREATE UNIQUE INDEX period_state_key ON period_state (customer, meter, rating_sha256(group_key), period);
        ALTER TABLE period_members DROP CONSTRAINT period_members_pkey;
        CREATE UNIQUE INDEX period_members_key
            ON period_members (customer, meter, rating_sha256(group_key), period, rating_sha256(member))
        """,
    ),
]
MIGRATIONS.append((5, STATE_NAMESPACES_MIGRATION))
SCHEMA_VERSION = MIGRATIONS[-1][0]
#: Writes of up to this many records are pipelined INSERTs; larger ones are COPY, far cheaper per row.
FEW_RECORDS = 64
#: Matches period-state rows against four arrays of key columns (by the group's hash, as they are indexed).
_STATE_MATCH = (
    "(customer, meter, rating_sha256(group_key), period, group_key) IN (SELECT c, m, rating_sha256(g), p, g"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS k (c, m, g, p))"
)


class PostgresStorage(Storage):
    """Storage in a PostgreSQL database (the schema of the connection's search_path)."""

    reads_ahead = True

    damage_errors = (psycopg.Error,) if psycopg is not None else ()
    #: The pipeline a small write opened, sent with the COMMIT that closes it.
    _pipeline: ExitStack | None = None

    def __init__(self, url: str, *, read_only: bool = False, existing: bool = False) -> None:
        """Connect to ``url`` and migrate its schema; ``read_only`` and ``existing`` never migrate (see SQLite's)."""
        if psycopg is None:
            raise StorageError("PostgreSQL storage needs the postgres extra: pip install 'rating[postgres]'")
        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            raise StorageError(masked(f"cannot connect to {url}: {str(error).strip().splitlines()[0]}")) from None
        try:
            if read_only:
                self._db.execute("SET default_transaction_read_only = on")
            if read_only or existing:
                version = self.schema_version()
                if version == 0:
                    raise StorageError(
                        f"{masked(url)}: no rating schema in this database (search_path);"
                        " rating rate or rating db migrate creates one",
                        code="no_database",
                    )
                if version != SCHEMA_VERSION:
                    raise StorageError(
                        f"{masked(url)}: schema version {version}, this rating reads {SCHEMA_VERSION};"
                        " run rating db migrate (only rate and db migrate upgrade a database)",
                        code="schema_outdated" if version < SCHEMA_VERSION else "schema_newer",
                    )
            else:
                self.migrate()
        except BaseException:
            self._db.close()
            raise

    # -- schema ----------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the database (0 for an empty one)."""
        if self._db.execute("SELECT to_regclass('schema_version')").fetchone() == (None,):
            return 0
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0) if row else 0

    def migrate(self) -> int:
        """Apply pending migrations, under the write lock so that concurrent first uses do not collide."""
        with self._atomic():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise StorageError(f"{masked(self.url)}: schema version {current} is newer than this rating knows")
            for version, script in MIGRATIONS:
                if version > current:
                    for statement in filter(str.strip, script.split(";")):
                        self._db.execute(statement)
                    now = dt.datetime.now(dt.UTC).isoformat()
                    self._db.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, now))
        return SCHEMA_VERSION

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        # BEGIN and the lock in one round trip (a query of two statements, possible without parameters).
        self._db.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK:d})")
        try:
            yield
            self._db.execute("COMMIT")  # in the pipeline of a small write, if one is open: one round trip for both
            self._end_pipeline()  # raises what failed in it
        except BaseException:
            with suppress(psycopg.Error):
                self._end_pipeline()
            if (
                not (self._db.closed or self._db.broken)
                and self._db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            ):
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    # -- reads -------------------------------------------------------------------

    def rated_events(self, ids: Iterable[str]) -> dict[str, UsageEvent]:
        return self._rated_events(self._db.execute(*self._rated_events_query(ids)))

    def period_states(self, keys: Iterable[StateKey]) -> dict[StateKey, PeriodState]:
        query = self._states_query(keys)
        return {} if query is None else self._period_states(query[0], self._db.execute(*query[1:]))

    def closed_periods(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        query = self._closed_query(keys)
        return set() if query is None else {(customer, period) for customer, period in self._db.execute(*query)}

    def read_ahead(
        self, ids: Iterable[str], keys: Iterable[StateKey], periods: Iterable[tuple[str, str]]
    ) -> tuple[dict[str, UsageEvent], dict[StateKey, PeriodState], set[tuple[str, str]]]:
        # The three queries go out in one pipeline: one round trip instead of three.
        ids, states, closed = list(ids), self._states_query(keys), self._closed_query(periods)
        with self._db.pipeline():
            rated_rows = self._db.execute(*self._rated_events_query(ids)) if ids else None  # a quote asks none
            state_rows = None if states is None else self._db.execute(*states[1:])
            closed_rows = None if closed is None else self._db.execute(*closed)
        return (
            {} if rated_rows is None else self._rated_events(rated_rows),
            {} if states is None or state_rows is None else self._period_states(states[0], state_rows),
            set() if closed_rows is None else {(customer, period) for customer, period in closed_rows},
        )

    @staticmethod
    def _rated_events_query(ids: Iterable[str]) -> tuple[str, tuple[list[str]]]:
        return "SELECT id, body FROM events WHERE id = ANY(%s)", (list(ids),)

    @staticmethod
    def _rated_events(rows: Iterable[tuple[str, str]]) -> dict[str, UsageEvent]:
        return {id: UsageEvent.model_validate_json(body) for id, body in rows}

    @staticmethod
    def _states_query(keys: Iterable[StateKey]) -> tuple[dict[StoredKey, StateKey], str, list[list[str]]] | None:
        """The stored keys of ``keys``, and the query of their rows (None for no keys)."""
        # One round trip for any number of keys: a chunk touches thousands.
        wanted = {
            (customer, meter, group_key(group), period): (customer, meter, group, period)
            for customer, meter, group, period in keys
        }
        if not wanted:
            return None
        columns = [list(column) for column in zip(*wanted, strict=True)]
        return (
            wanted,
            f"SELECT customer, meter, group_key, period, quantity, is_unique FROM period_state WHERE {_STATE_MATCH}",
            columns,
        )

    def _period_states(
        self, wanted: Mapping[StoredKey, StateKey], rows: Iterable[tuple[str, str, str, str, Decimal, bool]]
    ) -> dict[StateKey, PeriodState]:
        """Period states from their rows, with the members of unique-count states read after them."""
        result: dict[StateKey, PeriodState] = {}
        unique = []
        for customer, meter, stored_group, period, quantity, is_unique in rows:
            stored = (customer, meter, stored_group, period)
            result[wanted[stored]] = PeriodState(quantity, set() if is_unique else None)
            if is_unique:
                unique.append(stored)
        if unique:
            columns = [list(column) for column in zip(*unique, strict=True)]
            for customer, meter, stored_group, period, member in self._db.execute(
                f"SELECT customer, meter, group_key, period, member FROM period_members WHERE {_STATE_MATCH}", columns
            ):
                members = result[wanted[(customer, meter, stored_group, period)]].members
                assert members is not None
                members.add(member)
        return result

    @staticmethod
    def _closed_query(keys: Iterable[tuple[str, str]]) -> tuple[str, tuple[list[str], list[str]]] | None:
        wanted = list(set(keys))
        if not wanted:
            return None
        customers, periods = (list(column) for column in zip(*wanted, strict=True))
        return (
            "SELECT customer, period FROM closed_periods WHERE (customer, period) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            (customers, periods),
        )

    def _read_transactions(self, where: str, args: Sequence[Any]) -> list[Transaction]:
        # One round trip: each transaction's columns come back beside each of its postings.
        rows = self._db.execute(
            "SELECT t.id, t.timestamp, t.description, t.metadata, p.account, p.asset, p.amount"
            f" FROM transactions t LEFT JOIN postings p ON p.transaction_id = t.id {where} ORDER BY t.seq, p.line",
            args,
        )
        heads: dict[str, tuple[dt.datetime, str, dict[str, str]]] = {}
        postings: dict[str, list[Posting]] = {}
        for id, timestamp, description, metadata, account, asset, amount in rows:
            if id not in heads:
                heads[id] = (timestamp, description, metadata)
                postings[id] = []
            if account is not None:
                postings[id].append(Posting(account, asset, amount))
        return [
            Transaction(id, timestamp, description, tuple(postings[id]), metadata)
            for id, (timestamp, description, metadata) in heads.items()
        ]

    def transaction(self, id: str) -> Transaction | None:
        found = self._read_transactions("WHERE t.id = %s", (id,))
        return found[0] if found else None

    def transactions_by_id(self, ids: Iterable[str]) -> dict[str, Transaction]:
        return {t.id: t for t in self._read_transactions("WHERE t.id = ANY(%s)", (list(ids),))}

    def transactions(self) -> Iterator[Transaction]:
        return iter(self._read_transactions("", ()))

    def transactions_of(self, kind: str, customer: str | None = None) -> list[Transaction]:
        if customer is None:
            return self._read_transactions("WHERE t.kind = %s", (kind,))
        return self._read_transactions("WHERE t.kind = %s AND t.customer = %s", (kind, customer))

    def balances(self, accounts: Iterable[str] | None = None) -> dict[tuple[str, str], Decimal]:
        if accounts is None:
            rows = self._db.execute("SELECT account, asset, amount FROM balances ORDER BY account, asset")
        else:
            rows = self._db.execute(
                "SELECT account, asset, amount FROM balances WHERE account = ANY(%s) ORDER BY account, asset",
                (list(accounts),),
            )
        return {(account, asset): amount for account, asset, amount in rows}

    def charges(self, customer: str | None = None) -> Iterator[StoredCharge]:
        where, args = ("WHERE customer = %s", (customer,)) if customer is not None else ("", ())
        rows = self._db.execute(
            "SELECT event_id, customer, plan, meter, group_key, period, model, before, after, amount, asset, unit,"
            f" unit_price, explanation FROM charges {where} ORDER BY seq",
            args,
        ).fetchall()
        for event_id, who, plan, meter, group, period, model, before, after, amount, asset, unit, price, text in rows:
            charge = Charge(
                plan,
                meter,
                tuple(json.loads(group)),
                period,
                model,
                before,
                after,
                amount,
                asset,
                unit,
                stored_explanation=text,
                stored_unit_price=price,
            )
            yield StoredCharge(event_id, who, charge)

    def activity(self, since: dt.datetime, until: dt.datetime, customer: str | None = None) -> Iterator[Activity]:
        where, args = "timestamp >= %s AND timestamp < %s", [since, until]
        if customer is not None:
            where += " AND customer = %s"
            args.append(customer)  # type: ignore[arg-type]
        rows = self._db.execute(  # time order, ties by id in code point order, whatever the locale
            f'SELECT id, body FROM events WHERE {where} ORDER BY timestamp, id COLLATE "C"', args
        ).fetchall()
        events = {id: UsageEvent.model_validate_json(body) for id, body in rows}
        ids = list(events)
        readings: dict[str, list[tuple[str, Decimal | str]]] = {}
        for id, meter, reading in self._db.execute(
            "SELECT event_id, meter, reading FROM usage WHERE event_id = ANY(%s)", (ids,)
        ):
            readings.setdefault(id, []).append((meter, reading))
        amounts: dict[str, list[tuple[str, Decimal]]] = {}
        for id, asset, amount in self._db.execute(
            "SELECT event_id, asset, amount FROM charges WHERE event_id = ANY(%s)", (ids,)
        ):
            amounts.setdefault(id, []).append((asset, amount))
        costs: dict[str, list[tuple[str, Decimal]]] = {}
        for transaction_id, account, asset, amount in self._db.execute(
            "SELECT transaction_id, account, asset, amount FROM postings WHERE transaction_id = ANY(%s)",
            ([rating_id(id) for id in ids],),
        ):
            if is_cost(account):
                costs.setdefault(transaction_id.removeprefix(RATING_PREFIX), []).append((asset, amount))
        for id, event in events.items():
            yield Activity(event, tuple(readings.get(id, ())), tuple(amounts.get(id, ())), tuple(costs.get(id, ())))

    def account_totals(self, accounts: Iterable[str], until: dt.datetime) -> dict[tuple[str, str], Decimal]:
        rows = self._db.execute(
            "SELECT p.account, p.asset, SUM(p.amount) FROM postings p JOIN transactions t ON t.id = p.transaction_id"
            " WHERE p.account = ANY(%s) AND t.timestamp < %s GROUP BY p.account, p.asset",
            (list(accounts), until),
        )
        return {(account, asset): total for account, asset, total in rows}

    def period_totals(self, period: str) -> dict[tuple[str, str], Decimal]:
        rows = self._db.execute(
            "SELECT customer, asset, SUM(amount) FROM charges WHERE period = %s GROUP BY customer, asset", (period,)
        )
        return {(customer, asset): total for customer, asset, total in rows}

    def legacy_running_totals(self) -> list[tuple[str, str, str, Decimal]]:
        rows = self._db.execute("SELECT customer, meter, period, quantity FROM legacy_totals").fetchall()
        return [(customer, name, period, quantity) for customer, name, period, quantity in rows]

    def adopt_running_totals(self, renames: Mapping[tuple[str, str, str], str]) -> None:
        with self.writing():
            for (customer, old, period), new in renames.items():
                self._db.execute(
                    "INSERT INTO period_state SELECT customer, %s, group_key, period, quantity, is_unique"
                    " FROM legacy_totals WHERE customer = %s AND meter = %s AND period = %s ON CONFLICT DO NOTHING",
                    (new, customer, old, period),
                )
                self._db.execute(
                    "DELETE FROM legacy_totals WHERE customer = %s AND meter = %s AND period = %s",
                    (customer, old, period),
                )

    def documents(self, number: str | None = None, customer: str | None = None) -> list[str]:
        rows = self._db.execute(
            "SELECT body FROM documents WHERE (%s::text IS NULL OR number = %s) AND (%s::text IS NULL OR customer = %s)"
            " ORDER BY series, sequence",
            (number, number, customer, customer),
        )
        return [body for (body,) in rows]

    def _document_of(self, kind: str, customer: str, period: str) -> str | None:
        row = self._db.execute(
            "SELECT body FROM documents WHERE kind = %s AND customer = %s AND period = %s", (kind, customer, period)
        ).fetchone()
        return None if row is None else str(row[0])

    def _last_in_series(self, series: str) -> int:
        row = self._db.execute("SELECT MAX(sequence) FROM documents WHERE series = %s", (series,)).fetchone()
        return int(row[0] or 0) if row else 0

    def _write_document(
        self, number: str, series: str, sequence: int, kind: str, customer: str, period: str, text: str
    ) -> None:
        self._db.execute(
            "INSERT INTO documents VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (number, series, sequence, kind, customer, period, text),
        )

    def _all_transaction_ids(self) -> list[str]:
        return [id for (id,) in self._db.execute("SELECT id FROM transactions ORDER BY seq")]

    def _raw_rows(self, table: str, columns: str) -> Iterator[tuple[object, ...]]:
        yield from self._db.execute(f"SELECT {columns} FROM {table}")  # noqa: S608 - names from verify, never input

    def _all_postings(self) -> Iterator[tuple[str, str, str, object]]:
        yield from self._db.execute("SELECT transaction_id, account, asset, amount FROM postings")

    # -- writes (inside _atomic) ----------------------------------------------------

    def _fingerprints(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self._db.execute("SELECT id, fingerprint FROM transactions WHERE id = ANY(%s)", (list(ids),))
        return {id: fingerprint for id, fingerprint in rows}

    def _small_write(self, records: int) -> None:
        """Send a write of a few ``records`` as INSERTs in a pipeline, kept open until COMMIT: the write and
        its commit then take one round trip, where each ``COPY`` would take two."""
        if records <= FEW_RECORDS and self._pipeline is None:
            self._pipeline = ExitStack()
            self._pipeline.enter_context(self._db.pipeline())

    def _end_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close()

    def _copy(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """Append ``rows`` to ``table``: INSERTs inside a pipeline (where COPY is not allowed), else COPY."""
        with self._db.cursor() as cursor:
            if self._pipeline is not None:
                marks = ", ".join(["%s"] * (columns.count(",") + 1))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(rows))
                return
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def _write_transactions(self, transactions: Sequence[Transaction]) -> None:
        if not transactions:
            return
        self._small_write(len(transactions))
        self._copy(
            "transactions",
            "id, timestamp, description, metadata, fingerprint, kind, customer",
            (
                (t.id, t.timestamp, t.description, json.dumps(dict(t.metadata)), t.fingerprint(), t.kind, t.customer)
                for t in transactions
            ),
        )
        closing = [(t.customer, t.metadata["period"], t.id) for t in transactions if t.kind == "close"]
        if closing:
            self._copy("closed_periods", "customer, period, transaction_id", closing)
        self._copy(
            "postings",
            "transaction_id, line, account, asset, amount",
            ((t.id, line, p.account, p.asset, p.amount) for t in transactions for line, p in enumerate(t.postings)),
        )
        deltas = balance_moves(transactions)
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO balances VALUES (%s, %s, %s) ON CONFLICT (account, asset)"
                " DO UPDATE SET amount = balances.amount + EXCLUDED.amount",
                [(account, asset, delta) for (account, asset), delta in deltas.items()],
            )

    def _write_ratings(self, ratings: Sequence[RatedEvent]) -> None:
        if not ratings:
            return
        self._small_write(len(ratings))
        self._write_transactions([r.transaction for r in ratings])
        self._copy(
            "events",
            "id, customer, type, timestamp, body, transaction_id",
            (
                (
                    r.event.id,
                    r.event.customer,
                    r.event.type,
                    r.event.timestamp,
                    r.event.canonical_json(),
                    r.transaction.id,
                )
                for r in ratings
            ),
        )
        self._copy(
            "usage",
            "event_id, meter, customer, group_key, period, reading, before, after",
            (
                (
                    r.event.id,
                    u.meter,
                    r.event.customer,
                    group_key(u.group),
                    u.period,
                    str(u.reading),
                    u.before,
                    u.after,
                )
                for r in ratings
                for u in r.usage
            ),
        )
        self._write_charges((r.event.id, r.event.customer, c) for r in ratings for c in r.charges)
        self._write_states(*final_states(ratings))

    def _write_corrections(self, corrections: Sequence[Correction], states: Mapping[StateKey, PeriodState]) -> None:
        self._write_transactions([c.transaction for c in corrections])
        if not corrections:
            return
        self._write_charges((c.event_id, c.customer, charge) for c in corrections for charge in c.charges)
        self._write_states(*stored_states(states))

    def _write_charges(self, rows: Iterable[tuple[str, str, Charge]]) -> None:
        """Write charge records as (event id, customer, charge)."""
        self._copy(
            "charges",
            "event_id, customer, plan, meter, group_key, period, model, before, after, amount, asset, unit,"
            " unit_price, explanation",
            (
                (
                    event_id,
                    customer,
                    c.plan,
                    c.meter,
                    group_key(c.group),
                    c.period,
                    c.model,
                    c.before,
                    c.after,
                    c.amount,
                    c.asset,
                    c.unit,
                    c.unit_price,
                    c.explanation,
                )
                for event_id, customer, c in rows
            ),
        )

    def _write_states(
        self, final: Mapping[StoredKey, tuple[Decimal, bool]], members: Sequence[tuple[str, str, str, str, str]]
    ) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO period_state VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (customer, meter, rating_sha256(group_key), period)"
                " DO UPDATE SET quantity = EXCLUDED.quantity",
                [(*key, quantity, unique) for key, (quantity, unique) in final.items()],
            )
            if members:
                cursor.executemany(
                    "INSERT INTO period_members VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", members
                )
