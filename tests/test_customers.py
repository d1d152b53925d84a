"""Customers and subscriptions as data (issue 23): stored, versioned, merged over the pricebook's seed, rated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from rating.customers import Customers, spec_json
from rating.engine import Engine
from rating.errors import CustomerError, EventError
from rating.pricebook.model import CustomerSpec, Pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import NOV, event

PRICEBOOK = """\
pricebook: test
version: 2026-11-01
currency: USD
meters:
  requests: {event: api.call, count: true}
plans:
  basic:
    charges:
      - {meter: requests, model: per_call, price: "0.01"}
  pro:
    charges:
      - {meter: requests, model: per_call, price: "0.50"}
customers:
  acme: {plan: basic}
"""

#: A clock inside November 2026: the open period of the tests.
NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)

SQL_KINDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


def clock() -> dt.datetime:
    return NOW


@pytest.fixture
def pricebook(book: Callable[[str], Pricebook]) -> Pricebook:
    return book(PRICEBOOK)


@pytest.fixture(params=SQL_KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Storage]]:
    """Opens the same database again on each call: each storage is one process's connection."""
    url = postgres_url() if request.param == "postgres" else None
    opened: list[Storage] = []

    def open_one() -> Storage:
        if url is not None:
            from rating.storage.postgres import PostgresStorage

            store: Storage = PostgresStorage(url)
        else:
            store = SQLiteStorage(tmp_path / "rating.db")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def charged(engine: Engine, id: str, customer: str, at: dt.datetime = NOV) -> Decimal:
    rated = engine.rate(event(id, customer, at=at))
    assert rated is not None
    return rated.total()["USD"]


def test_a_customer_added_is_rated_by_its_plan_at_once_by_this_and_another_process(
    pricebook: Pricebook, registry: Registry, opener: Callable[[], Storage]
) -> None:
    first, second = opener(), opener()
    engine = Engine(pricebook, first, registry, clock=clock)
    other = Engine(pricebook, second, registry, clock=clock)  # built before the customer exists
    with pytest.raises(EventError) as unknown:
        other.rate(event("e0", "globex"))
    assert unknown.value.code == "unknown_customer"
    version, new = Customers(first, pricebook, clock).put("globex", {"plan": "pro"})
    assert new and version.sequence == 1 and version.effective == NOW
    assert charged(engine, "e1", "globex") == Decimal("0.50")
    assert charged(other, "e2", "globex") == Decimal("0.50")  # the other process noticed the counter move
    assert charged(other, "e3", "acme") == Decimal("0.01")  # the seed still rates those the database lacks


def test_the_database_wins_over_the_yaml_seed(pricebook: Pricebook, registry: Registry) -> None:
    storage = MemoryStorage()
    customers = Customers(storage, pricebook, clock)
    assert customers.get("acme") == CustomerSpec(plan="basic")  # the seed
    customers.put("acme", {"plan": "pro"})
    assert customers.get("acme") == CustomerSpec(plan="pro")
    assert customers.all() == {"acme": CustomerSpec(plan="pro")}
    engine = Engine(pricebook, storage, registry, clock=clock)
    assert charged(engine, "e1", "acme", NOW) == Decimal("0.50")
    assert charged(engine, "e0", "acme", NOW - dt.timedelta(seconds=1)) == Decimal("0.01")  # the seed until then


