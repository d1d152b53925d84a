"""Write scopes: a customer scope excludes only writers of its customers (and global ones) on PostgreSQL.

Each test runs a second writer on a connection of its own in a thread and
asserts the ORDER in which things happened (never how fast): a writer that
must wait enters only after the holder released; one that need not enters
while the holder still holds. Memory and SQLite stay one writer at a time, but
every storage refuses a nested scope wider than the one it joins.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from rating.engine import Engine
from rating.errors import RatingError
from rating.ledger import Posting, Transaction
from rating.pricebook.model import parse_pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.postgres import PostgresStorage, customer_lock, write_lock
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import NOV, SIMPLE_PRICEBOOK, event

PRICEBOOK = SIMPLE_PRICEBOOK + "default_plan: basic\n"
#: How long a writer that should get through may take (a shared, busy machine): generous, never a speed check.
PATIENCE = 60.0
#: How long the holder keeps its scope while a writer that must wait tries to get in.
HOLD = 1.0

postgres_only = pytest.mark.skipif(not POSTGRES_URL, reason="needs RATING_TEST_POSTGRES_URL")


def move(id: str, customer: str, amount: str = "1") -> Transaction:
    """A transaction of ``customer``'s that also adds to a platform account every writer shares."""
    postings = (Posting(f"customer:{customer}:receivable", "USD", Decimal(amount)),)
    postings += (Posting("revenue:shared", "USD", -Decimal(amount)),)
    return Transaction(id, NOV, "test move", postings, {"customer": customer})


@pytest.fixture
def pair() -> Iterator[tuple[PostgresStorage, PostgresStorage]]:
    """Two connections to one new PostgreSQL schema."""
    url = postgres_url()
    first = PostgresStorage(url)
    second = PostgresStorage(url, existing=True)
    yield first, second
    first.close()
    second.close()


def in_thread(work: Callable[[], object], log: list[str], name: str) -> tuple[threading.Thread, threading.Event]:
    """Run ``work`` in a thread that logs ``name`` when it is done; the event is set then too."""
    done = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # reported by the test through the log
            failures.append(error)
            log.append(f"{name} failed: {error!r}")
        else:
            log.append(name)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def scoped(storage: Storage, customers: set[str] | None, transaction: Transaction) -> Callable[[], object]:
    """A write of ``transaction`` inside the scope of ``customers`` (None: global)."""

    def write() -> None:
        with storage.writing(customers):
            storage.append([transaction])

    return write


