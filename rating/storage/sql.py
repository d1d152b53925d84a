"""The SQL adapter: one schema, one set of queries, for every SQL database; a small dialect per database.

:class:`SqlStorage` holds everything SQLite and PostgreSQL share: the reads,
the writes, the migrations (:mod:`rating.storage.migrations`) and the raw rows
``verify`` checks. A dialect (a subclass) says only what differs:

- the connection and its write transaction (:meth:`~rating.storage.base.Storage._atomic`);
- how values travel (:meth:`SqlStorage._money`, :meth:`SqlStorage._time` and
  their readers): SQLite keeps amounts and times as text, PostgreSQL as
  ``NUMERIC`` and ``TIMESTAMPTZ``;
- the placeholder (queries here are written with ``?``), how a list of values
  is matched (:meth:`SqlStorage._in_rows`: SQLite in chunks of ``IN (?, ...)``,
  PostgreSQL one array parameter), how rows are appended in bulk
  (:meth:`SqlStorage._insert`: ``executemany`` or ``COPY``);
- whether the database adds amounts exactly (:attr:`SqlStorage.sums`): PostgreSQL's
  ``NUMERIC`` does, SQLite's ``SUM`` would go through floats, so there Python adds.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from rating.accounts import is_cost
from rating.core.funding import (
    FUNDING_KINDS,
    Grant,
    Reservation,
    forfeited_grant,
    grant_of,
    release_state,
    reservation_of,
)
from rating.errors import StorageError
from rating.events import UsageEvent
from rating.ids import TransactionKind, parse, rating_id
from rating.ledger import Posting, Transaction
from rating.money import ZERO, exact
from rating.records import (
    ApiKeyRecord,
    ChargeRecord,
    CorrectionRecord,
    CustomerVersion,
    DeliveryRecord,
    EventRecord,
    IdempotentRequest,
    OutboxMessage,
    PeriodState,
    WebhookEndpoint,
)
from rating.statekeys import StateKey
from rating.storage.base import (
    PAYMENT_KIND,
    Activity,
    Payment,
    Storage,
    StoredCharge,
    StoredKey,
    balance_moves,
    final_states,
    group_key,
    payment_of,
    stored_states,
)
from rating.storage.migrations import SCHEMA_VERSION, logical_version, statements

_TRANSACTION = "id, timestamp, description, metadata, fingerprint, kind, customer"
_CHARGE = (
    "event_id, customer, plan, meter, group_key, period, model, before, after, amount, asset, unit,"
    " unit_price, explanation"
)


class SqlStorage(Storage):
    """Storage in a SQL database: the shared logic; subclasses are the dialects."""

    #: The dialect's name, as :mod:`rating.storage.migrations` renders the schema for it.
    dialect: str
    #: The DB-API connection (``execute`` returns an iterable cursor with ``fetchone`` and ``fetchall``).
    _db: Any
    #: Whether the database adds amounts exactly (NUMERIC): balances are then updated and totals summed in SQL.
    sums = False
    #: The key period state is unique on (PostgreSQL hashes the group: see migration 7).
    state_key = "customer, meter, group_key, period"
    #: How an ``ORDER BY`` compares ids in code point order whatever the database's locale.
    by_id = "id"
    #: The balance shard the current write adds to (migration 11): 0 but where writers run side by side.
    _shard = 0

    # -- the dialect ---------------------------------------------------------------

    @abc.abstractmethod
    def _sql(self, query: str) -> str:
        """``query``, written with ``?`` placeholders, in the dialect's placeholder style."""

    @abc.abstractmethod
    def _in_rows(self, query: str, values: Iterable[object], leading: Sequence[object] = ()) -> Iterator[Any]:
        """Rows of ``query`` (``?`` placeholders; ``leading`` parameters, then ``{in}``, the match of one column
        against ``values``), over all of ``values`` (the dialect may send them in several queries)."""

    @abc.abstractmethod
    def _insert(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """Append ``rows`` (values in the order of ``columns``) to ``table``."""

    @abc.abstractmethod
    def _has_schema_table(self) -> bool:
        """Whether the ``schema_version`` table exists (where the connection looks for tables)."""

    @abc.abstractmethod
    def _name(self) -> str:
        """The database as messages name it (a path, or a URL without its password)."""

    def _executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``query`` (``?`` placeholders) once per row."""
        if rows:
            with self._db.cursor() as cursor:
                cursor.executemany(self._sql(query), rows)

    def _run(self, query: str, args: Sequence[Any] = ()) -> Any:
        """Execute ``query`` (``?`` placeholders) with ``args``; the cursor."""
        return self._db.execute(self._sql(query), args)

    def _begin_write(self, records: int) -> None:  # noqa: B027 - only PostgreSQL batches small writes
        """A write of ``records`` rated events or transactions starts (inside the write transaction)."""

    @staticmethod
    def _money(value: Decimal) -> object:
        """An amount as the database stores it."""
        return value

    @staticmethod
    def _decimal(raw: Any) -> Decimal:
        """A stored amount as a Decimal."""
        return raw

    @staticmethod
    def _time(value: dt.datetime) -> object:
        """A timestamp as the database stores it."""
        return value

    @staticmethod
    def _read_time(raw: Any) -> dt.datetime:
        """A stored timestamp as a datetime."""
        return raw

    @staticmethod
    def _read_json(raw: Any) -> dict[str, Any]:
        """Stored metadata as a dict."""
        return raw

    @staticmethod
    def _flag(value: bool) -> object:
        """A boolean as the database stores it."""
        return value

    # -- schema ----------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version the database says it is at (0 for a new one)."""
        if not self._has_schema_table():
            return 0
        row = self._run("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0) if row else 0

    def migrate(self) -> int:
        """Apply pending migrations in one write transaction; return the resulting version.

        The version is read inside that transaction (under the write lock), so processes opening a new
        database together apply each migration once (the others find it done).
        """
        with self._atomic():
            self._run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise StorageError(
                    f"{self._name()}: schema version {current} is newer than this rating knows "
                    f"({SCHEMA_VERSION}); upgrade rating"
                )
            for version, steps in statements(self.dialect, logical_version(self.dialect, current)):
                for statement in steps:
                    self._db.execute(statement)
                now = dt.datetime.now(dt.UTC).isoformat()
                self._run("INSERT INTO schema_version VALUES (?, ?)", (version, now))
        return SCHEMA_VERSION

    def _check_readable(self, version: int, missing: str) -> None:
        """Refuse a database this rating cannot read without migrating it (``missing``: the no-schema message)."""
        if version == 0:
            raise StorageError(
                f"{self._name()}: {missing}; rating rate or rating db migrate creates one", "no_database"
            )
        if version != SCHEMA_VERSION:
            raise StorageError(
                f"{self._name()}: schema version {version}, this rating reads {SCHEMA_VERSION};"
                " run rating db migrate (only rate and db migrate upgrade a database)",
                code="schema_outdated" if version < SCHEMA_VERSION else "schema_newer",
            )

    def close(self) -> None:
        self._db.close()

    # -- reads -----------------------------------------------------------------

    def rated_events(self, ids: Iterable[str]) -> dict[str, UsageEvent]:
        rows = self._in_rows("SELECT id, body FROM events WHERE id {in}", ids)
        return {str(i): UsageEvent.model_validate_json(str(body)) for i, body in rows}

    def period_states(self, keys: Iterable[StateKey]) -> dict[StateKey, PeriodState]:
        # One key at a time: in-process reads are cheap (PostgreSQL matches arrays of keys instead).
        result: dict[StateKey, PeriodState] = {}
        for state_key in keys:
            customer, meter, group, period = state_key
            where = " WHERE customer = ? AND meter = ? AND group_key = ? AND period = ?"
            key = (customer, meter, group_key(group), period)
            row = self._run("SELECT quantity, is_unique FROM period_state" + where, key).fetchone()
            if row is None:
                continue
            members = None
            if row[1]:
                members = {m for (m,) in self._run("SELECT member FROM period_members" + where, key)}
            result[state_key] = PeriodState(self._decimal(row[0]), members)
        return result

    def closed_periods(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        closed = set()
        for customer, period in set(keys):
            row = self._run(
                "SELECT 1 FROM closed_periods WHERE customer = ? AND period = ?", (customer, period)
            ).fetchone()
            if row is not None:
                closed.add((customer, period))
        return closed

    def _read_transactions(self, rows: Iterable[Sequence[Any]]) -> list[Transaction]:
        """Transactions from rows of :data:`_READ_TRANSACTIONS` (each transaction's columns beside each of its
        postings, in order): one query for any number of transactions."""
        heads: dict[str, tuple[Any, str, Any]] = {}
        postings: dict[str, list[Posting]] = {}
        for id, timestamp, description, metadata, account, asset, amount in rows:
            if id not in heads:
                heads[id] = (timestamp, description, metadata)
                postings[id] = []
            if account is not None:
                postings[id].append(Posting(account, asset, self._decimal(amount)))
        return [
            Transaction(id, self._read_time(timestamp), description, tuple(postings[id]), self._read_json(metadata))
            for id, (timestamp, description, metadata) in heads.items()
        ]

    def _transactions_where(self, where: str, args: Sequence[Any] = ()) -> list[Transaction]:
        return self._read_transactions(self._run(_READ_TRANSACTIONS.format(where=where), args))

    def transaction(self, id: str) -> Transaction | None:
        found = self._transactions_where("WHERE t.id = ?", (id,))
        return found[0] if found else None

    def transactions_by_id(self, ids: Iterable[str]) -> dict[str, Transaction]:
        rows = self._in_rows(_READ_TRANSACTIONS.format(where="WHERE t.id {in}"), ids)
        return {t.id: t for t in self._read_transactions(rows)}

    def transactions(self) -> Iterator[Transaction]:
        return iter(self._transactions_where(""))

    def payments(self, ids: Iterable[str]) -> dict[str, Payment]:
        rows = self._in_rows(
            "SELECT payment_id, purpose, customer, asset, amount, transaction_id FROM payments WHERE payment_id {in}",
            ids,
        )
        return {
            str(id): Payment(str(id), purpose, customer, asset, self._decimal(amount), marker)
            for id, purpose, customer, asset, amount, marker in rows
        }

    def transactions_of(self, kind: str, customer: str | None = None) -> list[Transaction]:
        if customer is None:
            return self._transactions_where("WHERE t.kind = ?", (kind,))
        return self._transactions_where("WHERE t.kind = ? AND t.customer = ?", (kind, customer))

    @exact
    def balances(self, accounts: Iterable[str] | None = None) -> dict[tuple[str, str], Decimal]:
        # A balance is the sum of its shards (migration 11): SQL adds exact NUMERIC, Python adds SQLite's text.
        if self.sums:
            total = "SELECT account, asset, SUM(amount) FROM balances {where} GROUP BY account, asset"
            if accounts is None:
                rows = self._run(total.format(where="") + " ORDER BY account, asset")
            else:
                rows = self._in_rows(total.format(where="WHERE account {in}"), accounts)
            return {(str(account), str(asset)): self._decimal(amount) for account, asset, amount in rows}
        if accounts is None:
            rows = self._run("SELECT account, asset, amount FROM balances ORDER BY account, asset")
        else:
            rows = self._in_rows("SELECT account, asset, amount FROM balances WHERE account {in}", accounts)
        return _summed(((str(account), str(asset)), self._decimal(amount)) for account, asset, amount in rows)

    def charges(self, customer: str | None = None) -> Iterator[StoredCharge]:
        where, args = ("WHERE customer = ?", (customer,)) if customer is not None else ("", ())
        rows = self._run(f"SELECT {_CHARGE} FROM charges {where} ORDER BY seq", args).fetchall()  # noqa: S608
        read = self._decimal
        for event_id, who, plan, meter, group, period, model, before, after, amount, asset, unit, price, text in rows:
            charge = ChargeRecord(
                plan,
                meter,
                tuple(json.loads(group)),
                period,
                model,
                read(before),
                read(after),
                read(amount),
                asset,
                unit,
                None if price is None else read(price),
                text,
            )
            yield StoredCharge(event_id, who, charge)

    def activity(self, since: dt.datetime, until: dt.datetime, customer: str | None = None) -> Iterator[Activity]:
        where, args = "timestamp >= ? AND timestamp < ?", [self._time(since), self._time(until)]
        if customer is not None:
            where += " AND customer = ?"
            args.append(customer)
        rows = self._run(  # time order, ties by id in code point order
            f"SELECT id, body FROM events WHERE {where} ORDER BY timestamp, {self.by_id}",  # noqa: S608
            args,
        ).fetchall()
        events = {str(id): UsageEvent.model_validate_json(str(body)) for id, body in rows}
        readings: dict[str, list[tuple[str, Decimal | str]]] = {}
        for id, meter, reading in self._in_rows(
            "SELECT event_id, meter, reading FROM usage WHERE event_id {in}", events
        ):
            readings.setdefault(str(id), []).append((str(meter), str(reading)))
        amounts: dict[str, list[tuple[str, Decimal]]] = {}
        for id, asset, amount in self._in_rows(
            "SELECT event_id, asset, amount FROM charges WHERE event_id {in}", events
        ):
            amounts.setdefault(str(id), []).append((str(asset), self._decimal(amount)))
        costs: dict[str, list[tuple[str, Decimal]]] = {}
        cost_rows = self._in_rows(
            "SELECT transaction_id, account, asset, amount FROM postings WHERE transaction_id {in}",
            [rating_id(id) for id in events],
        )
        for transaction_id, account, asset, amount in cost_rows:
            if is_cost(str(account)):
                costs.setdefault(parse(str(transaction_id)).event, []).append((str(asset), self._decimal(amount)))
        for id, event in events.items():
            yield Activity(event, tuple(readings.get(id, ())), tuple(amounts.get(id, ())), tuple(costs.get(id, ())))

    @exact
    def account_totals(self, accounts: Iterable[str], until: dt.datetime) -> dict[tuple[str, str], Decimal]:
        join = "FROM postings p JOIN transactions t ON t.id = p.transaction_id WHERE t.timestamp < ? AND p.account {in}"
        if self.sums:
            rows = self._in_rows(
                f"SELECT p.account, p.asset, SUM(p.amount) {join} GROUP BY p.account, p.asset",
                accounts,
                (self._time(until),),
            )
            return {(account, asset): total for account, asset, total in rows}
        rows = self._in_rows(f"SELECT p.account, p.asset, p.amount {join}", accounts, (self._time(until),))
        return _summed(((str(account), str(asset)), self._decimal(amount)) for account, asset, amount in rows)

    @exact
    def period_totals(self, period: str) -> dict[tuple[str, str], Decimal]:
        if self.sums:
            rows = self._run(
                "SELECT customer, asset, SUM(amount) FROM charges WHERE period = ? GROUP BY customer, asset", (period,)
            )
            return {(customer, asset): total for customer, asset, total in rows}
        rows = self._run("SELECT customer, asset, amount FROM charges WHERE period = ?", (period,))
        return _summed(((customer, asset), self._decimal(amount)) for customer, asset, amount in rows)

    def legacy_running_totals(self) -> list[tuple[str, str, str, Decimal]]:
        rows = self._run("SELECT customer, meter, period, quantity FROM legacy_totals").fetchall()
        return [(customer, name, period, self._decimal(quantity)) for customer, name, period, quantity in rows]

    def adopt_running_totals(self, renames: Mapping[tuple[str, str, str], str]) -> None:
        with self.writing():
            for (customer, old, period), new in renames.items():
                self._run(
                    "INSERT INTO period_state SELECT customer, ?, group_key, period, quantity, is_unique"
                    " FROM legacy_totals WHERE customer = ? AND meter = ? AND period = ? ON CONFLICT DO NOTHING",
                    (new, customer, old, period),
                )
                self._run(
                    "DELETE FROM legacy_totals WHERE customer = ? AND meter = ? AND period = ?", (customer, old, period)
                )

    def documents(self, number: str | None = None, customer: str | None = None) -> list[str]:
        wanted = [
            (column, value) for column, value in (("number", number), ("customer", customer)) if value is not None
        ]
        where = " AND ".join(f"{column} = ?" for column, _ in wanted)
        rows = self._run(
            f"SELECT body FROM documents {'WHERE ' + where if where else ''} ORDER BY series, sequence",  # noqa: S608
            [value for _, value in wanted],
        )
        return [body for (body,) in rows]

    def _document_of(self, kind: str, customer: str, period: str) -> str | None:
        row = self._run(
            "SELECT body FROM documents WHERE kind = ? AND customer = ? AND period = ?", (kind, customer, period)
        ).fetchone()
        return None if row is None else str(row[0])

    def _last_in_series(self, series: str) -> int:
        row = self._run("SELECT MAX(sequence) FROM documents WHERE series = ?", (series,)).fetchone()
        return int(row[0] or 0) if row else 0

    def _write_document(
        self, number: str, series: str, sequence: int, kind: str, customer: str, period: str, text: str
    ) -> None:
        self._run(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (number, series, sequence, kind, customer, period, text),
        )

    def _customer_rows(self, customer: str | None) -> list[CustomerVersion]:
        where, args = ("WHERE customer = ?", (customer,)) if customer is not None else ("", ())
        rows = self._run(
            "SELECT customer, sequence, effective, spec, recorded_at FROM customer_versions "  # noqa: S608
            f"{where} ORDER BY customer, sequence",
            args,
        )
        return [
            CustomerVersion(str(who), int(n), self._read_time(at), str(spec), self._read_time(recorded))
            for who, n, at, spec, recorded in rows
        ]

    def customers_version(self) -> int:
        # seq only grows in commit order (writers are serialized), so its maximum moves with every new version.
        row = self._run("SELECT MAX(seq) FROM customer_versions").fetchone()
        return int(row[0] or 0) if row else 0

    def _write_customer_version(self, version: CustomerVersion) -> None:
        self._run(
            "INSERT INTO customer_versions (customer, sequence, effective, spec, recorded_at) VALUES (?, ?, ?, ?, ?)",
            (
                version.customer,
                version.sequence,
                self._time(version.effective),
                version.spec,
                self._time(version.recorded_at),
            ),
        )

    def _api_key_rows(self) -> list[ApiKeyRecord]:
        rows = self._run("SELECT name, sha256, scopes, created_at, revoked_at FROM api_keys ORDER BY name")
        return [
            ApiKeyRecord(
                str(name),
                str(sha),
                tuple(str(scopes).split(",")),
                self._read_time(created),
                None if revoked is None else self._read_time(revoked),
            )
            for name, sha, scopes, created, revoked in rows
        ]

    def api_key(self, sha256: str) -> ApiKeyRecord | None:
        # One indexed read per request (the column is UNIQUE), not every key: the server checks on each call.
        row = self._run(
            "SELECT name, sha256, scopes, created_at, revoked_at FROM api_keys WHERE sha256 = ?", (sha256,)
        ).fetchone()
        if row is None:
            return None
        name, sha, scopes, created, revoked = row
        revoked_at = None if revoked is None else self._read_time(revoked)
        return ApiKeyRecord(str(name), str(sha), tuple(str(scopes).split(",")), self._read_time(created), revoked_at)

    def _write_api_key(self, key: ApiKeyRecord) -> None:
        self._run(
            "INSERT INTO api_keys (name, sha256, scopes, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)",
            (
                key.name,
                key.sha256,
                ",".join(key.scopes),
                self._time(key.created_at),
                None if key.revoked_at is None else self._time(key.revoked_at),
            ),
        )

    def _write_revocation(self, name: str, at: dt.datetime) -> None:
        self._run("UPDATE api_keys SET revoked_at = ? WHERE name = ?", (self._time(at), name))

    def _idempotent_row(self, owner: str, key: str) -> IdempotentRequest | None:
        row = self._run(
            "SELECT fingerprint, started_at, status, media_type, body FROM idempotent_requests"
            " WHERE owner = ? AND idempotency_key = ?",
            (owner, key),
        ).fetchone()
        if row is None:
            return None
        fingerprint, started, status, media_type, body = row
        return IdempotentRequest(
            owner,
            key,
            str(fingerprint),
            self._read_time(started),
            None if status is None else int(status),
            None if media_type is None else str(media_type),
            None if body is None else str(body),
        )

    def _write_idempotent(self, request: IdempotentRequest) -> None:
        self._run(
            "INSERT INTO idempotent_requests (owner, idempotency_key, fingerprint, started_at, status, media_type,"
            " body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                request.owner,
                request.key,
                request.fingerprint,
                self._time(request.started_at),
                request.status,
                request.media_type,
                request.body,
            ),
        )

    def _delete_idempotent(self, owner: str, key: str) -> None:
        self._run("DELETE FROM idempotent_requests WHERE owner = ? AND idempotency_key = ?", (owner, key))

    def _purge_idempotent(self, before: dt.datetime) -> int:
        return int(self._run("DELETE FROM idempotent_requests WHERE started_at < ?", (self._time(before),)).rowcount)

    def outbox(self, ids: Iterable[str] | None = None) -> list[OutboxMessage]:
        query = "SELECT id, type, payload, created FROM outbox"
        rows = (
            self._run(query + " ORDER BY seq")
            if ids is None
            else sorted(
                self._in_rows("SELECT id, type, payload, created, seq FROM outbox WHERE id {in}", ids),
                key=lambda row: row[4],
            )
        )
        return [OutboxMessage(str(i), str(t), str(p), self._read_time(c)) for i, t, p, c, *_ in rows]

    def _write_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        self._executemany(
            "INSERT INTO outbox (id, type, payload, created) VALUES (?, ?, ?, ?)",
            [(m.id, m.type, m.payload, self._time(m.created)) for m in messages],
        )

    def deliveries(self, messages: Iterable[str] | None = None) -> list[DeliveryRecord]:
        columns = "message, endpoint, state, attempt, at, until, detail, worker, seq"
        if messages is None:
            rows = list(self._run(f"SELECT {columns} FROM deliveries ORDER BY seq"))  # noqa: S608
        else:
            rows = sorted(
                self._in_rows(f"SELECT {columns} FROM deliveries WHERE message {{in}}", messages),  # noqa: S608
                key=lambda row: row[8],
            )
        return [
            DeliveryRecord(
                str(m),
                str(e),
                str(s),
                int(n),
                self._read_time(at),
                None if u is None else self._read_time(u),
                str(d),
                str(w),
            )
            for m, e, s, n, at, u, d, w, _ in rows
        ]

    def undelivered(self, endpoint: str, since: dt.datetime, types: Sequence[str] = ()) -> int:
        # One count: each message's delivered line (and a replay after it) found by the (message, endpoint) index.
        kinds = f" AND o.type IN ({', '.join('?' * len(types))})" if types else ""
        query = (
            "SELECT COUNT(*) FROM outbox o WHERE o.created >= ?" + kinds + " AND NOT EXISTS (SELECT 1 FROM"
            " deliveries d WHERE d.message = o.id AND d.endpoint = ? AND d.state = 'delivered' AND NOT EXISTS"
            " (SELECT 1 FROM deliveries r WHERE r.message = d.message AND r.endpoint = d.endpoint"
            " AND r.state = 'replayed' AND r.seq > d.seq))"
        )
        row = self._run(query, (self._time(since), *types, endpoint)).fetchone()
        return int(row[0])

    def _write_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        self._executemany(
            "INSERT INTO deliveries (message, endpoint, state, attempt, at, until, detail, worker)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    d.message,
                    d.endpoint,
                    d.state,
                    d.attempt,
                    self._time(d.at),
                    None if d.until is None else self._time(d.until),
                    d.detail,
                    d.worker,
                )
                for d in records
            ],
        )

    def webhook_endpoint_versions(self) -> list[WebhookEndpoint]:
        rows = self._run(
            "SELECT id, version, url, secrets, events, active, recorded_at FROM webhook_endpoints"
            f" ORDER BY {self.by_id}, version"
        )
        return [
            WebhookEndpoint(
                str(i), int(v), str(u), tuple(json.loads(s)), tuple(json.loads(e)), bool(a), self._read_time(r)
            )
            for i, v, u, s, e, a, r in rows
        ]

    def _write_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._run(
            "INSERT INTO webhook_endpoints (id, version, url, secrets, events, active, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                endpoint.id,
                endpoint.version,
                endpoint.url,
                json.dumps(list(endpoint.secrets)),
                json.dumps(list(endpoint.events)),
                self._flag(endpoint.active),
                self._time(endpoint.recorded_at),
            ),
        )

    # -- raw rows, for verify ----------------------------------------------------------

    def _all_transaction_ids(self) -> list[str]:
        return [id for (id,) in self._run("SELECT id FROM transactions ORDER BY seq")]

    def _raw_rows(self, table: str, columns: str) -> Iterator[tuple[object, ...]]:
        yield from self._run(f"SELECT {columns} FROM {table}")  # noqa: S608 - names from verify, never input

    def _all_postings(self) -> Iterator[tuple[str, str, str, object]]:
        yield from self._run("SELECT transaction_id, account, asset, amount FROM postings")

    def _raw_balances(self) -> Iterator[tuple[str, str, object]]:
        yield from self._run("SELECT account, asset, amount FROM balances")  # each shard: verify adds them

    # -- writes (inside _atomic) ---------------------------------------------------

    def _fingerprints(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self._in_rows("SELECT id, fingerprint FROM transactions WHERE id {in}", ids)
        return {str(i): str(f) for i, f in rows}

    def _write_transactions(self, transactions: Sequence[Transaction]) -> None:
        if not transactions:
            return
        self._begin_write(len(transactions))
        time, money = self._time, self._money
        self._insert(
            "transactions",
            _TRANSACTION,
            (
                (
                    t.id,
                    time(t.timestamp),
                    t.description,
                    json.dumps(dict(t.metadata)),
                    t.fingerprint(),
                    t.kind,
                    t.customer,
                )
                for t in transactions
            ),
        )
        closing = [(t.customer, t.metadata["period"], t.id) for t in transactions if t.kind == TransactionKind.CLOSE]
        if closing:
            self._insert("closed_periods", "customer, period, transaction_id", closing)
        self._insert(
            "postings",
            "transaction_id, line, account, asset, amount",
            (
                (t.id, line, p.account, p.asset, money(p.amount))
                for t in transactions
                for line, p in enumerate(t.postings)
            ),
        )
        payments = [payment_of(t) for t in transactions if t.kind == PAYMENT_KIND]
        if payments:
            self._insert(
                "payments",
                "payment_id, purpose, customer, asset, amount, transaction_id",
                ((p.payment_id, p.purpose, p.customer, p.asset, money(p.amount), p.transaction_id) for p in payments),
            )
        self._write_funding(transactions)
        self._add_balances(balance_moves(transactions))

    def _add_balances(self, moves: Mapping[tuple[str, str], Decimal]) -> None:
        """Add ``moves`` to the stored balances, in the write's own shard (:attr:`_shard`)."""
        shard = self._shard
        if self.sums:
            # In key order: two writers sharing a shard lock its rows in the same order, so neither deadlocks.
            self._executemany(
                "INSERT INTO balances VALUES (?, ?, ?, ?) ON CONFLICT (account, asset, shard)"
                " DO UPDATE SET amount = balances.amount + EXCLUDED.amount",
                [(account, asset, shard, self._money(moves[account, asset])) for account, asset in sorted(moves)],
            )
            return
        for (account, asset), delta in moves.items():  # the database cannot add decimal text: Python does
            row = self._run(
                "SELECT amount FROM balances WHERE account = ? AND asset = ? AND shard = ?", (account, asset, shard)
            ).fetchone()
            total = (self._decimal(row[0]) if row else ZERO) + delta
            self._run(
                "INSERT INTO balances VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account, asset, shard) DO UPDATE SET amount = EXCLUDED.amount",
                (account, asset, shard, self._money(total)),
            )

    def _write_ratings(self, ratings: Sequence[EventRecord]) -> None:
        if not ratings:
            return
        self._begin_write(len(ratings))
        self._write_transactions([r.transaction for r in ratings])
        time, money = self._time, self._money
        self._insert(
            "events",
            "id, customer, type, timestamp, body, transaction_id",
            (
                (
                    r.event.id,
                    r.event.customer,
                    r.event.type,
                    time(r.event.timestamp),
                    r.event.canonical_json(),
                    r.transaction.id,
                )
                for r in ratings
            ),
        )
        self._insert(
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
                    money(u.before),
                    money(u.after),
                )
                for r in ratings
                for u in r.usage
            ),
        )
        self._write_charges([(r.event.id, r.event.customer, c) for r in ratings for c in r.charges])
        self._write_states(*final_states(ratings))

    def _write_corrections(
        self, corrections: Sequence[CorrectionRecord], states: Mapping[StateKey, PeriodState]
    ) -> None:
        self._write_transactions([c.transaction for c in corrections])
        self._write_charges([(c.event_id, c.customer, charge) for c in corrections for charge in c.charges])
        self._write_states(*stored_states(states))

    def _write_charges(self, rows: Sequence[tuple[str, str, ChargeRecord]]) -> None:
        """Write charge records as (event id, customer, charge)."""
        if not rows:
            return
        money = self._money
        self._insert(
            "charges",
            _CHARGE,
            (
                (
                    event_id,
                    customer,
                    c.plan,
                    c.meter,
                    group_key(c.group),
                    c.period,
                    c.model,
                    money(c.before),
                    money(c.after),
                    money(c.amount),
                    c.asset,
                    c.unit,
                    None if c.unit_price is None else money(c.unit_price),
                    "" if c.explanation is None else c.explanation,
                )
                for event_id, customer, c in rows
            ),
        )

    def _write_states(
        self, final: Mapping[StoredKey, tuple[Decimal, bool]], members: Sequence[tuple[str, str, str, str, str]]
    ) -> None:
        self._executemany(
            f"INSERT INTO period_state VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT ({self.state_key})"
            # the whole state is replaced (as SQLite's INSERT OR REPLACE did): a meter may turn unique-count
            " DO UPDATE SET quantity = EXCLUDED.quantity, is_unique = EXCLUDED.is_unique",
            [(*key, self._money(quantity), self._flag(unique)) for key, (quantity, unique) in final.items()],
        )
        self._executemany("INSERT INTO period_members VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", members)

    # -- grants and reservations (rating.core.funding) ------------------------------------------------------

    def grants(self, customers: Iterable[str] | None = None) -> dict[str, list[Grant]]:
        if customers is None:
            rows: Iterable[Sequence[Any]] = self._run(_READ_GRANTS)
        else:
            rows = self._in_rows(_READ_GRANTS + " WHERE g.customer {in}", customers)
        found: dict[str, list[Grant]] = {}
        read_time, decimal = self._read_time, self._decimal
        for customer, id, asset, amount, kind, priority, starts, expires, forfeits, _ in sorted(
            rows,
            key=lambda row: row[-1],  # in the order issued, whatever order the chunks of ids came in
        ):
            grant = Grant(
                id,
                customer,
                asset,
                decimal(amount),
                kind,
                int(priority),
                read_time(starts),
                None if expires is None else read_time(expires),
                int(forfeits),
            )
            found.setdefault(customer, []).append(grant)
        return found

    def reservations(self, ids: Iterable[str]) -> dict[str, Reservation]:
        rows = self._in_rows(_READ_RESERVATIONS + " WHERE r.id {in}", ids)
        return {reservation.id: reservation for reservation in map(self._reservation, rows)}

    def held_reservations(self) -> list[Reservation]:
        rows = self._run(_READ_RESERVATIONS + " WHERE r.state = 'held' ORDER BY t.seq")
        return [self._reservation(row) for row in rows]

    def _reservation(self, row: Sequence[Any]) -> Reservation:
        id, customer, asset, amount, expires_at, draw, state, released_by = row[:8]
        taken = tuple((account, Decimal(str(value))) for account, value in json.loads(draw))
        return Reservation(
            id, customer, asset, self._decimal(amount), self._read_time(expires_at), taken, state, released_by
        )

    def _write_funding(self, transactions: Sequence[Transaction]) -> None:
        """The grant and reservation rows ``transactions`` issue, forfeit, hold or release (inside their write)."""
        funding = [t for t in transactions if t.kind in FUNDING_KINDS]
        if not funding:
            return
        time, money = self._time, self._money
        grants, reservations, forfeits, releases = [], [], [], []
        for t in funding:
            try:
                if t.kind == TransactionKind.GRANT:
                    g = grant_of(t)
                    expires = None if g.expires is None else time(g.expires)
                    terms = (g.customer, g.id, g.asset, money(g.amount), g.kind, g.priority, time(t.timestamp))
                    grants.append((*terms, expires, 0, t.id))
                elif t.kind == TransactionKind.RESERVE:
                    r = reservation_of(t)
                    draw = json.dumps([[a, str(v)] for a, v in r.draw])
                    held = (r.id, r.customer, r.asset, money(r.amount), time(r.expires_at), draw, "held", t.id)
                    reservations.append((*held, None))
                elif t.kind == TransactionKind.FORFEIT:
                    forfeits.append(forfeited_grant(t))
                else:
                    id, state = release_state(t)
                    releases.append((state, t.id, id))
            except (KeyError, TypeError, ValueError, ArithmeticError) as error:
                raise StorageError(f"transaction {t.id} is a {t.kind} without its terms: {error!r}") from None
        # Rows first, then what changes them: a batch may issue a grant and forfeit it, hold and release.
        if grants:
            self._insert("grants", _GRANT, grants)
        if reservations:
            self._insert("reservations", _RESERVATION, reservations)
        if forfeits:
            self._executemany("UPDATE grants SET forfeits = forfeits + 1 WHERE customer = ? AND grant_id = ?", forfeits)
        if releases:
            self._executemany("UPDATE reservations SET state = ?, released_by = ? WHERE id = ?", releases)


