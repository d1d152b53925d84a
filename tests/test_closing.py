"""Period close: fees, minimum true-ups and rounding, exactly once; closed periods take no usage."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from rating.billing.close import close_period
from rating.core.charges import event_record
from rating.engine import Engine
from rating.errors import EventError, PeriodClosed, RatingError, TransactionConflict
from rating.ledger import Transaction
from rating.pricebook.model import Pricebook
from rating.refusals import CloseRefusal, Refusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.helpers import SIMPLE_PRICEBOOK, balances_under, event, later
from tests.test_subscriptions import SUBSCRIPTIONS, utc

Book = Callable[[str], Pricebook]


def rate_calls(engine: Engine, customer: str, days: list[int]) -> None:
    for day in days:
        engine.rate(event(f"{customer}-{day}", customer=customer, type="api.call", at=utc(2026, 11, day, 12)))


def ids(transactions: list[Transaction]) -> list[str]:
    return [t.id for t in transactions]


def receivable(storage: Storage, customer: str) -> Decimal:
    return balances_under(storage, f"customer:{customer}:")[(f"customer:{customer}:receivable", "USD")]


def test_close_posts_prorated_fees_and_a_marker(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(SUBSCRIPTIONS), storage, registry)
    rate_calls(engine, "acme", [12, 13, 14, 22, 23, 24])  # one 0.10 call on starter, one 0.05 call on pro
    report = close_period(engine, "2026-11")
    assert ids(report.posted) == [
        "fee:acme:2026-11:0",
        "fee:acme:2026-11:1",
        "close:acme:2026-11",
        "fee:tokyo:2026-11:0",
        "close:tokyo:2026-11",
    ]
    # 10 days of 30.00 and 10 days of 90.00 (a 30-day month in Paris), dated in advance at each span start.
    assert [t.postings[0].amount for t in report.posted[:2]] == [Decimal("10.00"), Decimal("30.00")]
    assert report.posted[0].timestamp == utc(2026, 11, 10, 23)
    # The pro minimum, 100 for a third of the month (33.33), is met by 40.15 of fees and usage.
    assert receivable(storage, "acme") == Decimal("40.15")
    assert balances_under(storage, "revenue:pro:") == {
        ("revenue:pro:calls", "USD"): Decimal("-0.05"),
        ("revenue:pro:fee", "USD"): Decimal("-30.00"),
    }


def test_a_minimum_shortfall_is_billed(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(SUBSCRIPTIONS.replace('fee: "90"', 'fee: "0"')), storage, registry)
    rate_calls(engine, "acme", [12, 13, 14, 22, 23, 24])
    report = close_period(engine, "2026-11", customers=["acme"])
    assert ids(report.posted) == ["fee:acme:2026-11:0", "minimum:acme:2026-11", "close:acme:2026-11"]
    shortfall = report.posted[1]
    assert shortfall.metadata["minimum"] == "33.33"
    assert shortfall.postings[0].amount == Decimal("33.33") - Decimal("10.00") - Decimal("0.15")
    assert receivable(storage, "acme") == Decimal("33.33")


def test_sub_cent_charges_stay_exact_until_close_rounds_once(book: Book, registry: Registry, storage: Storage) -> None:
    text = SUBSCRIPTIONS.replace('price: "0.10", included: 2', 'price: "0.0000001"')
    engine = Engine(book(text), storage, registry)
    rate_calls(engine, "tokyo", [3, 4, 5])
    assert [c.charge.amount for c in storage.charges("tokyo")] == [Decimal("0.0000001")] * 3
    report = close_period(engine, "2026-11", customers=["tokyo"])
    assert ids(report.posted) == ["fee:tokyo:2026-11:0", "rounding:tokyo:2026-11:USD", "close:tokyo:2026-11"]
    assert report.posted[1].postings[0].amount == Decimal("-0.0000003")
    assert receivable(storage, "tokyo") == Decimal("30.00")
    assert balances_under(storage, "rounding:") == {("rounding:USD", "USD"): Decimal("0.0000003")}


def test_closing_twice_posts_nothing_new(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(SUBSCRIPTIONS), storage, registry)
    rate_calls(engine, "acme", [12, 22])
    first = close_period(engine, "2026-11")
    balances = storage.balances()
    again = close_period(engine, "2026-11")
    assert first.posted and again.posted == [] and sorted(again.already_closed) == ["acme", "tokyo"]
    assert storage.balances() == balances


def test_a_closed_period_takes_no_more_usage(book: Book, registry: Registry, storage: Storage) -> None:
    engine = Engine(book(SUBSCRIPTIONS), storage, registry)
    close_period(engine, "2026-11", customers=["acme"])
    late = event("late", type="api.call", at=utc(2026, 11, 29, 12), customer="acme")
    with pytest.raises(EventError, match="period 2026-11 of customer 'acme' is closed"):
        engine.rate(late)
    other = Engine(engine.catalog, storage, registry)  # a fresh engine learns it from storage
    assert "is closed" in other.rate_batch([late]).rejected[0].reason
    assert other.rate(event("dec", type="api.call", at=utc(2026, 12, 2, 12), customer="acme")) is not None


def test_a_changed_pricebook_cannot_close_a_period_differently(
    book: Book, registry: Registry, storage: Storage
) -> None:
    close_period(Engine(book(SUBSCRIPTIONS), storage, registry), "2026-11", customers=["acme"])
    changed = Engine(book(SUBSCRIPTIONS.replace('fee: "30"', 'fee: "35"')), storage, registry)
    with pytest.raises(TransactionConflict, match="fee:acme:2026-11:0"):
        close_period(changed, "2026-11", customers=["acme"])


def test_only_customers_billed_by_that_kind_of_period_are_closed(
    book: Book, registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(SUBSCRIPTIONS), storage, registry)
    assert close_period(engine, "2026-W47").posted == []
    # A week not yet ended is no reason to list monthly customers as skipped: the close is not theirs.
    assert close_period(engine, "2026-W49").skipped == close_period(engine, "2026-12-03").skipped == []
    with pytest.raises(RatingError, match="'november' is not a period"):
        close_period(engine, "november")


def test_a_period_closed_while_a_batch_is_rating_takes_none_of_the_rest(
    book: Book, registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(SUBSCRIPTIONS), storage, registry)
    closer = Engine(engine.catalog, storage, registry)
    calls = [event(f"c{i}", type="api.call", at=utc(2026, 11, 20, 12), customer="acme") for i in range(6)]

    def close_after_the_first_chunk(read: int) -> None:
        if read == 2:
            close_period(closer, "2026-11", customers=["acme"])

    report = engine.rate_batch(calls, chunk_size=2, progress=close_after_the_first_chunk)
    assert report.posted == 2
    assert [r.code for r in report.rejected] == [Refusal.CLOSED_PERIOD] * 4
    closed_at = storage.transaction("close:acme:2026-11")
    assert closed_at is not None
    assert [t.id for t in storage.transactions_of("rating", "acme")] == ["rating:c0", "rating:c1"]


def test_the_storage_refuses_usage_in_a_closed_period_inside_its_write(
    book: Book, registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(SUBSCRIPTIONS), storage, registry)
    late = event("late", type="api.call", at=utc(2026, 11, 29, 12), customer="acme")
    priced = engine.quote(late)  # priced while the period was still open
    close_period(engine, "2026-11", customers=["acme"])
    before = storage.balances()
    with pytest.raises(PeriodClosed):
        storage.record([event_record(priced)])
    assert storage.balances() == before and storage.rated_events(["late"]) == {}


def test_periods_that_cannot_be_closed_yet_or_at_all_close_nothing(book: Book, registry: Registry) -> None:
    """A period before the first version, one not yet ended, and one after an open predecessor are skipped with
    their codes, and post nothing (a 2030 close once posted fees and shut May 2030 to usage)."""
    storage = MemoryStorage()
    engine = Engine(book(SIMPLE_PRICEBOOK + "default_plan: basic\n"), storage, registry, clock=lambda: utc(2026, 12, 3))
    before = close_period(engine, "2020-01")
    assert [(s.customer, s.code) for s in before.skipped] == [("acme", CloseRefusal.NO_VERSION_IN_FORCE)]
    future = close_period(engine, "2030-05")
    assert [(s.customer, s.code) for s in future.skipped] == [("acme", CloseRefusal.PERIOD_NOT_ENDED)]
    assert before.posted == future.posted == [] and storage.balances() == {}
    later_engine = Engine(engine.catalog, storage, registry, clock=lambda: utc(2031, 1, 1))
    assert later_engine.rate(event("may", at=utc(2030, 5, 2), tokens=1, model="m")) is not None
    engine.rate(event("nov", at=utc(2026, 11, 5), tokens=1, model="m"))
    engine.rate(event("dec", at=utc(2026, 12, 1), tokens=1, model="m"))
    ahead = close_period(later_engine, "2026-12")
    assert [(s.customer, s.code) for s in ahead.skipped] == [("acme", CloseRefusal.PREDECESSOR_OPEN)]
    assert ahead.posted == []
    assert "close:acme:2026-11" in [t.id for t in close_period(later_engine, "2026-11").posted]
    assert "close:acme:2026-12" in [t.id for t in close_period(later_engine, "2026-12").posted]


FREE_THEN_VOLUME = """\
pricebook: switch
version: 2026-11-01
currency: USD
meters:
  units: {event: api.call, sum: units}