def test_an_event_dated_before_a_change_is_rated_by_the_terms_in_force_at_its_time(
    pricebook: Pricebook, registry: Registry, opener: Callable[[], Storage]
) -> None:
    storage = opener()
    moments = iter([dt.datetime(2026, 11, 10, tzinfo=dt.UTC), dt.datetime(2026, 11, 15, tzinfo=dt.UTC)])
    now = next(moments)
    customers = Customers(storage, pricebook, lambda: now)
    customers.put("globex", {"plan": "basic", "spend_cap": "100"})
    engine = Engine(pricebook, storage, registry, clock=lambda: now)
    # stamped a moment before it was added: its first version is in force from the start
    assert charged(engine, "e0", "globex", now - dt.timedelta(hours=1)) == Decimal("0.01")
    assert charged(engine, "e1", "globex", now + dt.timedelta(hours=1)) == Decimal("0.01")
    now = next(moments)
    customers.put("globex", {"plan": "pro"})  # a plan change given as a whole new spec, from now on
    assert charged(engine, "e2", "globex", now + dt.timedelta(hours=1)) == Decimal("0.50")
    # late usage from before the change, after the latest event rated then: the terms of its own time
    late = engine.rate(event("e3", "globex", at=now - dt.timedelta(hours=1)))
    assert late is not None and late.total()["USD"] == Decimal("0.01") and late.plan == "basic"
    assert charged(engine, "e4", "globex", now) == Decimal("0.50")  # the change's own instant: the new terms
    # another process, started after the change, prices late usage the same way
    other = Engine(pricebook, opener(), registry, clock=lambda: now)
    assert charged(other, "e5", "globex", now - dt.timedelta(minutes=1)) == Decimal("0.01")


def test_the_same_spec_again_stores_no_version(pricebook: Pricebook) -> None:
    storage = MemoryStorage()
    customers = Customers(storage, pricebook, clock)
    first, new = customers.put("globex", {"plan": "pro", "timezone": "Europe/Paris"})
    again, fresh = customers.put("globex", CustomerSpec(plan="pro", timezone="Europe/Paris"))
    assert new and not fresh and again == first and storage.customers_version() == 1
    assert first.spec == spec_json(CustomerSpec(plan="pro", timezone="Europe/Paris"))


def test_a_subscription_changes_the_plan_from_its_date(
    pricebook: Pricebook, registry: Registry, opener: Callable[[], Storage]
) -> None:
    storage = opener()
    engine = Engine(pricebook, storage, registry, clock=clock)
    assert charged(engine, "e1", "acme", NOV + dt.timedelta(days=1)) == Decimal("0.01")
    version, _ = Customers(storage, pricebook, clock).subscribe("acme", "pro", dt.date(2026, 11, 25))
    assert version.effective == dt.datetime(2026, 11, 25, tzinfo=dt.UTC) and version.sequence == 1
    assert charged(engine, "e2", "acme", dt.datetime(2026, 11, 24, 23, tzinfo=dt.UTC)) == Decimal("0.01")
    assert charged(engine, "e3", "acme", dt.datetime(2026, 11, 25, tzinfo=dt.UTC)) == Decimal("0.50")
    assert Customers(storage, pricebook).get("acme") == CustomerSpec.model_validate(
        {"plan": "basic", "changes": [{"plan": "pro", "on": "2026-11-25"}]}
    )


def test_a_change_before_the_latest_rated_event_of_the_open_period_is_refused(
    pricebook: Pricebook, registry: Registry, opener: Callable[[], Storage]
) -> None:
    storage = opener()
    engine = Engine(pricebook, storage, registry, clock=clock)
    charged(engine, "e1", "acme", dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC))
    customers = Customers(storage, pricebook, clock)
    with pytest.raises(CustomerError) as refused:
        customers.subscribe("acme", "pro", dt.date(2026, 11, 10))
    assert refused.value.code == "before_rated_usage" and "2026-11-10T12:00:00" in str(refused.value)
    with pytest.raises(CustomerError) as also:
        customers.put("acme", {"plan": "pro"}, effective=dt.datetime(2026, 11, 5, tzinfo=dt.UTC))
    assert also.value.code == "before_rated_usage"
    assert storage.customers_version() == 0  # nothing stored
    customers.subscribe("acme", "pro", dt.date(2026, 11, 11))  # after it: accepted
    assert charged(engine, "e2", "acme", dt.datetime(2026, 11, 11, 1, tzinfo=dt.UTC)) == Decimal("0.50")


