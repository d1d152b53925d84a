"""One schema history for both SQL databases: an ordered list of logical migrations, rendered per dialect.

Each step is written once, with the column types as placeholders (``{money}``,
``{time}``, ``{json}``, ``{flag}``, ``{seq}``) that each dialect fills in
(:data:`TYPES`); where the databases need different statements for the same
logical change (SQLite's ``json_extract`` and PostgreSQL's ``->>``), the step
names one text per dialect, and a step one database does not need is empty
there. Versions are SQLite's historical numbers (1-6): a SQLite database of any
earlier version migrates step by step. PostgreSQL numbered its own, shorter
history (1-5) before the two were merged; :data:`POSTGRES_LEGACY` says which
logical version each of those numbers is, and the migration reads an old
PostgreSQL database at that version. Steps a legacy database may already have
(PostgreSQL's hashed period-state key) are written so they can run again.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The physical type of each logical column type, per dialect. SQLite keeps amounts and times as text (exact
#: decimal text, UTC ISO text that sorts as time): its own numbers would be floats.
TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "money": "TEXT",
        "time": "TEXT",
        "json": "TEXT",
        "flag": "INTEGER",
        "seq": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    "postgres": {
        "money": "NUMERIC",
        "time": "TIMESTAMPTZ",
        "json": "JSONB",
        "flag": "BOOLEAN",
        "seq": "BIGSERIAL PRIMARY KEY",
    },
}
DIALECTS = tuple(TYPES)


@dataclass(frozen=True, slots=True)
class Migration:
    """One logical schema change: its version, why it exists, and its statements (one text, or one per dialect)."""

    version: int
    why: str
    sql: str | dict[str, str]

    def render(self, dialect: str) -> list[str]:
        """The statements of this step on ``dialect``, in order (none where the dialect needs none)."""
        text = self.sql if isinstance(self.sql, str) else self.sql.get(dialect, "")
        return [s.strip() for s in text.format(**TYPES[dialect]).split(";") if s.strip()]


_TABLES = """
    CREATE TABLE transactions (
        seq {seq},
        id TEXT NOT NULL UNIQUE,
        timestamp {time} NOT NULL,
        description TEXT NOT NULL,
        metadata {json} NOT NULL,
        fingerprint TEXT NOT NULL
    );
    CREATE TABLE postings (
        transaction_id TEXT NOT NULL REFERENCES transactions(id),
        line INTEGER NOT NULL,
        account TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount {money} NOT NULL,
        PRIMARY KEY (transaction_id, line)
    );
    CREATE INDEX postings_by_account ON postings (account, asset);
    CREATE TABLE balances (
        account TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount {money} NOT NULL,
        PRIMARY KEY (account, asset)
    );
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        type TEXT NOT NULL,
        timestamp {time} NOT NULL,
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
        before {money} NOT NULL,
        after {money} NOT NULL,
        PRIMARY KEY (event_id, meter)
    );
    CREATE TABLE charges (
        seq {seq},
        event_id TEXT NOT NULL REFERENCES events(id),
        customer TEXT NOT NULL,
        plan TEXT NOT NULL,
        meter TEXT NOT NULL,
        group_key TEXT NOT NULL,
        period TEXT NOT NULL,
        model TEXT NOT NULL,
        before {money} NOT NULL,
        after {money} NOT NULL,
        amount {money} NOT NULL,
        asset TEXT NOT NULL,
        unit TEXT NOT NULL,
        unit_price {money},
        explanation TEXT NOT NULL
    );
    CREATE INDEX charges_by_customer ON charges (customer, period);
    CREATE TABLE period_state (
        customer TEXT NOT NULL,
        meter TEXT NOT NULL,
        group_key TEXT NOT NULL,
        period TEXT NOT NULL,
        quantity {money} NOT NULL,
        is_unique {flag} NOT NULL,
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
"""

_KINDS = """
    ALTER TABLE transactions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
    ALTER TABLE transactions ADD COLUMN customer TEXT;
    UPDATE transactions SET {derive};
    CREATE INDEX transactions_by_kind ON transactions (kind, customer);
    CREATE TABLE closed_periods (
        customer TEXT NOT NULL,
        period TEXT NOT NULL,
        transaction_id TEXT NOT NULL REFERENCES transactions(id),
        PRIMARY KEY (customer, period)
    );
    INSERT INTO closed_periods SELECT customer, {period}, id FROM transactions WHERE kind = 'close';
    CREATE TABLE legacy_totals AS SELECT * FROM period_state WHERE meter LIKE 'total:%[%]%';
    DELETE FROM period_state WHERE meter LIKE 'total:%[%]%'
"""

_PAYMENTS = """
    CREATE TABLE payments (
        payment_id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        customer TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount {money} NOT NULL,
        transaction_id TEXT NOT NULL UNIQUE REFERENCES transactions(id)
    );
    INSERT INTO payments
        SELECT substr(id, 9), COALESCE({purpose}, ''), COALESCE(customer, ''), COALESCE({asset}, ''),
            COALESCE({amount}, 0), id
        FROM transactions WHERE kind = 'payment'
"""

#: Every schema change, in order, each applied exactly once.
MIGRATIONS: list[Migration] = [
    Migration(1, "the ledger, rated events, their usage and charges, and period state", _TABLES),
    Migration(2, "charges are summed per period", "CREATE INDEX charges_by_period ON charges (period, customer)"),
    Migration(3, "usage reports read events by time", "CREATE INDEX events_by_time ON events (timestamp)"),
    Migration(
        4,
        "transactions are found by kind and customer, never by an id prefix; closed periods are a table of "
        "their own, checked inside every write; positional running totals are set aside for adoption",
        {
            "sqlite": _KINDS.replace(
                "{derive}",
                "kind = CASE WHEN instr(id, ':') > 0 THEN substr(id, 1, instr(id, ':') - 1) ELSE id END,"
                " customer = json_extract(metadata, '$.customer')",
            ).replace("{period}", "json_extract(metadata, '$.period')"),
            "postgres": _KINDS.replace(
                "{derive}", "kind = split_part(id, ':', 1), customer = metadata ->> 'customer'"
            ).replace("{period}", "metadata ->> 'period'"),
        },
    ),
    Migration(
        5,
        "issued documents (invoices): numbered gaplessly per series inside the write, immutable once stored",
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
    Migration(
        6,
        "policy state moves into its namespace (rating.statekeys), where no meter name reaches it; a meter once "
        "named spend shared the cap's state",
        """
        UPDATE period_state SET meter = 'policy:spend' WHERE meter = 'spend';
        UPDATE period_state SET meter = 'policy:' || meter WHERE meter LIKE 'prepaid:%';
        UPDATE usage SET meter = 'policy:spend' WHERE meter = 'spend';
        UPDATE usage SET meter = 'policy:' || meter WHERE meter LIKE 'prepaid:%'
        """,
    ),
    Migration(
        7,
        # Group values and unique members may be 1,024 UTF-8 bytes each, and a group several of them: more than
        # a PostgreSQL B-tree entry holds (2,704 bytes). Period state is keyed there by a SHA-256 of its group
        # (convert_to is only STABLE, for the client encoding it may name; the database's UTF-8 is fixed).
        # SQLite has no such limit and keeps its primary keys. Re-runnable: PostgreSQL databases of its own
        # history 4 and 5 have it already.
        "PostgreSQL keys period state by a hash of the group (a B-tree entry holds 2,704 bytes)",
        {
            "postgres": """
            CREATE OR REPLACE FUNCTION rating_sha256(text) RETURNS bytea IMMUTABLE STRICT PARALLEL SAFE
                LANGUAGE sql AS 'SELECT sha256(convert_to($1, ''UTF8''))';
            ALTER TABLE period_state DROP CONSTRAINT IF EXISTS period_state_pkey;
            CREATE UNIQUE INDEX IF NOT EXISTS period_state_key
                ON period_state (customer, meter, rating_sha256(group_key), period);
            ALTER TABLE period_members DROP CONSTRAINT IF EXISTS period_members_pkey;
            CREATE UNIQUE INDEX IF NOT EXISTS period_members_key
                ON period_members (customer, meter, rating_sha256(group_key), period, rating_sha256(member))
            """
        },
    ),
    Migration(
        8,
        # One schema from here on: PostgreSQL's own history lacked events_by_customer and indexed postings by
        # an account prefix (text_pattern_ops), a lookup the design forbids; neither had charges by event, so
        # usage and margin reports scanned the charges table per batch of ids.
        "charges by event on both; events by customer on PostgreSQL; postings by account, not by prefix",
        {
            "sqlite": """
            CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer, timestamp);
            CREATE INDEX charges_by_event ON charges (event_id)
            """,
            "postgres": """
            CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer, timestamp);
            CREATE INDEX charges_by_event ON charges (event_id);
            DROP INDEX IF EXISTS postings_by_account;
            CREATE INDEX postings_by_account ON postings (account, asset)
            """,
        },
    ),
]
MIGRATIONS.append(
    Migration(
        9,
        # The registry of provider payment ids (rating.wallet.payment_ids) kept its entries as marker transactions
        # ``payment:ID``; they become rows keyed by the payment id, written in the same write as the marker (which
        # stays: the ledger's idempotency by transaction id still covers a replay), read without parsing metadata.
        "payments: one row per provider payment id, from its marker transaction",
        {
            "sqlite": _PAYMENTS.replace("{purpose}", "json_extract(metadata, '$.purpose')")
            .replace("{asset}", "json_extract(metadata, '$.asset')")
            .replace("{amount}", "json_extract(metadata, '$.amount')"),
            "postgres": _PAYMENTS.replace("{purpose}", "metadata ->> 'purpose'")
            .replace("{asset}", "metadata ->> 'asset'")
            .replace("{amount}", "(metadata ->> 'amount')::numeric"),
        },
    )
)

_FUNDING = """
    CREATE TABLE grants (
        customer TEXT NOT NULL,
        grant_id TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount {money} NOT NULL,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        starts {time} NOT NULL,
        expires {time},
        forfeits INTEGER NOT NULL,
        transaction_id TEXT NOT NULL UNIQUE REFERENCES transactions(id),
        PRIMARY KEY (customer, grant_id)
    );
    INSERT INTO grants
        SELECT customer, {grant}, {asset}, {amount}, {kind}, {priority}, timestamp, {expires}, 0, id
        FROM transactions WHERE kind = 'grant';
    UPDATE grants SET forfeits = (
        SELECT COUNT(*) FROM transactions f
        WHERE f.kind = 'forfeit' AND f.customer = grants.customer AND {forfeited} = grants.grant_id
    );
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount {money} NOT NULL,
        expires_at {time} NOT NULL,
        draw TEXT NOT NULL,
        state TEXT NOT NULL,
        transaction_id TEXT NOT NULL UNIQUE REFERENCES transactions(id),
        released_by TEXT UNIQUE REFERENCES transactions(id)
    );
    CREATE INDEX reservations_by_state ON reservations (state);
    INSERT INTO reservations
        SELECT substr(t.id, 9), t.customer, {t.asset}, {t.amount}, {t.expires_at}, {t.draw},
            CASE WHEN r.id IS NULL THEN 'held' WHEN {r.actual} IS NOT NULL THEN 'settled'
                WHEN {r.reason} = 'expired' THEN 'expired' ELSE 'voided' END,
            t.id, r.id
        FROM transactions t LEFT JOIN transactions r ON r.kind = 'release' AND r.id = 'release:' || substr(t.id, 9)
        WHERE t.kind = 'reserve'
