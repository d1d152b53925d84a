"""Re-rating history with a fixed pricebook posts the differences, never editing what was posted."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.accounts import receivable_account, revenue_account, wallet_account
from rating.billing.close import close_period
from rating.billing.rerate import rerate
from rating.cli import main
from rating.engine import Engine
from rating.errors import RerateRefused
from rating.events import UsageEvent
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook
from rating.refusals import Refusal, RerateRefusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.wallet.wallets import Wallets
from tests.helpers import EXAMPLE, event
from tests.simulate.test_simulate import books, usage
from tests.test_telescoping import METER_SPECS, REGISTRY

OCTOBER, DECEMBER = dt.datetime(2026, 10, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)

PRICEBOOK = """\
pricebook: fixes
version: 2026-10-01
currency: USD
meters:
  tokens: {{event: api.call, sum: tokens}}
plans:
  basic:
    charges:
      - meter: tokens
        model: tiered
        mode: graduated
        tiers:
          - {{up_to: 1000, unit_price: "{first}"}}
          - {{unit_price: "0.0005"}}
customers:
  acme: {{plan: basic}}
  wally: {{plan: basic, billing: wallet}}
"""


def fixes(book, first: str) -> Pricebook:  # type: ignore[no-untyped-def]
    return book(PRICEBOOK.format(first=first))  # type: ignore[no-any-return]


def nonzero(storage: Storage) -> dict[tuple[str, str], Decimal]:
    return {key: amount for key, amount in storage.balances().items() if amount}


@st.composite
def fixes_of_history(draw: st.DrawFn) -> tuple[Pricebook, Pricebook, list[UsageEvent], int]:
    aggregation = draw(st.sampled_from(sorted(METER_SPECS)))
    events = draw(usage())
    return draw(books(aggregation)), draw(books(aggregation)), events, draw(st.integers(0, len(events)))


@settings(max_examples=100)
@given(fixes_of_history())
def test_rating_then_rerating_with_the_fix_posts_what_rating_with_the_fix_would_have(
    case: tuple[Pricebook, Pricebook, list[UsageEvent], int],
) -> None:
    """Rate some events by A, re-rate by B, rate the rest by B and close: the ledger is B's, to the last digit."""
    wrong, fixed, events, rated_before = case
    events = sorted(events, key=lambda e: (e.timestamp, e.id))  # time order, ties by id, as rating takes it
    corrected = MemoryStorage()
    Engine(wrong, corrected, REGISTRY).rate_batch(events[:rated_before])
    rerate(corrected, Catalog([fixed]), REGISTRY, OCTOBER, DECEMBER, clock=lambda: LATER)
    later = Engine(fixed, corrected, REGISTRY)
    later.rate_batch(events[rated_before:])
    right = Engine(fixed, MemoryStorage(), REGISTRY)
    right.rate_batch(events)
    for engine in (later, right):
        for period in ("2026-10", "2026-11"):
            close_period(engine, period)
    assert nonzero(corrected) == nonzero(right.storage)
    assert corrected.period_totals("2026-11") == right.storage.period_totals("2026-11")
    assert corrected.verify() == []
    again = rerate(corrected, Catalog([fixed]), REGISTRY, OCTOBER, DECEMBER, clock=lambda: LATER)
    assert again.corrections == []


def test_an_open_period_is_corrected_in_place_and_rerating_again_posts_nothing(
    storage: Storage, book, registry
) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(fixes(book, "0.001"), storage, registry)
    engine.rate_batch([event(f"e{i}", at=OCTOBER + dt.timedelta(days=i), tokens=600) for i in range(3)])
    stored = {t.id: t.fingerprint() for t in storage.transactions()}
    report = rerate(storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER, clock=lambda: LATER)
    # 600 + 400 tokens of the first tier cost 0.001 more each; the rest stays in the second tier.
    assert [c.transaction.id for c in report.corrections] == ["rerate:e0:1", "rerate:e1:1"]
    assert report.rows()[0]["difference"] == Decimal("1.000")
    assert {t.id: t.fingerprint() for t in storage.transactions() if t.id in stored} == stored  # nothing edited
    assert storage.balances([receivable_account("acme")])[receivable_account("acme"), "USD"] == Decimal("2.400")
    assert storage.period_totals("2026-10") == {("acme", "USD"): Decimal("2.400")}
    correction = storage.transaction("rerate:e1:1")
    assert correction is not None and correction.timestamp == OCTOBER + dt.timedelta(days=1)
    assert correction.metadata["period"] == "2026-10" and "adjusts" not in correction.metadata
    assert rerate(storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER).corrections == []
    assert storage.verify() == []