def test_a_time_zone_change_takes_effect_from_the_next_period_only(pricebook: Pricebook) -> None:
    customers = Customers(MemoryStorage(), pricebook, clock)
    with pytest.raises(CustomerError) as refused:
        customers.put("acme", {"plan": "basic", "timezone": "Asia/Tokyo"})  # now, inside November
    assert refused.value.code == "mid_period_anchor" and "2026-11 ends 2026-12-01" in str(refused.value)
    with pytest.raises(CustomerError):  # in a later period, but not at its start
        customers.put(
            "acme", {"plan": "basic", "timezone": "Asia/Tokyo"}, effective=dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
        )
    version, new = customers.put(
        "acme", {"plan": "basic", "timezone": "Asia/Tokyo"}, effective=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    )
    assert new and customers.get("acme") == CustomerSpec(plan="basic", timezone="Asia/Tokyo")
    # A new customer has no period in progress: any time zone from now.
    assert customers.put("globex", {"plan": "basic", "timezone": "Asia/Tokyo"})[1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"plan": "gold"}, "invalid_customer: customers.globex.plan: unknown plan 'gold'; plans: basic, pro"),
        ({"plan": "basic", "colour": "red"}, "invalid_customer: customers.globex.colour: unknown key 'colour'"),
        ({}, "invalid_customer: customers.globex: missing required key 'plan'"),
        (
            {"plan": "basic", "timezone": "Mars/Olympus"},
            "invalid_customer: customers.globex.timezone: unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_an_invalid_customer_is_refused_with_the_pricebooks_one_line(
    pricebook: Pricebook, data: dict[str, str], message: str
) -> None:
    with pytest.raises(CustomerError) as refused:
        Customers(MemoryStorage(), pricebook, clock).put("globex", data)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_subscription_of_an_unknown_customer_is_refused(pricebook: Pricebook) -> None:
    with pytest.raises(CustomerError) as refused:
        Customers(MemoryStorage(), pricebook, clock).subscribe("nobody", "pro", dt.date(2026, 12, 1))
    assert refused.value.code == "unknown_customer"


def test_a_bad_customer_id_is_refused(pricebook: Pricebook) -> None:
    with pytest.raises(CustomerError) as refused:
        Customers(MemoryStorage(), pricebook, clock).put("no spaces", {"plan": "pro"})
    assert refused.value.code == "invalid_customer"


WITHOUT_PRO = PRICEBOOK.replace('  pro:\n    charges:\n      - {meter: requests, model: per_call, price: "0.50"}\n', "")


def test_a_pricebook_lacking_a_stored_customers_plan_rates_it_as_not_stored(
    pricebook: Pricebook, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    storage = MemoryStorage()
    customers = Customers(storage, pricebook, clock)
    customers.put("globex", {"plan": "pro"})
    customers.put("acme", {"plan": "pro"})
    engine = Engine(book(WITHOUT_PRO), storage, registry, clock=clock)  # the plan was removed since
    with pytest.raises(EventError) as refused:  # refused by name, never priced by a plan the pricebook lacks
        engine.rate(event("e1", "globex"))
    assert refused.value.code == "unknown_customer"
    assert charged(engine, "e2", "acme") == Decimal("0.01")  # its seed rates it


def test_a_chunk_priced_before_another_process_changed_the_customer_is_priced_again(
    pricebook: Pricebook, registry: Registry, opener: Callable[[], Storage]
) -> None:
    """A chunk is priced outside the write scope: a customer changed by another process before the write opens
    must not be stored at the old plan (the change's own check saw none of the chunk's events yet)."""
    mine, theirs = opener(), opener()
    engine = Engine(pricebook, mine, registry, clock=clock)
    writing = mine.writing

    @contextmanager
    def after_the_change(customers: Iterable[str] | None = None) -> Iterator[None]:
        mine.writing = writing  # type: ignore[method-assign]
        Customers(theirs, pricebook, clock).subscribe("acme", "pro", NOW.date())  # from Nov 20 on
        with writing(customers):
            yield

    mine.writing = after_the_change  # type: ignore[method-assign]
    later = [event(f"e{n}", "acme", at=NOW + dt.timedelta(hours=n + 1)) for n in range(3)]
    report = engine.rate_batch(later)
    assert report.posted == 3
    amounts = {c.event_id: c.charge.amount for c in mine.charges("acme")}
    assert amounts == {"e0": Decimal("0.50"), "e1": Decimal("0.50"), "e2": Decimal("0.50")}  # pro, not basic
    assert mine.verify() == []
