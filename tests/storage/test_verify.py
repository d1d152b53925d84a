"""rating verify: a corrupted row is caught and named, on every storage."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.errors import StorageError
from rating.ledger import Posting, Transaction
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from tests.conftest import POSTGRES_URL, STORAGE_KINDS, open_kind, postgres_url
from tests.helpers import EXAMPLE, ROOT

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def transfer(id: str, amount: str) -> Transaction:
    return Transaction(id, AT, "t", (Posting("a", "USD", Decimal(amount)), Posting("b", "USD", -Decimal(amount))))


def corrupt(storage: Storage) -> None:
    """Change one posting behind the storage's back."""
    if isinstance(storage, MemoryStorage):
        original = storage._transactions["t1"]
        bad = (Posting("a", "USD", Decimal("1.01")), original.postings[1])
        object.__setattr__(original, "postings", bad)
    elif isinstance(storage, SQLiteStorage):
        storage._db.execute("UPDATE postings SET amount = '1.01' WHERE transaction_id = 't1' AND line = 0")
    else:
        storage._db.execute("UPDATE postings SET amount = 1.01 WHERE transaction_id = 't1' AND line = 0")  # type: ignore[attr-defined]


def test_verify_catches_a_corrupted_posting(storage: Storage) -> None:
    storage.append([transfer("t1", "1.00"), transfer("t2", "2.50")])
    assert storage.verify() == []
    corrupt(storage)
    assert storage.verify() == [
        "transaction t1 does not balance: USD off by 0.01",
        "balance of a in USD is 3.50, its postings sum to 3.51",
    ]


