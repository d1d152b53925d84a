from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.core.charges import explanation_of, rendered
from rating.engine import Engine
from rating.errors import EventConflict, EventError, PluginError
from rating.events import Sourced, UsageEvent
from rating.hookspecs import hookimpl
from rating.ledger import Transaction
from rating.pricebook.model import Pricebook, parse_pricebook
from rating.records import ChargeRecord
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.conftest import STORAGE_KINDS, open_kind
from tests.helpers import NOV, SIMPLE_PRICEBOOK, event
from tests.simulate.test_simulate import histories
from tests.test_telescoping import REGISTRY


def test_quote_prices_without_writing(engine: Engine) -> None:
    quoted = engine.quote(event("e1", tokens=1200, model="m"))
    assert [c.amount for c in quoted.charges] == [Decimal("0.01"), Decimal("1.1000")]
    assert list(engine.storage.transactions()) == []
    assert engine.quote(event("e1", tokens=1200, model="m")).charges == quoted.charges


def test_rate_posts_one_balanced_transaction_with_explained_charges(engine: Engine) -> None:
    rating = engine.rate(event("e1", tokens=1200, model="m"))
    assert rating is not None
    transaction = rating.transaction
    assert transaction.id == "rating:e1" and transaction.timestamp == NOV
    assert {(p.account, p.amount) for p in transaction.postings} == {
        ("customer:acme:receivable", Decimal("1.1100")),
        ("revenue:basic:requests", Decimal("-0.01")),
        ("revenue:basic:tokens", Decimal("-1.1000")),
    }
    tokens = rating.charges[1]
    assert (tokens.meter, tokens.group, tokens.period, tokens.quantity) == ("tokens", ("m",), "2026-11", Decimal(1200))
    assert tokens.unit_price is None and rating.charges[0].unit_price == Decimal("0.01")
    assert rating.charges[0].explanation == "1 requests x 0.01 USD = 0.01 USD"


def test_groups_have_separate_state(engine: Engine) -> None:
    engine.rate(event("e1", tokens=1000, model="a"))
    rating = engine.rate(event("e2", tokens=10, model="b"))
    assert rating is not None and rating.charges[1].amount == Decimal("0.010")


@pytest.mark.parametrize(
    "bad, reason",
    [
        (
            event("e", customer="stranger", tokens=1, model="m"),
            "unknown customer 'stranger': not under customers and no default_plan",
        ),
        (event("e", type="api.cal", tokens=1, model="m"), "no meter counts events of type 'api.cal'"),
        (event("e", tokens=1), "missing property 'model' (the meter groups by it)"),
        (event("e", model="m"), "missing property 'tokens' (the meter reads it)"),
        (event("e", tokens=-1, model="m"), "tokens must not be negative, got -1"),
        (event("e", tokens="lots", model="m"), "tokens must be a decimal number, got 'lots'"),
        (event("e", tokens=True, model="m"), "tokens must be an exact decimal, not bool True"),
    ],
)
def test_events_that_cannot_be_rated_say_why_and_post_nothing(engine: Engine, bad: UsageEvent, reason: str) -> None:
    with pytest.raises(EventError) as error:
        engine.rate(bad)
    assert str(error.value) == reason
    assert list(engine.storage.transactions()) == []


def test_non_strict_batch_posts_the_valid_and_lists_the_rest(engine: Engine) -> None:
    records = [
        Sourced("f:1", event=event("e1", tokens=5, model="m")),
        Sourced("f:2", error="invalid JSON: boom"),
        Sourced("f:3", event=event("e2", customer="nobody", tokens=5, model="m")),
        Sourced("f:4", event=event("e1", tokens=5, model="m")),
        Sourced("f:5", event=event("e1", tokens=6, model="m")),
    ]
    report = engine.rate_batch(records)
    assert report.posted == 1 and report.duplicates == 1
    assert [str(r) for r in report.rejected] == [
        "f:2: invalid_record: invalid JSON: boom",
        "f:3: unknown_customer: unknown customer 'nobody': not under customers and no default_plan",
        "f:5: duplicate_conflict: event e1 was already rated with different content",
    ]
    assert report.totals == {("acme", "USD"): Decimal("0.01") + Decimal("0.005")}