#: Transactions with their postings, one row per posting (``{where}`` picks the transactions).
_READ_TRANSACTIONS = (
    "SELECT t.id, t.timestamp, t.description, t.metadata, p.account, p.asset, p.amount"
    " FROM transactions t LEFT JOIN postings p ON p.transaction_id = t.id {where} ORDER BY t.seq, p.line"
)

_GRANT = "customer, grant_id, asset, amount, kind, priority, starts, expires, forfeits, transaction_id"
_RESERVATION = "id, customer, asset, amount, expires_at, draw, state, transaction_id, released_by"
#: Grants with the order they were issued in (the ``seq`` of their transaction, last).
_READ_GRANTS = (
    "SELECT g.customer, g.grant_id, g.asset, g.amount, g.kind, g.priority, g.starts, g.expires, g.forfeits, t.seq"
    " FROM grants g JOIN transactions t ON t.id = g.transaction_id"
)
_READ_RESERVATIONS = (
    "SELECT r.id, r.customer, r.asset, r.amount, r.expires_at, r.draw, r.state, r.released_by"
    " FROM reservations r JOIN transactions t ON t.id = r.transaction_id"
)


def _summed(rows: Iterable[tuple[tuple[str, str], Decimal]]) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = {}
    for key, amount in rows:
        totals[key] = totals.get(key, ZERO) + amount
    return totals
