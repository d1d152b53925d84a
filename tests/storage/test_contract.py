"""The storage contract, run against every adapter (memory, SQLite and PostgreSQL when a server is given).

The contract itself is :class:`rating.testing.StorageContract`, the suite third-party adapters run too;
below it, what the engine relies on beyond it, end to end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.core.charges import explanation_of
from rating.engine import Engine
from rating.errors import EventConflict, StorageError
from rating.events import UsageEvent
from rating.ledger import Posting, Transaction, imbalance
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage import StaleState, Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from rating.testing import StorageContract
from tests.conftest import POSTGRES_URL, STORAGE_KINDS, open_kind, postgres_url
from tests.helpers import NOV, SIMPLE_PRICEBOOK, balances_under, event

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        store = MemoryStorage()
        yield store
        store.close()


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        store = SQLiteStorage(tmp_path / "rating.db")
        yield store
        store.close()


@pytest.mark.skipif(POSTGRES_URL is None, reason="RATING_TEST_POSTGRES_URL is not set")
class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        from rating.storage.postgres import PostgresStorage

        store = PostgresStorage(postgres_url())
        yield store
        store.close()


def transfer(id: str, amount: str, asset: str = "USD") -> Transaction:
    return Transaction(
        id, AT, "transfer", (Posting("a", asset, Decimal(amount)), Posting("b", asset, -Decimal(amount)))
    )


def test_rated_events_are_recorded_once_and_conflicts_name_the_id(
    storage: Storage, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry)
    first = engine.rate(event("e1", tokens=1200, model="m"))
    assert first is not None
    assert engine.rate(event("e1", tokens=1200, model="m")) is None
    with pytest.raises(EventConflict, match="event e1 was already rated with different content"):
        engine.rate(event("e1", tokens=1300, model="m"))
    stored = [c.charge for c in storage.charges("acme")]
    assert [c.amount for c in stored] == [Decimal("0.01"), Decimal("1.000") + Decimal("0.1000")]
    assert (
        explanation_of(stored[1], engine.catalog)
        == "1,000 tokens x 0.001 USD (tier 1) + 200 tokens x 0.0005 USD (tier 2) = 1.1000 USD"
    )
    assert balances_under(storage, "customer:acme:") == {("customer:acme:receivable", "USD"): Decimal("1.1100")}


def test_state_moved_by_another_writer_is_detected(
    storage: Storage, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry)
    stale = engine.quote(event("e2", tokens=10, model="m"))
    engine.rate(event("e1", tokens=10, model="m"))
    with pytest.raises(StaleState):
        storage.record([stale])
    assert storage.rated_events(["e2"]) == {}


def test_unique_meter_state_survives_storage(
    storage: Storage, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    text = SIMPLE_PRICEBOOK.replace(
        "tokens: {event: api.call, sum: tokens, group_by: [model]}", "tokens: {event: api.call, unique: agent}"
    )
    engine = Engine(book(text), storage, registry)
    for i, agent in enumerate(["a1", "a2", "a1", "a3"]):
        engine.rate(event(f"e{i}", agent=agent))
    [(key, state)] = [(k, s) for k, s in storage.period_states([("acme", "tokens", (), "2026-11")]).items()]
    assert state.quantity == 3 and state.members == {"a1", "a2", "a3"}


def test_sqlite_records_its_schema_version_and_refuses_newer_ones(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with SQLiteStorage(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        store._db.execute("INSERT INTO schema_version VALUES (99, 'future')")
    with pytest.raises(StorageError, match="schema version 99 is newer"):
        SQLiteStorage(path)


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello " * 1000)
    with pytest.raises(StorageError, match="cannot open as a rating database"):
        SQLiteStorage(path)


def test_sqlite_data_survives_reopening(tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry) -> None:
    path = tmp_path / "r.db"
    with SQLiteStorage(path) as store:
        Engine(book(SIMPLE_PRICEBOOK), store, registry).rate(event("e1", tokens=600, model="m"))
    with SQLiteStorage(path) as store:
        engine = Engine(book(SIMPLE_PRICEBOOK), store, registry)
        rating = engine.rate(event("e2", tokens=600, model="m"))
        assert rating is not None
        assert rating.charges[1].before == 600  # period state carried over
        assert balances_under(store, "customer:")[("customer:acme:receivable", "USD")] == Decimal("1.1200")


events_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=15),
        st.sampled_from(["acme", "globex", "nobody"]),
        st.decimals(min_value=-5, max_value=3000, places=2, allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=25,
)


def _events(rows: list[tuple[int, str, Decimal, int]]) -> list[UsageEvent]:
    return [event(f"e{n}", customer=c, at=NOV + dt.timedelta(days=d), tokens=q, model="m") for n, c, q, d in rows]


@pytest.mark.parametrize("kind", STORAGE_KINDS)
@settings(max_examples=40)
@given(rows=events_strategy, data=st.data())
def test_ledger_invariants_hold_for_any_batch(
    kind: str,
    rows: list[tuple[int, str, Decimal, int]],
    data: st.DataObject,
    tmp_path_factory: pytest.TempPathFactory,
    book: Callable[[str], Pricebook],
    registry: Registry,
) -> None:
    """(b) every transaction balances per asset; (c) replaying posts nothing new; (d) no float in an amount;
    and stored balances equal the sum of postings."""
    text = SIMPLE_PRICEBOOK + "  globex: {plan: basic}\n"
    store = open_kind(kind, tmp_path_factory.mktemp("db"))
    try:
        engine = Engine(book(text), store, registry)
        events = _events(rows)
        engine.rate_batch(events, chunk_size=data.draw(st.integers(min_value=1, max_value=10)))
        transactions = list(store.transactions())
        sums: dict[tuple[str, str], Decimal] = {}
        for transaction in transactions:
            assert imbalance(transaction.postings) == {}
            for p in transaction.postings:
                assert type(p.amount) is Decimal
                sums[(p.account, p.asset)] = sums.get((p.account, p.asset), Decimal(0)) + p.amount
        balances = store.balances()
        assert all(type(v) is Decimal for v in balances.values())
        assert balances == sums
        charges = list(store.charges())
        assert all(type(c.charge.amount) is Decimal for c in charges)

        replay = engine.rate_batch(data.draw(st.permutations(events)))
        assert replay.posted == 0
        assert [t.id for t in store.transactions()] == [t.id for t in transactions]
        assert store.balances() == balances
    finally:
        store.close()


LONG_PRICE_BOOK = """\
pricebook: long
version: 2026-11-01
currency: USD
meters:
  calls: {event: api.call, count: true}
