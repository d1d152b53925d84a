"""rating verify: a corrupted row is caught and named, on every storage."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.errors import StorageError
from rating.ledger import Posting, Transaction
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from tests.helpers import ROOT

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
