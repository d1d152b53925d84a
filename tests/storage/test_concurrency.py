"""Several processes against one database: no overdraft, no lost posting, no double posting.

SQLite serialises writers with BEGIN IMMEDIATE, PostgreSQL with an advisory lock;
each check (idempotency, limits, period-state compare-and-set) runs inside that
write transaction. A killed process leaves every transaction whole or absent.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from rating.engine import Engine
from rating.errors import InsufficientFunds
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage
from rating.wallet.wallets import Wallets
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import SIMPLE_PRICEBOOK, balances_under, event

WORKERS = 8
CUSTOMERS = ["a", "b", "c"]
PRICEBOOK = SIMPLE_PRICEBOOK + "default_plan: basic\n"


def database_url(kind: str, directory: Path) -> str:
    return str(directory / "shared.db") if kind == "sqlite" else postgres_url()


KINDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


def worker(url: str, number: int) -> tuple[int, int]:
    """Reserve, settle, void and rate against shared wallets; returns (reservations made, settled)."""
    registry = Registry.load()
    storage = registry.open_storage(url)
    wallets = Wallets(storage)
    engine = Engine(parse_pricebook(PRICEBOOK, registry), storage, registry)
    rng = random.Random(number)
    made = settled = 0
    for i in range(20):
        # Every worker rates the same events: each must land exactly once.
        engine.rate_batch([event(f"shared-{i}", customer="acme", tokens=10, model="m")])
        customer = rng.choice(CUSTOMERS)
        try:
            wallets.reserve(
                customer, "USD", Decimal(rng.randint(1, 30)), f"w{number}-{i}", timeout=dt.timedelta(hours=1)
            )
        except InsufficientFunds:
            continue
        made += 1
        if rng.random() < 0.6:
            wallets.settle(f"w{number}-{i}", Decimal(rng.randint(0, 35)), "revenue:agents")
            settled += 1
        else:
            wallets.void(f"w{number}-{i}")
    storage.close()
    return made, settled


@pytest.mark.parametrize("kind", KINDS)
def test_eight_processes_never_overdraw_lose_or_double_post(kind: str, tmp_path: Path) -> None:
    url = database_url(kind, tmp_path)
    registry = Registry.load()
    with registry.open_storage(url) as storage:
        wallets = Wallets(storage)
        for customer in CUSTOMERS:
            wallets.deposit(customer, "USD", Decimal(100), f"seed-{customer}")
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        results = pool.starmap(worker, [(url, n) for n in range(WORKERS)])
    with registry.open_storage(url) as storage:
        assert storage.verify() == []
        balances = balances_under(storage, "customer:")
        for customer in CUSTOMERS:
            assert -balances.get((f"customer:{customer}:wallet", "USD"), Decimal(0)) >= 0
            assert balances.get((f"customer:{customer}:held", "USD"), Decimal(0)) == 0  # all settled or voided
        ids = [t.id for t in storage.transactions()]
        assert sum(made for made, _ in results) == len([i for i in ids if i.startswith("reserve:")])
        assert len([i for i in ids if i.startswith("release:")]) == sum(made for made, _ in results)
        assert len([i for i in ids if i.startswith("rating:shared-")]) == 20
        # Rated concurrently, the shared events still telescope: 20 calls at 0.01 and 200 tokens at 0.001.
        assert balances[("customer:acme:receivable", "USD")] == Decimal("0.40")
        assert len(ids) == len(set(ids))


@pytest.mark.parametrize("kind", KINDS)
def test_a_killed_batch_leaves_whole_transactions_and_a_replay_completes(kind: str, tmp_path: Path) -> None:
    url = database_url(kind, tmp_path)
    book = tmp_path / "book.yaml"
    book.write_text(PRICEBOOK)
    events = tmp_path / "events.jsonl"
    count = 30_000
    with events.open("w") as out:
        for i in range(count):
            out.write(event(f"e{i}", customer=f"c{i % 50}", tokens=i % 997, model="m").model_dump_json() + "\n")
    command = [sys.executable, "-m", "rating", "rate", str(events), "-p", str(book), "--db", url]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = Registry.load()
    deadline = time.monotonic() + 60
    with registry.open_storage(url) as storage:
        while time.monotonic() < deadline and process.poll() is None:
            if storage.transaction("rating:e6000") is not None:  # a few chunks are in
                break
            time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with registry.open_storage(url) as storage:
        assert storage.verify() == []  # each transaction whole or absent
        done = len(list(storage.transactions()))
    assert 0 < done < count, "the kill should land in the middle of the batch"
    replay = subprocess.run(command, capture_output=True, text=True, check=False)
    assert replay.returncode == 0, replay.stderr
    assert f"{count - done:,} events, {done:,} already posted" in replay.stderr
    with registry.open_storage(url) as storage:
        assert storage.verify() == []
        assert len(list(storage.transactions())) == count


@pytest.mark.parametrize("kind", KINDS)
def test_eight_rate_commands_over_shared_customers_all_finish_and_match_a_sequential_run(
    kind: str, tmp_path: Path
) -> None:
    """Started together on a new database: each migrates or finds it migrated, none gives up, nothing differs."""
    url = database_url(kind, tmp_path)
    book = tmp_path / "book.yaml"
    book.write_text(PRICEBOOK)
    files = []
    for number in range(WORKERS):
        path = tmp_path / f"events-{number}.jsonl"
        with path.open("w") as out:
            for i in range(1_500):
                customer = f"c{(i * 7 + number) % 40}"  # every customer is in several files
                out.write(event(f"w{number}-{i}", customer=customer, tokens=i % 1_300, model="m").model_dump_json())
                out.write("\n")
        files.append(path)
    commands = [[sys.executable, "-m", "rating", "rate", str(f), "-p", str(book), "--db", url] for f in files]
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    outcomes = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in processes]
    for process in processes:
        if process.stderr:
            process.stderr.close()
    assert [code for code, _ in outcomes] == [0] * WORKERS, [err for code, err in outcomes if code]
    sequential = tmp_path / "sequential.db"
    for command in commands:
        subprocess.run([*command[:-1], str(sequential)], check=True, capture_output=True)
    registry = Registry.load()
    with registry.open_storage(url) as together, registry.open_storage(str(sequential)) as alone:
        assert together.verify() == [] and alone.verify() == []
        assert together.balances() == alone.balances()


def test_opening_waits_for_a_lock_held_while_the_file_switches_to_write_ahead_logging(tmp_path: Path) -> None:
    """SQLite refuses that switch at once, not after its busy wait, while another process writes.

    Eight `rating rate` commands on a new file met exactly this: one migrating, the
    others switching. Opening must wait for the lock as every other write does.
    """
    path = tmp_path / "new.db"
    holder = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False
    )  # a rollback-journal file, as SQLite creates it
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        storage = SQLiteStorage(path)
    finally:
        released.join()
        holder.close()
    with storage:
        assert storage.schema_version() > 0
        assert storage._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_write_scope_belongs_to_the_thread_that_opened_it() -> None:
    """A second thread on the same storage waits for the first thread's write scope; it never joins it unlocked."""
    storage = MemoryStorage()
    inside, release, joined = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with storage.writing():
            inside.set()
            release.wait(10)

    def second() -> None:
        inside.wait(10)
        with storage.writing():
            joined.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    assert not joined.wait(0.3), "the second thread entered while the first held the write scope"
    release.set()
    for thread in threads:
        thread.join(10)
    assert joined.is_set()