def test_a_closed_periods_difference_goes_into_the_current_period_as_an_adjustment(
    storage: Storage, book, registry
) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(fixes(book, "0.001"), storage, registry)
    engine.rate_batch([event("e0", at=OCTOBER, tokens=500)])
    close_period(engine, "2026-10")
    october = storage.period_totals("2026-10")
    now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    report = rerate(storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, now, clock=lambda: now)
    correction = storage.transaction("rerate:e0:1")
    assert correction is not None and correction.timestamp == now
    assert correction.metadata["adjusts"] == "2026-10" and correction.metadata["period"] == "2026-11"
    assert report.corrections[0].transaction == correction
    assert storage.period_totals("2026-10") == october  # the closed period stays as billed
    assert storage.period_totals("2026-11") == {("acme", "USD"): Decimal("0.500")}
    assert storage.verify() == []


def test_with_the_current_period_closed_too_the_difference_is_refused(book, registry) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(fixes(book, "0.001"), MemoryStorage(), registry)
    engine.rate_batch([event("e0", at=OCTOBER, tokens=500)])
    close_period(engine, "2026-10")
    report = rerate(engine.storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER, clock=lambda: OCTOBER)
    assert report.corrections == [] and [r.code for r in report.refused] == [Refusal.CLOSED_PERIOD]


def test_a_wallet_customer_is_refunded_to_the_wallet_and_an_increase_it_cannot_pay_is_refused(
    storage: Storage, book, registry
) -> None:  # type: ignore[no-untyped-def]
    Wallets(storage).deposit("wally", "USD", Decimal("1"), "d1")
    engine = Engine(fixes(book, "0.001"), storage, registry)
    engine.rate_batch([event("e0", customer="wally", at=OCTOBER, tokens=800)])
    assert storage.balances([wallet_account("wally")])[wallet_account("wally"), "USD"] == Decimal("-0.200")
    cheaper = rerate(storage, Catalog([fixes(book, "0.0005")]), registry, OCTOBER, DECEMBER, clock=lambda: LATER)
    assert len(cheaper.corrections) == 1
    assert storage.balances([wallet_account("wally")])[wallet_account("wally"), "USD"] == Decimal("-0.600")
    dearer = rerate(storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER, clock=lambda: LATER)
    assert dearer.corrections == [] and [r.code for r in dearer.refused] == [Refusal.INSUFFICIENT_FUNDS]
    assert storage.balances([wallet_account("wally")])[wallet_account("wally"), "USD"] == Decimal("-0.600")
    assert storage.verify() == []


def test_a_dry_run_posts_nothing(book, registry) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(fixes(book, "0.001"), MemoryStorage(), registry)
    engine.rate_batch([event("e0", at=OCTOBER, tokens=500)])
    before = engine.storage.count_transactions()
    report = rerate(engine.storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER, dry_run=True)
    assert len(report.corrections) == 1 and engine.storage.count_transactions() == before


def test_only_periods_that_start_in_the_range_are_rerated(book, registry) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(fixes(book, "0.001"), MemoryStorage(), registry)
    november = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    engine.rate_batch([event("oct", at=OCTOBER, tokens=500), event("nov", at=november, tokens=500)])
    report = rerate(
        engine.storage, Catalog([fixes(book, "0.002")]), registry, november, november + dt.timedelta(days=1)
    )
    assert report.repriced == 1 and [c.event_id for c in report.corrections] == ["nov"]


def test_a_correction_tells_the_transaction_posted_hook(book) -> None:  # type: ignore[no-untyped-def]
    seen = []

    class Listener:
        from rating.hookspecs import hookimpl

        @hookimpl
        def rating_transaction_posted(self, transaction):  # type: ignore[no-untyped-def]
            seen.append(transaction.id)

    registry = Registry.load()
    registry.manager.register(Listener())
    engine = Engine(fixes(book, "0.001"), MemoryStorage(), registry)
    engine.rate_batch([event("e0", at=OCTOBER, tokens=500)])
    rerate(engine.storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER)
    assert seen == ["rating:e0", "rerate:e0:1"]