plans:
  p:
    charges:
      - {meter: calls, model: per_call, price: "1234567890.123456789012345678901"}
default_plan: p
"""


def test_sums_past_28_digits_stay_exact_in_balances_reports_verify_and_close(
    storage: Storage, registry: Registry
) -> None:
    from rating.billing.close import close_period
    from rating.pricebook.model import parse_pricebook

    three = Decimal("3703703670.370370367037037036703")  # 3 x the price, all 31 digits
    engine = Engine(parse_pricebook(LONG_PRICE_BOOK, registry), storage, registry)
    calls = [event(f"c{i}", at=NOV + dt.timedelta(hours=i)) for i in range(3)]
    report = engine.rate_batch(calls)
    assert report.totals == {("acme", "USD"): three}
    assert storage.balances(["customer:acme:receivable"]) == {("customer:acme:receivable", "USD"): three}
    assert storage.period_totals("2026-11") == {("acme", "USD"): three}
    assert storage.verify() == []
    close_period(engine, "2026-11")
    owed = storage.balances(["customer:acme:receivable"])[("customer:acme:receivable", "USD")]
    assert owed == Decimal("3703703670.37") and storage.verify() == []


@pytest.mark.parametrize("kind", STORAGE_KINDS)
def test_a_small_write_stores_what_a_bulk_write_stores(
    kind: str, tmp_path_factory: pytest.TempPathFactory, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    """PostgreSQL pipelines the INSERTs of a small write and COPYs a large one: both store the same rows."""
    events = [
        event(f"e{i}", customer=("acme", "globex")[i % 2], at=NOV + dt.timedelta(minutes=i), tokens=7 * i, model="m")
        for i in range(150)
    ]
    stored = []
    for chunk_size in (1, 150):  # 150 events: past the pipelined writes' limit
        store = open_kind(kind, tmp_path_factory.mktemp("db"))
        try:
            Engine(book(SIMPLE_PRICEBOOK + "  globex: {plan: basic}\n"), store, registry).rate_batch(
                events, chunk_size=chunk_size
            )
            stored.append(
                (
                    list(store.transactions()),
                    [(c.event_id, c.customer, c.charge.amount, c.charge.explanation) for c in store.charges()],
                    store.balances(),
                    store.period_states(
                        {(c, "tokens", ("m",), "2026-11") for c in ("acme", "globex")}
                        | {(c, "requests", (), "2026-11") for c in ("acme", "globex")}
                    ),
                    store.verify(),
                )
            )
        finally:
            store.close()
    one_by_one, in_bulk = stored
    assert len(one_by_one[0]) == 150 and len(one_by_one[3]) == 4
    assert one_by_one == in_bulk


@pytest.mark.parametrize("kind", [kind for kind in STORAGE_KINDS if kind != "memory"])
def test_a_write_the_database_refuses_is_rolled_back_whole(kind: str, tmp_path: Path) -> None:
    """A small write's INSERTs go with its COMMIT in one pipeline (PostgreSQL): what fails in it undoes it all."""
    storage = open_kind(kind, tmp_path)
    try:
        storage.append([transfer("t1", "1")])
        with pytest.raises(storage.damage_errors), storage.writing():
            storage.append([transfer("t2", "2")], checked=True)
            storage.append([transfer("t1", "1")], checked=True)  # a caller that lied: the unique id refuses it
        assert storage.transaction("t2") is None
        with pytest.raises(ZeroDivisionError), storage.writing():
            storage.append([transfer("t2", "2")])
            _ = 1 / 0  # the caller fails after a small write
        assert storage.transaction("t2") is None
        assert storage.balances() == {("a", "USD"): Decimal(1), ("b", "USD"): Decimal(-1)}
        storage.append([transfer(f"copied{i}", "0") for i in range(100)])  # a large write: COPY works again
        with (
            storage.writing()
        ):  # a small write, then a large one, in one scope; a small write, then a large one, in one scope
            storage.append([transfer("t3", "3")])
            storage.append([transfer(f"bulk{i}", "1") for i in range(100)])
        assert len(list(storage.transactions())) == 202
        assert storage.balances()[("a", "USD")] == Decimal(104)
        assert storage.verify() == []
    finally:
        storage.close()