def test_strict_batch_posts_nothing_when_one_record_is_bad(engine: Engine) -> None:
    good = [event(f"e{i}", tokens=5, model="m") for i in range(10)]
    report = engine.rate_batch(good + [event("bad", customer="nobody", tokens=1, model="m")], strict=True, chunk_size=3)
    assert report.posted == 0 and len(report.rejected) == 1
    assert list(engine.storage.transactions()) == []
    report = engine.rate_batch(good, strict=True)
    assert report.posted == 10


def test_strict_batch_with_a_bad_record_first_posts_nothing(engine: Engine) -> None:
    report = engine.rate_batch([Sourced("f:1", error="bad"), event("e1", tokens=5, model="m")], strict=True)
    assert report.posted == 0 and list(engine.storage.transactions()) == []


def test_conflicting_replay_of_a_single_event_raises(engine: Engine) -> None:
    engine.rate(event("e1", tokens=5, model="m"))
    with pytest.raises(EventConflict):
        engine.rate(event("e1", tokens=5, model="other"))


def test_periods_follow_the_pricebook_time_zone(book: Callable[[str], Pricebook], registry: Registry) -> None:
    text = SIMPLE_PRICEBOOK.replace("currency: USD\n", "currency: USD\ntimezone: America/New_York\n")
    text = text.replace("version: 2026-11-01", "version: 2026-10-01")
    engine = Engine(book(text), MemoryStorage(), registry)
    late_october_in_new_york = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)
    rating = engine.rate(event("e1", at=late_october_in_new_york, tokens=1, model="m"))
    assert rating is not None and rating.charges[0].period == "2026-10"


def test_max_meter_charges_only_for_a_new_peak(book: Callable[[str], Pricebook], registry: Registry) -> None:
    text = SIMPLE_PRICEBOOK.replace("sum: tokens, group_by: [model]", "max: tokens")
    engine = Engine(book(text), MemoryStorage(), registry)
    amounts = []
    for i, peak in enumerate([100, 50, 300]):
        rating = engine.rate(event(f"e{i}", tokens=peak))
        assert rating is not None
        amounts.append(rating.charges[1].amount)
    assert amounts == [Decimal("0.100"), Decimal(0), Decimal("0.200")]


def test_where_filters_choose_the_meter(book: Callable[[str], Pricebook], registry: Registry) -> None:
    text = SIMPLE_PRICEBOOK.replace(
        "tokens: {event: api.call, sum: tokens, group_by: [model]}",
        "tokens: {event: api.call, sum: tokens, where: {model: [big, 7]}}",
    )
    engine = Engine(book(text), MemoryStorage(), registry)
    big = engine.rate(event("e1", tokens=10, model="big"))
    small = engine.rate(event("e2", tokens=10, model="small"))
    numeric = engine.rate(event("e3", tokens=10, model=7))
    assert big is not None and small is not None and numeric is not None
    assert [c.meter for c in big.charges] == ["requests", "tokens"]
    assert [c.meter for c in small.charges] == ["requests"]
    assert [c.meter for c in numeric.charges] == ["requests", "tokens"]


class Enricher:
    @hookimpl
    def rating_enrich_event(self, event: UsageEvent) -> UsageEvent | None:
        if "tokens" in event.properties:
            return None
        return event.model_copy(update={"properties": {**event.properties, "tokens": Decimal(7)}})


class Observer:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def rating_transaction_posted(self, transaction: Transaction) -> None:
        self.seen.append(transaction.id)


def test_enrich_and_posted_hooks(book: Callable[[str], Pricebook]) -> None:
    observer = Observer()
    registry = Registry.load([Enricher(), observer])
    engine = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry)
    rating = engine.rate(event("e1", model="m"))
    engine.rate(event("e1", model="m"))
    assert rating is not None and rating.charges[1].quantity == 7
    assert observer.seen == ["rating:e1"]