def test_rerate_command_shows_a_dry_run_then_posts_the_differences(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    fixed = demo_history.parent / "fixed.yaml"
    text = EXAMPLE.read_text()
    assert 'unit_price: "0.000015"' in text
    fixed.write_text(text.replace('unit_price: "0.000015"', 'unit_price: "0.000012"'))
    command = ["rerate", "--db", "history.db", "--from", "2026-11-01", "--to", "2026-12-01", "-p", str(fixed)]
    capsys.readouterr()
    assert main([*command, "--dry-run", "-o", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["dry_run"] and planned["corrections"]
    assert any(Decimal(row["difference"]) < 0 for row in planned["customers"])
    assert main([*command, "-o", "json"]) == 0
    posted = json.loads(capsys.readouterr().out)
    assert posted["corrections"] == planned["corrections"] and posted["customers"] == planned["customers"]
    assert main([*command, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["corrections"] == []
    assert main(["verify", "--db", "history.db"]) == 0


@pytest.mark.parametrize("missing", [["--from", "2026-11-01"], ["--to", "2026-12-01"]])
def test_rerate_needs_the_range(demo_history: Path, missing: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["rerate", "--db", "history.db", *missing, "-p", str(EXAMPLE)]) == 2  # a usage error
    assert "required" in capsys.readouterr().err


def test_a_correction_moves_the_revenue_of_the_charge_it_corrects(book, registry) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(fixes(book, "0.001"), MemoryStorage(), registry)
    engine.rate_batch([event("e0", at=OCTOBER, tokens=500)])
    rerate(engine.storage, Catalog([fixes(book, "0.002")]), registry, OCTOBER, DECEMBER)
    revenue = revenue_account("basic", "tokens")
    assert engine.storage.balances([revenue])[revenue, "USD"] == Decimal("-1.000")


NOVEMBER = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
JANUARY = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def late_history(storage: Storage, book, registry) -> Engine:  # type: ignore[no-untyped-def]
    """acme's November (600 tokens, closed), 600 tokens of November arriving late, then 600 tokens of December.

    The late 600 go into December, priced from nothing there (0.600), so December's own 600 cost 0.500.
    """
    engine = Engine(book(PRICEBOOK.format(first="0.001") + "late_usage: next_period\n"), storage, registry)
    engine.rate(event("nov", at=NOVEMBER + dt.timedelta(days=4), tokens=600))
    close_period(engine, "2026-11")
    late = engine.rate(event("late", at=NOVEMBER + dt.timedelta(days=19), tokens=600))
    assert late is not None and late.period == "2026-12" and late.transaction.metadata["late_for"] == "2026-11"
    engine.rate(event("dec", at=DECEMBER + dt.timedelta(days=4), tokens=600))
    assert storage.period_totals("2026-12") == {("acme", "USD"): Decimal("1.100")}
    return engine


@pytest.mark.parametrize("since, until", [(NOVEMBER, DECEMBER), (DECEMBER, JANUARY), (OCTOBER, JANUARY)])
def test_a_late_event_is_rerated_in_the_period_billing_put_it_in(  # type: ignore[no-untyped-def]
    storage: Storage, book, registry, since: dt.datetime, until: dt.datetime
) -> None:
    """Issue 20 item 3: re-rating with the unchanged pricebook posts nothing, also around late usage."""
    engine = late_history(storage, book, registry)
    before = nonzero(storage)
    report = rerate(storage, engine.catalog, registry, since, until, clock=lambda: LATER)
    assert report.corrections == [] and report.refused == []
    assert report.repriced == {NOVEMBER: 1, DECEMBER: 2}.get(since, 3)  # the late event counts in December
    assert nonzero(storage) == before


def test_a_fix_rerates_a_late_event_where_billing_put_it(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """Re-rating December by a fix prices the late event first in December (its time), then December's own."""
    late_history(storage, book, registry)
    fixed = book(PRICEBOOK.format(first="0.002") + "late_usage: next_period\n")
    report = rerate(storage, Catalog([fixed]), registry, DECEMBER, JANUARY, clock=lambda: LATER)
    # late: 600 at 0.002 = 1.200 (was 0.600); dec: 400 at 0.002 + 200 at 0.0005 = 0.900 (was 0.500).
    assert {c.event_id: c.transaction.metadata["period"] for c in report.corrections} == {
        "late": "2026-12",
        "dec": "2026-12",
    }
    assert storage.period_totals("2026-12") == {("acme", "USD"): Decimal("2.100")}
    assert storage.period_totals("2026-11") == {("acme", "USD"): Decimal("0.600")}
    assert rerate(storage, Catalog([fixed]), registry, DECEMBER, JANUARY, clock=lambda: LATER).corrections == []
    assert storage.verify() == []


WEEKLY = PRICEBOOK.replace("  basic:\n", "  basic:\n    period: week\n")


@pytest.mark.parametrize("closed", [False, True])
def test_a_rerate_that_changes_the_billing_period_is_refused(storage: Storage, book, registry, closed: bool) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 4: weeks instead of months (or another anchor) would rewrite periods billing closed."""
    engine = Engine(fixes(book, "0.001"), storage, registry)
    engine.rate_batch([event(f"e{day}", at=NOVEMBER + dt.timedelta(days=day), tokens=300) for day in (2, 9, 16)])
    if closed:
        close_period(engine, "2026-11")
    before = storage.count_transactions()
    weekly = book(WEEKLY.format(first="0.002"))
    with pytest.raises(RerateRefused) as refused:
        rerate(storage, Catalog([weekly]), registry, NOVEMBER, DECEMBER, clock=lambda: LATER)
    assert refused.value.code == RerateRefusal.PERIOD_MISMATCH
    assert storage.count_transactions() == before


def test_a_rerate_that_moves_the_anchor_of_a_closed_period_is_refused(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """Events of 16 to 30 November keep their label under an anchor on the 15th; the closed period's end moves."""
    engine = Engine(fixes(book, "0.001"), storage, registry)
    engine.rate(event("e0", at=NOVEMBER + dt.timedelta(days=20), tokens=300))
    close_period(engine, "2026-11")
    anchor = "acme: {plan: basic, since: 2026-10-15, anniversary: true}"
    anchored = book(PRICEBOOK.format(first="0.002").replace("acme: {plan: basic}", anchor))
    with pytest.raises(RerateRefused) as refused:
        rerate(storage, Catalog([anchored]), registry, NOVEMBER, DECEMBER, clock=lambda: LATER)
    assert refused.value.code == RerateRefusal.PERIOD_MISMATCH


KIRITIMATI = "acme: {plan: basic, timezone: Pacific/Kiritimati}"  # UTC+14: its November ends at 10:00 UTC
ANCHORED = "acme: {plan: basic, since: 2026-10-15, anniversary: true}"  # periods from the 15th


@pytest.mark.parametrize(
    "change",
    [
        lambda text: text.replace("acme: {plan: basic}", KIRITIMATI),
        lambda text: text.replace("acme: {plan: basic}", ANCHORED),
        lambda text: text.replace("  basic:\n", "  basic:\n    period: week\n"),
    ],
    ids=["time zone", "anchor", "kind"],
)
def test_a_rerate_that_moves_an_open_periods_bounds_is_refused_before_anything_is_written(  # type: ignore[no-untyped-def]
    storage: Storage, book, registry, change
) -> None:
    """Issue 20 (Decisions, Rerate): a fix moving a customer to Pacific/Kiritimati once re-rated nothing in
    open November (its periods then start at 10:00 UTC, before the window) and reported success."""
    engine = Engine(fixes(book, "0.001"), storage, registry)
    days = (4, 20, 29.75)  # the last one is 30 November 18:00 UTC, 1 December in Kiritimati
    engine.rate_batch([event(f"e{day}", at=NOVEMBER + dt.timedelta(days=day), tokens=300) for day in days])
    before, balances = storage.count_transactions(), nonzero(storage)
    fixed = book(change(PRICEBOOK.format(first="0.002")))
    with pytest.raises(RerateRefused) as refused:
        rerate(storage, Catalog([fixed]), registry, NOVEMBER, DECEMBER, clock=lambda: LATER)
    assert refused.value.code == RerateRefusal.PERIOD_MISMATCH
    message = str(refused.value)
    assert "'acme'" in message and "\n" not in message
    assert storage.count_transactions() == before and nonzero(storage) == balances


def test_a_closed_predecessor_tells_a_move_that_no_event_of_the_window_shows(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """Every November event keeps its label in Kiritimati; October, closed at midnight UTC, would end at 10:00."""
    engine = Engine(fixes(book, "0.001"), storage, registry, clock=lambda: LATER)
    engine.rate(event("oct", at=OCTOBER + dt.timedelta(days=9), tokens=300))
    close_period(engine, "2026-10")
    engine.rate(event("nov", at=NOVEMBER + dt.timedelta(days=9), tokens=300))
    before = storage.count_transactions()
    moved = book(PRICEBOOK.format(first="0.002").replace("acme: {plan: basic}", KIRITIMATI))
    since = dt.datetime(2026, 10, 31, 10, tzinfo=dt.UTC)  # Kiritimati's November: a window that selects it
    with pytest.raises(RerateRefused) as refused:
        rerate(storage, Catalog([moved]), registry, since, DECEMBER, clock=lambda: LATER)
    assert refused.value.code == RerateRefusal.PERIOD_MISMATCH
    assert "Pacific/Kiritimati" in str(refused.value) and "2026-10" in str(refused.value)
    assert storage.count_transactions() == before


def test_rerate_command_refuses_a_move_to_another_time_zone(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The command exits 3 (nothing done) with the refusal on one line, and posts nothing."""
    book_path, moved = tmp_path / "book.yaml", tmp_path / "moved.yaml"
    book_path.write_text(PRICEBOOK.format(first="0.001").replace("{{", "{").replace("}}", "}"))
    moved.write_text(book_path.read_text().replace("acme: {plan: basic}", KIRITIMATI))
    events = tmp_path / "events.jsonl"
    late_in_november = event("e1", at=NOVEMBER + dt.timedelta(days=29.75), tokens=300)
    events.write_text(late_in_november.model_dump_json() + "\n")
    db = str(tmp_path / "ledger.db")
    assert main(["rate", str(events), "-p", str(book_path), "--db", db]) == 0
    capsys.readouterr()
    command = ["rerate", "--db", db, "--from", "2026-11-01", "--to", "2026-12-01", "-p", str(moved)]
    assert main(command) == 3  # nothing done
    err = capsys.readouterr().err
    assert "period_mismatch" in err and "Pacific/Kiritimati" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["rerate", "--db", db, "--from", "2026-11-01", "--to", "2026-12-01", "-p", str(book_path)]) == 0


def test_rerate_command_refuses_a_change_of_period_in_one_line(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    weekly = demo_history.parent / "weekly.yaml"
    text = EXAMPLE.read_text()
    assert "period: month" in text
    weekly.write_text(text.replace("period: month", "period: week"))
    command = ["rerate", "--db", "history.db", "--from", "2026-11-01", "--to", "2026-12-01", "-p", str(weekly)]
    capsys.readouterr()
    assert main(command) == 3  # nothing done
    err = capsys.readouterr().err
    assert "period_mismatch" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_period_that_holds_only_late_usage_is_rerated_too(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """The late event is December's only usage and is stamped in November: still found, and corrected there."""
    late_book = PRICEBOOK + "late_usage: next_period\n"
    engine = Engine(book(late_book.format(first="0.001")), storage, registry)
    engine.rate(event("nov", at=NOVEMBER + dt.timedelta(days=4), tokens=600))
    close_period(engine, "2026-11")
    engine.rate(event("late", at=NOVEMBER + dt.timedelta(days=19), tokens=600))
    assert rerate(storage, engine.catalog, registry, DECEMBER, JANUARY, clock=lambda: LATER).corrections == []
    report = rerate(storage, Catalog([book(late_book.format(first="0.002"))]), registry, DECEMBER, JANUARY)
    assert report.repriced == 1 and [c.event_id for c in report.corrections] == ["late"]
    assert storage.period_totals("2026-12") == {("acme", "USD"): Decimal("1.200")}


@st.composite
def late_histories(draw: st.DrawFn) -> tuple[Pricebook, list[UsageEvent], int]:
    """A pricebook taking late usage into the next period, events in time order, and how many arrive before
    October closes (the October events after them are late, into November)."""
    book = draw(books(draw(st.sampled_from(sorted(METER_SPECS))))).model_copy(update={"late_usage": "next_period"})
    events = sorted(draw(usage()), key=lambda e: e.timestamp)
    return book, events, draw(st.integers(0, len(events)))


@settings(max_examples=40)
@given(late_histories(), st.sampled_from([(OCTOBER, DECEMBER), (OCTOBER, NOVEMBER), (NOVEMBER, DECEMBER)]))
def test_rerating_with_the_pricebook_that_billed_posts_nothing_whatever_came_late(
    case: tuple[Pricebook, list[UsageEvent], int], range_: tuple[dt.datetime, dt.datetime]
) -> None:
    """Issue 20 item 3, the class: with the pricebook that billed, every period re-prices to what is posted."""
    book, events, before_close = case
    engine = Engine(book, MemoryStorage(), REGISTRY)
    engine.rate_batch(events[:before_close])
    close_period(engine, "2026-10")
    engine.rate_batch(events[before_close:])  # a customer not yet subscribed is refused; the rest is posted
    balances = nonzero(engine.storage)
    again = rerate(engine.storage, Catalog([book]), REGISTRY, *range_, clock=lambda: LATER)
    assert again.corrections == [] and again.refused == []
    assert nonzero(engine.storage) == balances