plans:
  a:
    minimum: "4"
    charges:
      - {meter: units, model: per_unit, unit_price: "0"}
  b:
    charges:
      - meter: units
        model: tiered
        mode: volume
        tiers:
          - {up_to: 10, unit_price: "1"}
          - {unit_price: "0.1"}
customers:
  acme: {plan: a, changes: [{plan: b, on: 2026-11-15}]}
"""


def test_a_negative_period_is_a_credit_never_a_true_up(book: Book, registry: Registry, storage: Storage) -> None:
    """A period whose charges add up below zero posts no more than the minimum as a true-up (-5.800 once posted
    a 5.800 true-up with no minimum at all): the shortfall is ``max(0, minimum - max(0, usage + fees))``."""
    engine = Engine(book(FREE_THEN_VOLUME), storage, registry, clock=later)
    engine.rate(event("free", at=utc(2026, 11, 10), units=9))  # 0 under plan a
    engine.rate(event("credit", at=utc(2026, 11, 20), units=3))  # 12 x 0.1 - 9 x 1 = -7.8 under plan b
    assert storage.period_totals("2026-11") == {("acme", "USD"): Decimal("-7.8")}
    report = close_period(engine, "2026-11")
    minimum = [t for t in report.posted if t.kind == "minimum"]
    assert [t.postings[0].amount for t in minimum] == [Decimal("1.87")]  # 4 for 14 of 30 days, not 1.87 + 7.80


def test_close_bills_what_committed_before_it_and_nothing_moves_under_it(
    book: Book, registry: Registry, storage: Storage
) -> None:
    """Another writer commits into the period while close reads its totals: close waits for it or it waits for
    close, never a true-up on stale totals (4.000 once billed on 1.000 although 4.001 more had been committed)."""
    import threading

    text = SIMPLE_PRICEBOOK.replace("  basic:\n", '  basic:\n    minimum: "5"\n')
    engine = Engine(book(text), storage, registry, clock=later)
    engine.rate(event("first", at=utc(2026, 11, 5), tokens=1000, model="m"))  # 1.010 USD
    read_totals, outcome = storage.period_totals, {}

    def rate_meanwhile() -> None:  # through a connection of its own, where the storage has connections
        other = storage if storage.url.startswith("memory") else registry.open_storage(storage.url)
        writer = Engine(engine.catalog, other, registry)
        try:
            outcome["rated"] = writer.rate(event("meanwhile", at=utc(2026, 11, 6), tokens=7982, model="m"))
        except EventError as error:
            outcome["refused"] = error.code
        finally:
            if other is not storage:
                other.close()

    def totals_with_a_writer_racing(period: str) -> dict[tuple[str, str], Decimal]:
        racing = threading.Thread(target=rate_meanwhile)
        racing.start()
        racing.join(0.5)  # long enough to commit, were it not held off
        storage.period_totals = read_totals  # type: ignore[method-assign]
        outcome["thread"] = racing
        return read_totals(period)

    storage.period_totals = totals_with_a_writer_racing  # type: ignore[method-assign]
    report = close_period(engine, "2026-11")
    outcome["thread"].join(30)
    assert outcome == {"thread": outcome["thread"], "refused": Refusal.CLOSED_PERIOD}
    usage = read_totals("2026-11")[("acme", "USD")]
    shortfall = sum((t.postings[0].amount for t in report.posted if t.kind == "minimum"), Decimal(0))
    assert usage + shortfall == Decimal("5.00")


def test_close_and_rerate_commands_say_when_they_were_given_nothing_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by attack: closing a customer who has nothing to close, and a rerate window that ends before it
    starts, exited 0 as if done."""
    from rating.cli import main

    book, db = tmp_path / "book.yaml", str(tmp_path / "r.db")
    book.write_text(SIMPLE_PRICEBOOK)
    events = tmp_path / "e.jsonl"
    events.write_text(event("e1", at=utc(2026, 11, 5), tokens=1, model="m").model_dump_json() + "\n")
    assert main(["rate", str(events), "-p", str(book), "--db", db]) == 0
    assert main(["close-period", "--period", "2026-11", "-p", str(book), "--db", db, "--customer", "nobody"]) == 3
    assert "nothing of 2026-11 to close for nobody" in capsys.readouterr().err
    window = ["--from", "2026-12-01", "--to", "2026-11-01"]
    assert main(["rerate", "-p", str(book), "--db", db, *window]) == 2
    assert "--to 2026-11-01 must come after --from 2026-12-01" in capsys.readouterr().err