"""


def _funding(field: str, cast: str = "") -> dict[str, str]:
    """One metadata field of step 11's backfill per dialect: ``{field}`` or ``{alias.field}`` in its text."""
    alias, _, name = field.rpartition(".")
    column = f"{alias}.metadata" if alias else "metadata"
    if field == "forfeited":
        column, name = "f.metadata", "grant"
    # SQLite keeps times as UTC ISO text (what SqliteStorage._time writes): the metadata's own offset may differ.
    sqlite = f"json_extract({column}, '$.{name}')"
    if cast == "time":
        sqlite = (
            f"CASE WHEN {sqlite} LIKE '%+00:00' THEN {sqlite}"
            f" ELSE strftime('%Y-%m-%dT%H:%M:%f', NULLIF({sqlite}, '')) || '+00:00' END"
        )
    elif cast == "int":
        sqlite = f"CAST({sqlite} AS INTEGER)"
    postgres = f"({column} ->> '{name}')"
    if cast:
        postgres = f"NULLIF({postgres}, '')::{ {'time': 'timestamptz', 'int': 'integer', 'money': 'numeric'}[cast] }"
    return {"sqlite": sqlite, "postgres": postgres}


def _funding_step() -> dict[str, str]:
    fields = {
        "grant": "",
        "asset": "",
        "amount": "money",
        "kind": "",
        "priority": "int",
        "expires": "time",
        "forfeited": "",
        "t.asset": "",
        "t.amount": "money",
        "t.expires_at": "time",
        "t.draw": "",
        "r.actual": "",
        "r.reason": "",
    }
    texts = {}
    for dialect in DIALECTS:
        text = _FUNDING
        for field, cast in fields.items():
            text = text.replace("{" + field + "}", _funding(field, cast)[dialect])
        texts[dialect] = text
    return texts