class Thief:
    @hookimpl
    def rating_enrich_event(self, event: UsageEvent) -> UsageEvent:
        return event.model_copy(update={"customer": "someone-else"})


def test_an_enricher_may_not_change_who_pays(book: Callable[[str], Pricebook]) -> None:
    engine = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), Registry.load([Thief()]))
    with pytest.raises(PluginError, match="changed the id or customer"):
        engine.rate(event("e1", tokens=1, model="m"))


def test_storage_that_keeps_explanations_is_handed_records_with_text_never_a_pricing_model(
    book,
    registry,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from rating.storage.sqlite import SQLiteStorage
    from tests.helpers import SIMPLE_PRICEBOOK

    handed = []

    class Watching(SQLiteStorage):
        def _write_ratings(self, ratings):  # type: ignore[no-untyped-def]
            handed.extend(c for r in ratings for c in r.charges)
            super()._write_ratings(ratings)

    with Watching(tmp_path / "r.db") as storage:
        Engine(book(SIMPLE_PRICEBOOK), storage, registry).rate(event("e1", tokens=1200, model="m"))
        assert handed and all(type(c) is ChargeRecord and c.explanation for c in handed)
        [stored, *_] = [c.charge for c in storage.charges() if c.charge.meter == "tokens"]
        assert stored.explanation == (
            "1,000 tokens x 0.001 USD (tier 1) + 200 tokens x 0.0005 USD (tier 2) = 1.1000 USD"
        )


def test_memory_storage_is_handed_explanations_as_data_and_the_pricing_layer_renders_them_on_read(
    book: Callable[[str], Pricebook], registry: Registry
) -> None:
    from tests.helpers import SIMPLE_PRICEBOOK

    storage = MemoryStorage()
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry)
    engine.rate(event("e1", tokens=1200, model="m"))
    [stored] = [c.charge for c in storage.charges() if c.charge.meter == "tokens"]
    assert type(stored) is ChargeRecord and stored.explanation is None  # no text made when nobody reads it
    assert (stored.version, stored.key) == ("test@2026-11-01", "total:basic:tokens.tiered.USD")
    assert explanation_of(stored, engine.catalog) == (
        "1,000 tokens x 0.001 USD (tier 1) + 200 tokens x 0.0005 USD (tier 2) = 1.1000 USD"
    )
    assert explanation_of(stored) == ""  # without the catalog there is nothing to render it by
    assert explanation_of(stored._replace(explanation="kept")) == "kept"  # stored text wins
    [requests] = [c.charge for c in storage.charges() if c.charge.meter == "requests"]
    assert requests.unit_price is None and rendered(requests, engine.catalog).unit_price == Decimal("0.01")


@settings(max_examples=40, deadline=None)
@given(history=histories(), chunk=st.integers(min_value=1, max_value=10))
def test_reading_a_chunks_state_ahead_changes_nothing(history, chunk: int) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL reads a chunk's period state in one query first; the ledger is the one read key by key."""
    book, events = history
    ledgers = []
    for ahead in (False, True):
        storage = MemoryStorage()
        storage.reads_ahead = ahead  # type: ignore[misc]
        report = Engine(book, storage, REGISTRY).rate_batch(events, chunk_size=chunk)
        ledgers.append(([t.fingerprint() for t in storage.transactions()], [str(r) for r in report.rejected]))
    assert ledgers[0] == ledgers[1]


def another_writer_first(storage: Storage, other: Engine, interloper: UsageEvent) -> None:
    """Have ``other`` store ``interloper`` just before the next write scope of ``storage`` opens: between a
    chunk's pricing and its write, where a concurrent writer can overtake it."""
    writing = storage.writing

    @contextmanager
    def after_another_writer(customers: Iterable[str] | None = None) -> Iterator[None]:
        storage.writing = writing  # type: ignore[method-assign]
        other.rate_batch([interloper])
        with writing(customers):
            yield

    storage.writing = after_another_writer  # type: ignore[method-assign]


