"""PostgreSQL storage (psycopg 3, extra ``[postgres]``): ``--db postgresql://user@host/db``.

Amounts are ``NUMERIC`` and times ``TIMESTAMPTZ``. Bulk writes go through
``COPY``; a small write (one metered request) sends its INSERTs in one
pipeline instead, a single round trip where each ``COPY`` costs two, and the
reads before rating go out together too. Writers take transaction-level
advisory locks (keyed by the schema): the global scope one write lock
exclusive; a customer scope that lock shared and a lock per customer, in key
order, so writers of disjoint customers write side by side (each adding to a
balance shard of its own) and everyone else waits. The storage's checks
(idempotency, period-state compare-and-set, wallet limits) and the writes that
follow them are thus atomic across processes; readers never wait. Migrations are versioned in
``schema_version`` and applied on first use (also by ``rating db migrate``).
The queries, the writes and the schema history are the SQL adapter's
(:mod:`rating.storage.sql`); this module is PostgreSQL's dialect of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rating.distribution import install_hint
from rating.errors import StorageError
from rating.events import UsageEvent
from rating.records import PeriodState
from rating.statekeys import StateKey
from rating.storage import masked
from rating.storage.base import Scope, ScopeConflict, StoredKey, group_key
from rating.storage.migrations import MIGRATIONS as _LOGICAL
from rating.storage.migrations import SCHEMA_VERSION
from rating.storage.sql import SqlStorage

try:
    import psycopg
except ImportError:  # pragma: no cover - depends on the extra
    psycopg = None  # type: ignore[assignment]

__all__ = [
    "FEW_RECORDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "WRITE_LOCK",
    "PostgresStorage",
    "customer_lock",
    "write_lock",
]

#: Where the advisory lock every writer takes lived before write locks were kept per schema (it is now
#: :func:`write_lock` of the schema): exclusive for the global scope, shared for a customer scope.
WRITE_LOCK = 7_261_900
#: The schema history as PostgreSQL runs it: (version, script), each applied exactly once, in order.
MIGRATIONS: list[tuple[int, str]] = [(m.version, ";\n".join(m.render("postgres"))) for m in _LOGICAL]
#: Writes of up to this many records are pipelined INSERTs; larger ones are COPY, far cheaper per row.
FEW_RECORDS = 64
#: Matches period-state rows against four arrays of key columns (by the group's hash, as they are indexed).
_STATE_MATCH = (
    "(customer, meter, rating_sha256(group_key), period, group_key) IN (SELECT c, m, rating_sha256(g), p, g"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS k (c, m, g, p))"
)
#: The most customers a scope locks one by one; a scope of more takes the global lock instead. Every advisory
#: lock held takes a slot of the server's lock table (max_locks_per_transaction x max_connections: 6,400 by
#: default), which a few chunks of thousands of customers each would exhaust. Workers partitioned by customer
#: rate chunks of fewer: 1,000 customers over 4 workers lock 250 each.
CUSTOMER_LOCKS = 512
#: How many rows a balance is spread over (migration 11): writers side by side add to shards of their own.
BALANCE_SHARDS = 16
#: Claims a shard no other writer of the schema holds (the two-int advisory locks: the schema's space, the
#: shard), trying them from ``start`` on; the start itself once all are held (the writer then waits on another's
#: balance rows: slower, still correct).
_TAKE_SHARD = (
    "SELECT COALESCE((SELECT s FROM (SELECT mod({start:d} + i, " + str(BALANCE_SHARDS) + ") AS s"
    " FROM generate_series(0, " + str(BALANCE_SHARDS - 1) + ") i) t"
    " WHERE pg_try_advisory_xact_lock({space:d}, s) LIMIT 1), {start:d})"
)


def _hash(text: str, schema: str, purpose: bytes, size: int = 8) -> int:
    """A stable signed hash of ``text`` (the same in every process, which Python's ``hash`` is not), keyed by the
    schema (two rating schemas in one database are two ledgers: their writers never wait for each other)."""
    digest = hashlib.blake2b(text.encode(), digest_size=size, key=schema.encode()[:64], person=purpose)
    return int.from_bytes(digest.digest(), "big", signed=True)


def customer_lock(customer: str, schema: str = "") -> int:
    """The advisory lock key (signed 64 bits) of ``customer`` in ``schema``."""
    return _hash(customer, schema, b"rating.customer")


def write_lock(schema: str = "") -> int:
    """The advisory lock key (signed 64 bits) every writer of ``schema`` takes, shared or exclusive."""
    return _hash("", schema, b"rating.write")


def _locking(customers: Scope, schema: str) -> str:
    """BEGIN and the advisory locks of a scope: the write lock exclusive for the global scope; shared, then each
    customer's lock in ascending key order (two writers never wait on each other in a cycle), for customers."""
    if customers is None:
        return f"BEGIN; SELECT pg_advisory_xact_lock({write_lock(schema):d})"
    # One statement per lock: statements run in order, where the calls of one target list have no stated order.
    keys = sorted({customer_lock(customer, schema) for customer in customers})
    locks = "".join(f"; SELECT pg_advisory_xact_lock({key:d})" for key in keys)
    start = (keys[0] if keys else 0) % BALANCE_SHARDS  # derived from the customers: writers of others spread
    shard = _TAKE_SHARD.format(start=start, space=_hash("", schema, b"rating.shard", 4))
    return f"BEGIN; SELECT pg_advisory_xact_lock_shared({write_lock(schema):d}){locks}; {shard}"


@lru_cache(maxsize=256)
def _placeholders(query: str) -> str:
    """A query written with ``?`` placeholders in psycopg's ``%s`` style (queries here hold no literal ``?``)."""
    return query.replace("?", "%s")


class PostgresStorage(SqlStorage):
    """Storage in a PostgreSQL database (the schema of the connection's search_path)."""

    dialect = "postgres"
    locks_customers = True
    reads_ahead = True
    sums = True
    state_key = "customer, meter, rating_sha256(group_key), period"
    by_id = 'id COLLATE "C"'

    damage_errors = (psycopg.Error,) if psycopg is not None else ()
    #: The pipeline a small write opened, sent with the COMMIT that closes it.
    _pipeline: ExitStack | None = None

    def __init__(self, url: str, *, read_only: bool = False, existing: bool = False) -> None:
        """Connect to ``url`` and migrate its schema; ``read_only`` and ``existing`` never migrate (see SQLite's)."""
        if psycopg is None:
            raise StorageError(f"PostgreSQL storage needs the postgres extra: {install_hint('postgres')}")
        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            raise StorageError(masked(f"cannot connect to {url}: {str(error).strip().splitlines()[0]}")) from None
        try:
            self._schema = str(self._db.execute("SELECT current_schema()").fetchone()[0] or "")
            if read_only:
                self._db.execute("SET default_transaction_read_only = on")
            if read_only or existing:
                self._check_readable(self.schema_version(), "no rating schema in this database (search_path)")
            else:
                self.migrate()
        except BaseException:
            self._db.close()
            raise

    # -- the dialect ---------------------------------------------------------------

    def _name(self) -> str:
        return masked(self.url)

    def _has_schema_table(self) -> bool:
        return self._db.execute("SELECT to_regclass('schema_version')").fetchone() != (None,)

    def _sql(self, query: str) -> str:
        return _placeholders(query)

    def _in_rows(self, query: str, values: Iterable[object], leading: Sequence[object] = ()) -> Iterator[Any]:
        # One array parameter for any number of values: one round trip.
        yield from self._db.execute(_placeholders(query.replace("{in}", "= ANY(?)")), [*leading, list(values)])

    @contextmanager
    def _atomic(self, customers: Scope = None) -> Iterator[None]:
        # BEGIN and the locks in one round trip (a query of several statements, possible without parameters).
        if customers is not None and len(customers) > CUSTOMER_LOCKS:
            customers = None  # too many locks for one transaction: the global scope covers them all
        cursor = self._db.execute(_locking(customers, self._schema))
        if customers is not None:  # the shard claimed in the same round trip: the result of the last statement
            while cursor.nextset():
                pass
            self._shard = cursor.fetchone()[0]
        try:
            try:
                yield
                self._db.execute("COMMIT")  # in the pipeline of a small write, if one is open: one round trip for both
                self._end_pipeline()  # raises what failed in it
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as error:
                if customers is None:
                    raise
                # Another customer's writer stored a row this one also meant to (an event id two customers use):
                # only the global scope, where every check sees every writer's rows, can refuse it properly.
                raise ScopeConflict(
                    f"a write for customers {sorted(customers)} met another writer's row: {error}"
                ) from error
        except BaseException:
            with suppress(psycopg.Error):
                self._end_pipeline()
            if (
                not (self._db.closed or self._db.broken)
                and self._db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            ):
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._shard = 0

    # -- reads: whole arrays of keys in one query ------------------------------------

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
        wanted = {(key[0], key[1], group_key(key[2]), key[3]): key for key in keys}
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

    # -- writes -------------------------------------------------------------------------

    def _begin_write(self, records: int) -> None:
        """Send a write of a few ``records`` as INSERTs in a pipeline, kept open until COMMIT: the write and
        its commit then take one round trip, where each ``COPY`` would take two."""
        if records <= FEW_RECORDS and self._pipeline is None:
            self._pipeline = ExitStack()
            self._pipeline.enter_context(self._db.pipeline())

    def _end_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close()

    def _insert(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """Append ``rows`` to ``table``: INSERTs inside a pipeline (where COPY is not allowed), else COPY."""
        with self._db.cursor() as cursor:
            if self._pipeline is not None:
                marks = ", ".join(["%s"] * (columns.count(",") + 1))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(rows))
                return
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