@postgres_only
def test_a_writer_of_another_customer_writes_while_a_customer_scope_is_held(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    mine, theirs = pair
    log: list[str] = []
    with mine.writing({"a"}):
        mine.append([move("t-a", "a")])  # holds its shard of revenue:shared until it commits
        thread, done = in_thread(scoped(theirs, {"b"}, move("t-b", "b")), log, "b written")
        assert done.wait(PATIENCE), "a writer of b waited for the scope of a"
        log.append("a committed")
    thread.join(PATIENCE)
    assert log == ["b written", "a committed"]
    assert mine.balances(["revenue:shared"]) == {("revenue:shared", "USD"): Decimal(-2)}
    assert mine.verify() == []


@pytest.mark.parametrize(
    ("held", "wanted"),
    [({"a"}, {"a", "c"}), ({"a"}, None), (None, {"b"})],
    ids=["same customer", "customer before global", "global before customer"],
)
@postgres_only
def test_a_writer_that_overlaps_the_held_scope_waits_until_it_commits(
    pair: tuple[PostgresStorage, PostgresStorage], held: set[str] | None, wanted: set[str] | None
) -> None:
    mine, theirs = pair
    log: list[str] = []
    with mine.writing(held):
        mine.append([move("t-1", "a")])
        thread, done = in_thread(scoped(theirs, wanted, move("t-2", max(wanted or {"b"}))), log, "second written")
        assert not done.wait(HOLD)  # gives it every chance to get in too early; the log below is what counts
        log.append("first committed")
    thread.join(PATIENCE)
    assert log == ["first committed", "second written"]
    assert mine.balances(["revenue:shared"]) == {("revenue:shared", "USD"): Decimal(-2)}
    assert mine.verify() == []


def test_customer_lock_keys_are_stable_signed_64_bit_hashes() -> None:
    assert customer_lock("acme") == customer_lock("acme")  # the same in every call
    assert customer_lock("acme") != customer_lock("acme2")
    assert all(-(2**63) <= customer_lock(c) < 2**63 for c in ("", "a", "x" * 500))
    assert customer_lock("acme", "schema_one") != customer_lock("acme", "schema_two")  # two ledgers never wait
    assert write_lock("schema_one") != write_lock("schema_two")
    assert (
        customer_lock("acme") == 1697234557675249467
    )  # blake2b, 8 bytes: pinned, so a change of key is a visible break


def test_a_nested_scope_wider_than_the_one_it_joins_fails_loudly(storage: Storage) -> None:
    with storage.writing({"a", "b"}):
        with storage.writing({"a"}):  # narrower: joins
            storage.append([move("t-a", "a")])
        with pytest.raises(RatingError, match="customers \\['c'\\]"):
            storage.writing({"c"}).__enter__()
        with pytest.raises(RatingError, match="the global scope"):
            storage.writing().__enter__()
        with pytest.raises(RatingError, match="customers \\['c'\\]"):
            storage.append([move("t-c", "c")])
    with storage.writing(), storage.writing({"z"}):  # the global scope holds every customer
        storage.append([move("t-z", "z")])
    assert set(storage.transactions_by_id(["t-a", "t-c", "t-z"])) == {"t-a", "t-z"}


def engine_on(url: str, registry: Registry, existing: bool = True) -> Engine:
    return Engine(parse_pricebook(PRICEBOOK, registry), PostgresStorage(url, existing=existing), registry)


@postgres_only
def test_batches_over_disjoint_customers_side_by_side_post_exact_totals() -> None:
    registry = Registry.load()
    url = postgres_url()
    first, second = engine_on(url, registry, existing=False), engine_on(url, registry)
    groups = {"left": ["l1", "l2", "l3"], "right": ["r1", "r2", "r3"]}

    def stream(name: str) -> list:  # type: ignore[type-arg]
        start = NOV + dt.timedelta(hours=1)
        return [
            event(f"{name}-{i}", customer=groups[name][i % 3], at=start + dt.timedelta(seconds=i), tokens=7, model="m")
            for i in range(600)
        ]

    log: list[str] = []
    reports = {}

    def rate(engine: Engine, name: str) -> Callable[[], object]:
        return lambda: reports.__setitem__(name, engine.rate_batch(stream(name), chunk_size=50))

    threads = [in_thread(rate(first, "left"), log, "left")[0], in_thread(rate(second, "right"), log, "right")[0]]
    for thread in threads:
        thread.join(PATIENCE * 5)
    assert sorted(log) == ["left", "right"]
    assert reports["left"].posted == reports["right"].posted == 600
    reference = Engine(parse_pricebook(PRICEBOOK, registry), PostgresStorage(postgres_url()), registry)
    reference.rate_batch(stream("left") + stream("right"))
    assert first.storage.balances() == reference.storage.balances()
    assert first.storage.verify() == []
    for engine in (first, second, reference):
        engine.storage.close()


@postgres_only
def test_an_event_id_another_customers_writer_is_storing_is_refused_as_a_conflict() -> None:
    registry = Registry.load()
    url = postgres_url()
    first, second = engine_on(url, registry, existing=False), engine_on(url, registry)
    log: list[str] = []
    reports = {}
    with first.storage.writing({"a"}):
        first.rate_batch([event("shared-id", customer="a", tokens=5, model="m")])  # stored, not yet committed
        thread, done = in_thread(
            lambda: reports.__setitem__(
                "b", second.rate_batch([event("shared-id", customer="b", tokens=9, model="m")])
            ),
            log,
            "b rated",
        )
        done.wait(HOLD)  # it may reach the events' unique index and wait on it there
        log.append("a committed")
    thread.join(PATIENCE)
    assert log == ["a committed", "b rated"]
    assert reports["b"].posted == 0
    assert [r.code for r in reports["b"].rejected] == [Refusal.DUPLICATE_CONFLICT]
    assert first.storage.rated_events(["shared-id"])["shared-id"].customer == "a"
    assert first.storage.verify() == []
    first.storage.close()
    second.storage.close()


@postgres_only
def test_a_scope_of_more_customers_than_it_locks_one_by_one_takes_the_global_lock(
    pair: tuple[PostgresStorage, PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rating.storage.postgres.CUSTOMER_LOCKS", 2)
    mine, theirs = pair
    log: list[str] = []
    with mine.writing({"a", "b", "c"}):  # three customers: more than the two it may lock one by one
        mine.append([move("t-a", "a")])
        thread, done = in_thread(scoped(theirs, {"z"}, move("t-z", "z")), log, "z written")
        assert not done.wait(HOLD)
        log.append("a, b, c committed")
    thread.join(PATIENCE)
    assert log == ["a, b, c committed", "z written"]