#: Where the other writer writes: through the same storage object, or through a connection of its own.
WRITERS = [(kind, "same") for kind in STORAGE_KINDS] + [(kind, "own") for kind in STORAGE_KINDS if kind != "memory"]


@contextmanager
def two_writers(
    kind: str, connection: str, tmp_path: Path, text: str, registry: Registry
) -> Iterator[tuple[Engine, Engine]]:
    """An engine, and another writer on the same database: through its storage, or a connection of its own."""
    storage = open_kind(kind, tmp_path)
    theirs = storage if connection == "same" else registry.open_storage(storage.url)
    book = parse_pricebook(text, registry)
    try:
        yield Engine(book, storage, registry), Engine(book, theirs, registry)
    finally:
        storage.close()
        theirs.close()


@pytest.mark.parametrize(("kind", "connection"), WRITERS)
@pytest.mark.parametrize(
    ("interloper", "tokens_charged", "rejected"),
    [
        # acme's token state moved from 0 to 900: the chunk is rated again from 900, into tier 2
        (event("other", tokens=900, model="m"), ["0.1000", "0.0500", "0.0500"], []),
        # e1 was rated meanwhile with other content: rated again, e1 is refused as a conflict
        (event("e1", tokens=5, model="m"), ["0.100", "0.100"], ["duplicate_conflict"]),
    ],
)
def test_a_chunk_another_writer_overtook_is_rated_again_inside_the_write(
    kind: str,
    connection: str,
    tmp_path: Path,
    registry: Registry,
    interloper: UsageEvent,
    tokens_charged: list[str],
    rejected: list[str],
) -> None:
    """Chunks are priced outside the write scope; if another writer stores first what they read, they are re-rated."""
    with two_writers(kind, connection, tmp_path, SIMPLE_PRICEBOOK, registry) as (engine, other):
        storage = engine.storage
        another_writer_first(storage, other, interloper)
        batch = [event(f"e{i}", tokens=100, model="m", at=NOV + dt.timedelta(minutes=i + 1)) for i in range(3)]
        report = engine.rate_batch(batch)

        assert [str(r.code) for r in report.rejected] == rejected
        assert report.posted == 3 - len(rejected)
        charged = [c.charge for c in storage.charges("acme") if c.event_id != "other"]
        mine = [c.amount for c in charged if c.meter == "tokens"][-len(tokens_charged) :]  # after the interloper's
        assert mine == [Decimal(amount) for amount in tokens_charged]
        assert storage.verify() == []


@pytest.mark.parametrize(("kind", "connection"), WRITERS)
def test_a_chunk_whose_rollover_carry_moved_is_rated_again(
    kind: str, connection: str, tmp_path: Path, registry: Registry
) -> None:
    """The carry is read from the previous period's state, which no rating of this chunk records: checked too."""
    text = SIMPLE_PRICEBOOK.replace(
        """      - meter: tokens
        model: tiered
        mode: graduated
        tiers:
          - {up_to: 1000, unit_price: "0.001"}
          - {unit_price: "0.0005"}
""",
        "",
    ).replace('price: "0.01"}', 'price: "1", included: 5, rollover: true}')
    text = text.replace("  tokens: {event: api.call, sum: tokens, group_by: [model]}\n", "")
    with two_writers(kind, connection, tmp_path, text, registry) as (engine, other):
        engine.rate_batch([event(f"n{i}", at=NOV + dt.timedelta(days=2)) for i in range(2)])  # 3 of 5 left to carry
        late = event("n2", at=NOV + dt.timedelta(days=3))  # a late November call: 2 left to carry
        another_writer_first(engine.storage, other, late)
        december = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
        report = engine.rate_batch([event(f"d{i}", at=december + dt.timedelta(minutes=i)) for i in range(10)])
        assert report.posted == 10
        assert report.totals == {("acme", "USD"): Decimal(3)}  # 10 calls, 5 included + 2 carried