@pytest.fixture(params=[kind for kind in STORAGE_KINDS if kind != "memory"])  # memory holds Decimal objects
def stored_as_text(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A SQL storage, whose amounts can be damaged from outside."""
    with open_kind(request.param, tmp_path) as storage:
        yield storage


def test_verify_names_a_payment_row_that_disagrees_with_its_marker(stored_as_text: Storage) -> None:
    from rating.wallet.payment_ids import Purpose, payment_marker

    stored_as_text.append([payment_marker("pi_1", Purpose.TOP_UP, "acme", "USD", Decimal("12.50"), AT)])
    assert stored_as_text.verify() == []
    stored_as_text._db.execute("UPDATE payments SET customer = 'globex'")  # type: ignore[attr-defined]
    assert stored_as_text.verify() == ["payment 'pi_1' does not agree with its marker transaction 'payment:pi_1'"]


@pytest.mark.parametrize("huge", ["1E+999999999", "1e130000", "-1E-999999999"])
def test_verify_names_an_amount_no_sum_can_hold_instead_of_crashing(stored_as_text: Storage, huge: str) -> None:
    storage = stored_as_text
    storage.append([transfer("t1", "1.00"), transfer("t2", "2.50")])
    value = f"'{huge}'" if isinstance(storage, SQLiteStorage) else f"'{huge}'::numeric"
    if not isinstance(storage, SQLiteStorage) and "999999999" in huge:
        value = "'1e130000'::numeric"  # NUMERIC holds no larger exponent
    storage._db.execute(f"UPDATE postings SET amount = {value} WHERE transaction_id = 't1' AND line = 0")  # type: ignore[attr-defined]
    problems = storage.verify()
    assert problems and problems[0].startswith("a posting of transaction t1 to a has amount")


def test_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    with SQLiteStorage(db) as storage:
        storage.append([transfer("t1", "1.00")])
    assert main(["verify", "--db", str(db)]) == 0
    assert "0 problems, 1 transactions sound" in capsys.readouterr().out
    with SQLiteStorage(db) as storage:
        corrupt(storage)
    assert main(["verify", "--db", str(db)]) == 1
    captured = capsys.readouterr()
    assert "transaction t1 does not balance: USD off by 0.01" in captured.err and "2 problems" in captured.out
    assert main(["db", "migrate", "--db", str(db)]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out


def _sqlite_with_one_transfer(path: Path) -> None:
    with SQLiteStorage(path) as storage:
        storage.append([transfer("t1", "1.00")])


DAMAGE = {
    "posting": (
        "UPDATE postings SET amount = 'abc' WHERE line = 0",
        "a posting of transaction t1 to a has amount 'abc'",
    ),
    "balance": ("UPDATE balances SET amount = 'zzz' WHERE account = 'b'", "the balance of b in USD is 'zzz'"),
    "metadata": ("UPDATE transactions SET metadata = '{not json'", "transaction t1 has metadata that is not JSON"),
    "dropped table": ("DROP TABLE postings", "the database is damaged: no such table: postings"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_verify_names_the_damage_of_a_sqlite_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    _sqlite_with_one_transfer(db)
    statement, problem = DAMAGE[name]
    with sqlite3.connect(db) as raw:
        raw.execute(statement)
    raw.close()
    assert main(["verify", "--db", str(db)]) == 1
    captured = capsys.readouterr()
    assert problem in captured.err and "Traceback" not in captured.err


def test_a_command_tripping_on_a_damaged_event_body_says_so_in_one_line_that_verify_said_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    events = write_demo_events(tmp_path / "events.jsonl", 5)
    assert main(["rate", str(events), "-p", str(EXAMPLE), "--db", str(db)]) == 0
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE events SET body = '[]' WHERE id = 'req_7_0000002'")
    raw.close()
    capsys.readouterr()
    assert main(["verify", "--db", str(db)]) == 1
    assert "the body of event req_7_0000002 cannot be read: ValidationError" in capsys.readouterr().err
    assert main(["usage", "--db", str(db), "--period", "2026-11", "-p", str(EXAMPLE)]) == 3  # unusable database
    err = capsys.readouterr().err
    assert err.startswith("rating: error: damaged: ") and "the body of event req_7_0000002" in err
    assert len(err.splitlines()) == 1 and "run rating verify" in err


def test_random_bytes_in_the_middle_of_the_file_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    _sqlite_with_one_transfer(db)
    data = bytearray(db.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2048] = bytes(range(256)) * 8
    data[100:200] = bytes(100)  # the header too
    db.write_bytes(bytes(data))
    assert main(["verify", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert ("damaged" in err or "cannot open as a rating database" in err) and "Traceback" not in err


def test_a_full_disk_says_the_disk_is_full_and_writes_nothing(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "r.db") as storage:
        storage.append([transfer("t0", "1.00")])
        pages = storage._db.execute("PRAGMA page_count").fetchone()[0]
        storage._db.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page
        big = [transfer(f"t{i}", "1.00") for i in range(1, 2_000)]
        with pytest.raises(StorageError, match="the disk is full"):
            storage.append(big)
        assert storage.count_transactions() == 1 and storage.verify() == []


def test_balance_and_verify_work_on_a_read_only_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    with SQLiteStorage(db) as storage:
        storage.append([transfer("t1", "1.00")])
    db.chmod(0o444)
    try:
        assert main(["verify", "--db", str(db)]) == 0
        assert main(["balance", "--db", str(db), "-o", "json"]) == 0
        out = capsys.readouterr().out
        assert '"account": "a"' in out
        with SQLiteStorage(db, read_only=True) as storage, pytest.raises(StorageError, match="read-only"):
            storage.append([transfer("t2", "1.00")])
    finally:
        db.chmod(0o644)


def test_reading_commands_never_migrate_and_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "legacy.db"
    shutil.copy(ROOT / "tests" / "fixtures" / "legacy-v3.db", db)
    before = db.read_bytes()
    assert main(["balance", "--db", str(db)]) == 3  # nothing done
    err = capsys.readouterr().err
    assert "schema_outdated: " in err and "run rating db migrate" in err
    assert db.read_bytes() == before
    assert main(["db", "migrate", "--db", str(db)]) == 0
    assert main(["verify", "--db", str(db)]) == 0


# -- the corruption fuzzer: whenever a command fails on a damaged database, verify has reported the damage -----------

#: What a damaged cell may hold instead: text no reader expects, amounts beyond any context, JSON of the wrong shape.
HOSTILE = [
    "abc", "", " ", "1E+999999999", "1e130000", "-1E-999999999", "NaN", "-Infinity", "sNaN", "1_000", "0x10",
    "{}", "[]", "[1]", '{"a":', "null", '"text"', "2026-13-45T25:61:00", "9999-12-31T23:59:59+00:00", "\x00",
    "é" * 300, 7, -1, 1.5, 2**62,
]  # fmt: skip
#: Hostile values per PostgreSQL column type (the column refuses the others).
HOSTILE_SQL = {
    "numeric": ["NaN", "Infinity", "-Infinity", "1e130000", "-1e-16000", "0", "1e38"],
    "jsonb": ["{}", "[]", "null", '"text"', "[1, 2]", '{"customer": 5, "period": []}', "1e999"],
    "timestamp with time zone": ["infinity", "-infinity", "294276-12-31 23:59:59+00", "4713-01-01 00:00:00+00 BC"],
    "integer": ["0", "-1", "2147483647"],
    "bigint": ["0", "-1", "9223372036854775807"],
}
#: Runs per storage (each damages one cell and runs every reading command), and the seed: more with the variables.
FUZZ_RUNS = int(os.environ.get("RATING_VERIFY_FUZZ_RUNS", "16"))
FUZZ_SEED = int(os.environ.get("RATING_VERIFY_FUZZ_SEED", "20"))


def read_commands(db: str, invoice: str) -> dict[str, list[str]]:
    """Every command that only reads the ledger, as a user would run it on the populated database."""
    book = str(EXAMPLE)
    period = ["--period", "2026-11", "-p", book]
    return {
        "balance": ["balance", "--db", db, "-o", "json"],
        "balance customer": ["balance", "initech", "--db", db],
        "usage": ["usage", "--db", db, *period, "--group-by", "customer"],
        "margin": ["margin", "--db", db, *period],
        "invoice list": ["invoice", "list", "--db", db, "-o", "json"],
        "invoice show": ["invoice", "show", invoice, "--db", db],
        "statement show": ["statement", "show", "--db", db, *period, "--customer", "initech", "-o", "json"],
        "statement export": ["statement", "export", "--db", db, *period],
        "simulate ledger": ["simulate", "--db", db, "--from", "2026-11-01", "--to", "2026-12-01",
                            "--baseline", "ledger", "--vs", book],
        "rerate dry run": ["rerate", "--db", db, "--from", "2026-11-01", "--to", "2026-12-01", "-p", book,
                           "--dry-run"],
    }  # fmt: skip


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str, str]:
    """Run a command in-process: its exit code (or the exception a traceback would show) and what it wrote."""
    try:
        code: int | str = main(argv)
    except SystemExit as exit:  # argparse
        code = int(exit.code or 0)
    except Exception as error:  # noqa: BLE001 - what a user would see as a traceback
        code = f"traceback: {type(error).__name__}: {error}"[:300]
    captured = capsys.readouterr()
    return code, captured.err


def populate(db: str, tmp: Path) -> str:
    """A ledger with rated events, a closed month, issued invoices, a payment, a credit note and a wallet deposit."""
    from rating.registry import Registry
    from rating.wallet.wallets import Wallets

    events = write_demo_events(tmp / "events.jsonl", 40)
    assert main(["rate", str(events), "-p", str(EXAMPLE), "--db", db]) == 0
    with Registry.load().open_storage(db) as storage:
        Wallets(storage).deposit("initech", "CREDITS", Decimal(500), "deposit-1")
    assert main(["close-period", "--db", db, "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    issue = ["invoice", "issue", "--db", db, "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing]
    assert main([*issue, "--date", "2026-12-01"]) == 1  # initech pays in CREDITS: refused, the others issued
    number = "INV-2026-000001"
    assert main(["invoice", "pay", number, "--db", db, "--amount", "0.01", "--reference", "wire-1"]) == 0
    credit = ["invoice", "credit", number, "--db", db, "--line", "1", "--amount", "0.01", "--reference", "cn-1"]
    assert main(credit) == 0
    return number


class SQLiteCells:
    """Damages one cell of a copy of a populated SQLite file."""

    def __init__(self, pristine: Path, work: Path) -> None:
        self.pristine, self.work = pristine, work
        with sqlite3.connect(pristine) as db:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}  # noqa: S608
            self.cells = [
                (table, column, counts[table])
                for table in tables
                if table != "sqlite_sequence" and counts[table]
                for (_, column, *_rest) in db.execute(f"PRAGMA table_info({table})")
            ]
        db.close()

    def damage(self, rng: random.Random) -> str:
        shutil.copy(self.pristine, self.work)
        db = sqlite3.connect(self.work, isolation_level=None)
        try:
            while True:  # until a cell takes the value (a key column may refuse it)
                table, column, rows = rng.choice(self.cells)
                value = rng.choice(HOSTILE)
                row = db.execute(f"SELECT rowid FROM {table} LIMIT 1 OFFSET ?", (rng.randrange(rows),)).fetchone()  # noqa: S608
                try:
                    db.execute(f'UPDATE {table} SET "{column}" = ? WHERE rowid = ?', (value, row[0]))  # noqa: S608
                    return f"{table}.{column} of row {row[0]} = {value!r}"[:200]
                except sqlite3.IntegrityError:
                    continue
        finally:
            db.close()

    def restore(self) -> None:
        """Nothing to undo: the next damage starts from a fresh copy."""


def fuzz(damage: Callable[[random.Random], str], restore: Callable[[], None], db: str, invoice: str,
         capsys: pytest.CaptureFixture[str], seed: int) -> list[str]:  # fmt: skip
    """Damage one cell per run; return what broke the rule: a traceback, or a command failing where verify was happy."""
    rng = random.Random(seed)
    broken = []
    commands = read_commands(db, invoice)
    for _ in range(FUZZ_RUNS):
        what = damage(rng)
        try:
            verified, said = run(["verify", "--db", db], capsys)
            if not isinstance(verified, int):
                broken.append(f"{what}: verify {verified}")
                continue
            for name, argv in commands.items():
                code, err = run(argv, capsys)
                if not isinstance(code, int):
                    broken.append(f"{what}: {name} {code}")
                elif code != 0 and verified == 0:
                    broken.append(f"{what}: {name} failed ({err.strip()[:150]}) but verify found nothing")
        finally:
            restore()
    return broken


@pytest.fixture(scope="module")
def populated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("populated")
    number = populate(str(tmp / "pristine.db"), tmp)
    return tmp / "pristine.db", number


def test_a_command_fails_on_a_damaged_sqlite_file_only_where_verify_names_the_damage(
    populated_sqlite: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pristine, number = populated_sqlite
    work = tmp_path / "damaged.db"
    shutil.copy(pristine, work)
    for name, argv in read_commands(str(work), number).items():  # undamaged, every command works
        assert run(argv, capsys)[0] == 0, name
    cells = SQLiteCells(pristine, work)
    broken = fuzz(cells.damage, cells.restore, str(work), number, capsys, seed=FUZZ_SEED)
    assert not broken, "\n".join(broken)


class PostgresCells:
    """Damages one cell of a populated PostgreSQL schema, and puts it back afterwards."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.db = psycopg.connect(url, autocommit=True)
        self.cells = [
            (table, column, kind, rows)
            for table, column, kind in self.db.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name <> 'schema_version'"
            ).fetchall()
            if (rows := self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
        ]
        self.undo: tuple[str, str, str, object, object] | None = None

    def damage(self, rng: random.Random) -> str:
        import psycopg

        while True:
            table, column, kind, rows = rng.choice(self.cells)
            values = HOSTILE_SQL.get(kind, [v for v in HOSTILE if isinstance(v, str) and "\x00" not in v])
            value = rng.choice(values)
            pick = f'SELECT ctid, "{column}"::text FROM {table} OFFSET %s LIMIT 1'  # noqa: S608
            where, original = self.db.execute(pick, (rng.randrange(rows),)).fetchone()
            try:
                (moved,) = self.db.execute(
                    f'UPDATE {table} SET "{column}" = %s::{kind} WHERE ctid = %s RETURNING ctid',  # noqa: S608
                    (value, where),
                ).fetchone()
            except psycopg.Error:  # the column refuses it (a key, a constraint): another cell
                continue
            self.undo = (table, column, kind, original, moved)
            return f"{table}.{column} = {value!r}"[:200]

    def restore(self) -> None:
        assert self.undo is not None
        table, column, kind, original, moved = self.undo
        restore = f'UPDATE {table} SET "{column}" = %s::{kind} WHERE ctid = %s'  # noqa: S608
        self.db.execute(restore, (original, moved))


@pytest.mark.skipif(not POSTGRES_URL, reason="needs RATING_TEST_POSTGRES_URL")
def test_a_command_fails_on_a_damaged_postgres_schema_only_where_verify_names_the_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_url()
    number = populate(url, tmp_path)
    for name, argv in read_commands(url, number).items():
        assert run(argv, capsys)[0] == 0, name
    cells = PostgresCells(url)
    try:
        broken = fuzz(cells.damage, cells.restore, url, number, capsys, seed=FUZZ_SEED)
    finally:
        cells.db.close()
    assert not broken, "\n".join(broken)


def test_verify_names_grant_and_reservation_rows_that_disagree_with_their_transactions(
    stored_as_text: Storage,
) -> None:
    from rating.wallet.wallets import Wallets

    wallets = Wallets(stored_as_text, lambda: AT)
    wallets.deposit("walt", "USD", Decimal(10), "d1")
    wallets.grant("walt", "USD", Decimal(5), "promo", expires=AT + dt.timedelta(days=1))
    wallets.reserve("walt", "USD", Decimal(2), "r1", dt.timedelta(hours=1))
    wallets.reserve("walt", "USD", Decimal(1), "r2", dt.timedelta(hours=1))
    wallets.void("r2")
    assert stored_as_text.verify() == []
    run = stored_as_text._db.execute  # type: ignore[attr-defined]
    run("UPDATE grants SET priority = 7")
    run("UPDATE reservations SET state = 'held', released_by = NULL WHERE id = 'r2'")
    run("UPDATE reservations SET draw = '[[\"customer:walt:wallet\", \"2\"]]' WHERE id = 'r1'")
    assert sorted(stored_as_text.verify()) == [  # in the order of the rows: PostgreSQL moves an updated one
        "grant 'promo' of 'walt' does not agree with its transaction 'grant:walt:promo'",
        "reservation 'r1' does not agree with its transaction 'reserve:r1'",
        "reservation 'r2' is 'held', its ledger says voided (by 'release:r2')",
    ]
    run("DELETE FROM reservations WHERE id = 'r2'")
    run("UPDATE grants SET priority = 0, forfeits = 3")
    assert sorted(stored_as_text.verify()) == [
        "grant 'promo' of 'walt' counts 3 forfeitures, the ledger holds 0",
        "reservation 'r1' does not agree with its transaction 'reserve:r1'",
        "reservation transaction 'reserve:r2' has no reservation row",
    ]


def test_verify_names_customer_versions_that_are_not_json_objects_or_not_numbered_in_order(tmp_path: Path) -> None:
    from rating.records import CustomerVersion

    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with SQLiteStorage(tmp_path / "rating.db") as storage:
        storage.append_customer_version(CustomerVersion("acme", 1, at, '{"plan":"basic"}', at))
        storage.append_customer_version(CustomerVersion("acme", 2, at, '{"plan":"pro"}', at))
        assert storage.verify() == []
        storage._db.execute("UPDATE customer_versions SET spec = '[1]' WHERE sequence = 1")
        storage._db.execute("UPDATE customer_versions SET sequence = 5 WHERE sequence = 2")
        assert storage.verify() == [
            "version 1 of customer 'acme' holds '[1]', not a JSON object",
            "the versions of customer 'acme' are not numbered 1 to 2",
        ]