MIGRATIONS.append(
    Migration(
        10,
        # Grants and reservations lived only in the metadata of the transactions that issue, hold and release
        # them, parsed again on every read (each wallet customer's grants once per batch). They become rows,
        # written in the same write as those transactions (which stay: the ledger's idempotency by id covers
        # a replay), read in batches by customer or id.
        "grants and reservations: one row each, from the transactions that issue, forfeit, hold and release them",
        _funding_step(),
    )
)
MIGRATIONS.append(
    Migration(
        11,
        # Writers over disjoint customers (PostgreSQL's customer scopes) all add to the same platform accounts
        # (revenue, costs, providers): one row per (account, asset) made each wait on the other's row lock until
        # its COMMIT. Each writer adds to a shard of its own instead; a balance is the sum of its shards.
        "balances: one row per (account, asset, shard), a balance the sum of its shards",
        """
        CREATE TABLE balance_shards (
            account TEXT NOT NULL,
            asset TEXT NOT NULL,
            shard INTEGER NOT NULL,
            amount {money} NOT NULL,
            PRIMARY KEY (account, asset, shard)
        );
        INSERT INTO balance_shards SELECT account, asset, 0, amount FROM balances;
        DROP TABLE balances;
        ALTER TABLE balance_shards RENAME TO balances
        """,
    )
)
MIGRATIONS.append(
    Migration(
        12,
        # Customers lived only in a pricebook's YAML; as data (rating.customers) each change is a new version,
        # appended, never edited: the whole spec as canonical JSON text (TEXT, not JSONB: the text is compared
        # byte for byte on a replay). seq orders them across customers: its maximum is the version counter
        # every process compares to notice a change (writers are serialized, so it only grows in commit order).
        "customer versions: customers and subscriptions as data, appended with their effective instants",
        """
        CREATE TABLE customer_versions (
            seq {seq},
            customer TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            effective {time} NOT NULL,
            spec TEXT NOT NULL,
            recorded_at {time} NOT NULL,
            UNIQUE (customer, sequence)
        )
        """,
    )
)
MIGRATIONS.append(
    Migration(
        13,
        # API keys lived only in a file of hashes read at start-up; kept here, any server process sees a new or
        # revoked key at its next request. Only the SHA-256 of a key is stored, never the key. A POST made under
        # an Idempotency-Key keeps its first answer here, so that a retry reaching another process replays it.
        "API keys (hashed, revocable) and the answers of idempotent requests",
        """
        CREATE TABLE api_keys (
            name TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            created_at {time} NOT NULL,
            revoked_at {time}
        );
        CREATE TABLE idempotent_requests (
            owner TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            started_at {time} NOT NULL,
            status INTEGER,
            media_type TEXT,
            body TEXT,
            PRIMARY KEY (owner, idempotency_key)
        )
        """,
    )
)
MIGRATIONS.append(
    Migration(
        14,
        # Webhooks out (rating.outbox, rating.webhooks): a message is written in the same write as the change it
        # announces, so it exists if and only if the change committed. Delivery is an append-only log (claims with
        # a lease, outcomes, replays): several servers deliver side by side, and nothing is updated in place.
        # Endpoints are versioned the same way (a removal is an inactive version). Payloads are TEXT: sent as
        # stored, byte for byte, so a replay carries the same signature input.
        "webhooks: the outbox, its delivery log and the webhook endpoints",
        """
        CREATE TABLE outbox (
            seq {seq},
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created {time} NOT NULL
        );
        CREATE TABLE deliveries (
            seq {seq},
            message TEXT NOT NULL REFERENCES outbox(id),
            endpoint TEXT NOT NULL,
            state TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            at {time} NOT NULL,
            until {time},
            detail TEXT NOT NULL,
            worker TEXT NOT NULL
        );
        CREATE INDEX deliveries_by_message ON deliveries (message, endpoint);
        CREATE TABLE webhook_endpoints (
            seq {seq},
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            url TEXT NOT NULL,
            secrets TEXT NOT NULL,
            events TEXT NOT NULL,
            active {flag} NOT NULL,
            recorded_at {time} NOT NULL,
            UNIQUE (id, version)
        )
        """,
    )
)
SCHEMA_VERSION = MIGRATIONS[-1].version

#: A PostgreSQL database written before the histories merged, by its own version: the logical version it is at.
#: (Its version 1 already had the indexes of steps 2 and 3; its 4 was step 7, which runs again harmlessly.)
#: Merged databases are written at version 8 or later, never at one of these.
POSTGRES_LEGACY: dict[int, int] = {1: 3, 2: 4, 3: 5, 4: 5, 5: 6}


def statements(dialect: str, after: int) -> list[tuple[int, list[str]]]:
    """The steps a ``dialect`` database at logical version ``after`` still needs, each with its statements."""
    return [(m.version, m.render(dialect)) for m in MIGRATIONS if m.version > after]


def logical_version(dialect: str, stored: int) -> int:
    """The logical version of a database whose ``schema_version`` table says ``stored``."""
    if dialect == "postgres" and stored < SCHEMA_VERSION:
        return POSTGRES_LEGACY.get(stored, stored)
    return stored
