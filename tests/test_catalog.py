"""Pricebook versions: the version in force at an event's timestamp rates it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from rating.engine import Engine
from rating.errors import EventError, PricebookError
from rating.pricebook.catalog import Catalog, load_catalog, takes_effect
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import SIMPLE_PRICEBOOK, balances_under, event

Book = Callable[[str], Pricebook]
MID_NOVEMBER = SIMPLE_PRICEBOOK.replace("version: 2026-11-01", "version: 2026-11-15").replace(
    'price: "0.01"', 'price: "0.02"'
)


def at(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, 12, tzinfo=dt.UTC)


def test_each_event_is_rated_by_the_version_in_force_at_its_time(book: Book, registry: Registry) -> None:
    engine = Engine(Catalog([book(MID_NOVEMBER), book(SIMPLE_PRICEBOOK)]), MemoryStorage(), registry)
    early = engine.rate(event("e1", at=at(14), tokens=600, model="m"))
    late = engine.rate(event("e2", at=at(15), tokens=600, model="m"))
    assert early is not None and late is not None
    assert early.charges[0].amount == Decimal("0.01") and late.charges[0].amount == Decimal("0.02")
    assert early.transaction.metadata["pricebook"] == "test@2026-11-01"
    assert late.transaction.metadata["pricebook"] == "test@2026-11-15"
    # Mid-period switch: the period state carries on, each event at the marginal price of its version.
    assert late.charges[1].before == 600 and late.charges[1].amount == Decimal("0.400") + Decimal("0.1000")
    assert engine.pricebook.version == dt.date(2026, 11, 15)


def test_an_event_before_the_first_version_is_rejected(book: Book, registry: Registry) -> None:
    engine = Engine(book(MID_NOVEMBER), MemoryStorage(), registry)
    with pytest.raises(
        EventError, match="no version of pricebook test is in force yet .the first takes effect 2026-11-15"
    ):
        engine.rate(event("e1", at=at(14), tokens=1, model="m"))


def test_a_version_takes_effect_at_local_midnight(book: Book) -> None:
    paris = book(SIMPLE_PRICEBOOK.replace("currency: USD\n", "currency: USD\ntimezone: Europe/Paris\n"))
    assert takes_effect(paris) == dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC)


def test_versions_must_belong_to_one_pricebook_with_distinct_dates(book: Book) -> None:
    with pytest.raises(PricebookError, match="versions of one pricebook, found: other, test"):
        Catalog([book(SIMPLE_PRICEBOOK), book(SIMPLE_PRICEBOOK.replace("pricebook: test", "pricebook: other"))])
    with pytest.raises(PricebookError, match="two versions of test take effect on 2026-11-01"):
        Catalog([book(SIMPLE_PRICEBOOK), book(SIMPLE_PRICEBOOK)])
    with pytest.raises(PricebookError, match="at least one"):
        Catalog([])


def test_a_directory_of_versions_loads_with_every_problem_reported(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "2026-11-01.yaml").write_text(SIMPLE_PRICEBOOK)
    (tmp_path / "2026-11-15.yaml").write_text(MID_NOVEMBER)
    (tmp_path / "notes.txt").write_text("ignored")
    assert [b.version.day for b in load_catalog([tmp_path], registry).versions] == [1, 15]
    (tmp_path / "2026-12-01.yaml").write_text(SIMPLE_PRICEBOOK.replace("version: 2026-11-01", "version: soon"))
    with pytest.raises(PricebookError) as error:
        load_catalog([tmp_path], registry)
    assert error.value.problems[0].startswith(f"{tmp_path / '2026-12-01.yaml'}:2:1: version:")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PricebookError, match="no .yaml pricebooks"):
        load_catalog([tmp_path / "empty"], registry)


def test_a_new_credit_rate_changes_nothing_already_posted(book: Book, registry: Registry) -> None:
    credits = SIMPLE_PRICEBOOK.replace(
        "currency: USD\n", 'currency: USD\nassets:\n  CREDITS: {scale: 4, sells_for: {USD: "0.01"}}\n'
    ).replace(
        '{meter: requests, model: per_call, price: "0.01"}',
        "{meter: requests, model: per_call, price: 10, asset: CREDITS}",
    )
    dearer = credits.replace("version: 2026-11-01", "version: 2026-11-15").replace("price: 10,", "price: 12,")
    storage = MemoryStorage()
    Engine(book(credits), storage, registry).rate(event("e1", at=at(3), tokens=1, model="m"))
    posted = storage.transaction("rating:e1")
    engine = Engine(Catalog([book(credits), book(dearer)]), storage, registry)
    later = engine.rate(event("e2", at=at(16), tokens=1, model="m"))
    assert later is not None and later.charges[0].amount == 12 and later.charges[0].asset == "CREDITS"
    assert (
        storage.transaction("rating:e1") == posted and engine.rate(event("e1", at=at(3), tokens=1, model="m")) is None
    )
    assert balances_under(storage, "revenue:basic:requests") == {("revenue:basic:requests", "CREDITS"): Decimal(-22)}
