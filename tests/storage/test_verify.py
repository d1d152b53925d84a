"""rating verify: a corrupted row is caught and named, on every storage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.ledger import Posting, Transaction
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SCHEMA_VERSION, SQLiteStorage

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
