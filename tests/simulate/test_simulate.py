"""Simulation prices history with the billing pricer: the same numbers as rate + close-period, to the last digit."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from rating.accounts import prepaid_account, receivable_account
from rating.billing.close import close_period
from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.engine import Engine
from rating.events import UsageEvent
from rating.money import format_decimal
from rating.pricebook.catalog import Catalog
from rating.pricebook.meters import Meter
from rating.pricebook.model import Contract, CustomerSpec, Plan, Pricebook
from rating.pricebook.pricing import PricingModel
from rating.refusals import Refusal
from rating.simulate import EventFile, simulate
from rating.storage.memory import MemoryStorage
from tests.helpers import EXAMPLE, ROOT
from tests.test_telescoping import METER_SPECS, REGISTRY, models, quantities

CUSTOMERS = ["listed", "walk-in", "contracted"]
CANDIDATE = str(ROOT / "pricebooks" / "candidates" / "ai-gateway-2027.yaml")


money = st.sampled_from([None, Decimal(0), Decimal("9.99"), Decimal(30), Decimal("1000")])


def pricebook(aggregation: str, model: PricingModel, fee: Decimal | None, minimum: Decimal | None,
              commitment: Decimal | None, contract_model: PricingModel) -> Pricebook:  # fmt: skip
    return Pricebook(
        pricebook="sim",
        version=dt.date(2026, 10, 1),
        currency="USD",
        meters={"m": Meter(**METER_SPECS[aggregation])},  # type: ignore[arg-type]
        plans={"p": Plan(charges=(model,), fee=fee, minimum=minimum)},
        customers={"listed": CustomerSpec(plan="p", since=dt.date(2026, 10, 10)), "contracted": CustomerSpec(plan="p")},
        default_plan="p",
        contracts={
            "deal": Contract.model_validate(
                {"customer": "contracted", "from": "2026-11-01", "charges": (contract_model,), "commitment": commitment}
            )
        },
    )


@st.composite
def books(draw: st.DrawFn, aggregation: str) -> Pricebook:
    """A pricebook of one meter of ``aggregation``: a plan with fee and minimum, and a contract with a commitment."""
    return pricebook(
        aggregation,
        draw(models("m", aggregation)),
        draw(money),
        draw(money),
        draw(money),
        draw(models("m", aggregation)),
    )


@st.composite
def usage(draw: st.DrawFn) -> list[UsageEvent]:
    """Up to 25 events of the three customers over October and November, in any order."""
    readings = draw(
        st.lists(
            st.tuples(
                quantities,
                st.sampled_from("abc"),
                st.sampled_from(["x", "y"]),
                st.sampled_from(CUSTOMERS),
                st.integers(min_value=0, max_value=60 * 24 * 60 - 1),  # minutes into October and November
            ),
            min_size=1,
            max_size=25,
        )
    )
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    events = [
        UsageEvent(
            id=f"e{i}",
            customer=customer,
            type="use",
            timestamp=start + dt.timedelta(minutes=minute),
            properties={"q": q, "member": member, "g": group},
        )
        for i, (q, member, group, customer, minute) in enumerate(readings)
    ]
    return draw(st.permutations(events))


@st.composite
def histories(draw: st.DrawFn) -> tuple[Pricebook, list[UsageEvent]]:
    return draw(books(draw(st.sampled_from(sorted(METER_SPECS))))), draw(usage())


@settings(max_examples=150)
@given(histories())
def test_simulating_a_pricebook_gives_what_rate_and_close_period_post(history: tuple[Pricebook, list]) -> None:  # type: ignore[type-arg]
    book, events = history
    engine = Engine(book, MemoryStorage(), REGISTRY)
    engine.rate_batch(events)
    result = simulate(events, Catalog([book]), [], REGISTRY)
    assert result.baseline.periods == {f"{e.timestamp:%Y-%m}" for e in events}
    for period in sorted(result.baseline.periods):
        close_period(engine, period)
    balances = engine.storage.balances()
    for customer in CUSTOMERS:
        ledger = {
            asset: balances.get((receivable_account(customer), asset), Decimal(0))
            + balances.get((prepaid_account(customer), asset), Decimal(0))
            for asset in {"USD"}
        }
        simulated = result.baseline.charged.get(customer, {})
        assert {a: v for a, v in ledger.items() if v} == {a: v for a, v in simulated.items() if v}


def test_a_candidate_is_compared_customer_by_customer(book, registry) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import SIMPLE_PRICEBOOK, event

    current = book(SIMPLE_PRICEBOOK + "default_plan: basic\n")
    dearer = book(SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "0.02"') + "default_plan: basic\n")
    events = [event("e1", tokens=1500, model="m"), event("e2", customer="zed", tokens=10, model="m"),
              event("e3", customer="bad:id", tokens=1, model="m") if False else event("e3", type="nope")]  # fmt: skip
    result = simulate(events, Catalog([current]), [Catalog([dearer])], registry, labels=["now", "dearer"])
    assert result.rows() == [
        {"customer": "acme", "asset": "USD", "now": Decimal("1.26"), "dearer": Decimal("1.27"),
         "delta dearer": Decimal("0.01"), "% dearer": Decimal("0.79")},
        {"customer": "zed", "asset": "USD", "now": Decimal("0.020"), "dearer": Decimal("0.030"),
         "delta dearer": Decimal("0.010"), "% dearer": Decimal("50.00")},
    ]  # fmt: skip
    assert result.movers(result.candidates[0]) == {"more": 2, "less": 0, "same": 0}
    assert result.baseline.unpriced == {Refusal.UNKNOWN_EVENT_TYPE: 1}


def test_simulate_command_compares_the_demo_history_under_a_candidate(
    tmp_path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    events = write_demo_events(tmp_path / "demo-events.jsonl", 400)
    assert main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", CANDIDATE, "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    by_customer = {row["customer"]: row for row in document["customers"] if row["asset"] == "USD"}
    # The candidate adds a 20 USD monthly fee to the team plan: each team customer pays it once.
    team = [c for c, row in by_customer.items() if Decimal(row["delta ai-gateway-2027"]) >= 20]
    assert team and document["invalid_records"] == 0
    total = sum(Decimal(row["delta ai-gateway-2027"]) for row in by_customer.values())
    revenue = document["revenue"]
    assert Decimal(revenue["ai-gateway-2027"]["USD"]) - Decimal(revenue["ai-gateway"]["USD"]) == total
    assert main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", CANDIDATE]) == 0
    assert "customers paying more:" in capsys.readouterr().err


def test_an_event_id_is_priced_once_and_a_conflicting_reuse_is_counted(book, registry) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import SIMPLE_PRICEBOOK, event

    catalog = Catalog([book(SIMPLE_PRICEBOOK)])
    first = event("e1", tokens=10, model="m")
    changed = event("e1", tokens=99, model="m")
    scenario = simulate([first, first, changed], catalog, [], registry).baseline
    assert scenario.charged == {"acme": {"USD": Decimal("0.020")}}
    assert scenario.unpriced == {Refusal.DUPLICATE_CONFLICT: 1}


def test_history_from_the_database_simulates_like_the_file_and_breaks_down_by_meter(demo_history, capsys) -> None:  # type: ignore[no-untyped-def]
    events = demo_history
    capsys.readouterr()
    common = ["-p", str(EXAMPLE), "--vs", CANDIDATE, "-o", "json"]
    assert main(["simulate", str(events), *common]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["simulate", "--db", "history.db", "--from", "2026-11-01", "--to", "2026-12-01", *common]) == 0
    assert json.loads(capsys.readouterr().out) == from_file
    assert main(["simulate", str(events), "--by", "meter", *common]) == 0
    rows = json.loads(capsys.readouterr().out)["customers"]
    assert {"requests", "(close)"} <= {row["meter"] for row in rows}
    usd = [row for row in rows if row["asset"] == "USD"]
    total = sum(Decimal(row["ai-gateway"]) for row in usd)
    assert total == Decimal(from_file["revenue"]["ai-gateway"]["USD"])
    assert main(["simulate", "--db", "history.db", "--from", "nope", "--to", "2026-12-01", *common]) == 2
    assert "argument --from: 'nope' is not a date" in capsys.readouterr().err


def test_margins_compare_revenue_with_the_provider_costs_billing_posts(demo_history, capsys) -> None:  # type: ignore[no-untyped-def]
    from rating.accounts import is_cost

    events = demo_history
    capsys.readouterr()
    assert main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", CANDIDATE, "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    margins = {row["pricebook"]: row for row in document["margins"] if row["asset"] == "USD"}
    with REGISTRY.open_storage("history.db") as storage:
        posted = sum(v for (account, asset), v in storage.balances().items() if is_cost(account) and asset == "USD")
    base, other = margins["ai-gateway"], margins["ai-gateway-2027"]
    assert Decimal(base["cost"]) == posted > 0
    for row in (base, other):
        assert Decimal(row["margin"]) == Decimal(row["revenue"]) - Decimal(row["cost"])
        assert Decimal(row["revenue"]) == Decimal(document["revenue"][row["pricebook"]]["USD"])
    assert base["change"] is None
    assert Decimal(other["change"]) == Decimal(other["margin"]) - Decimal(base["margin"])
    assert main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", CANDIDATE]) == 0
    assert f"ai-gateway-2027: margin {format_decimal(Decimal(other['margin']))} USD" in capsys.readouterr().err


def test_events_are_read_once_for_every_pricebook_and_none_is_kept(book, registry) -> None:  # type: ignore[no-untyped-def]
    """A stream is priced under every pricebook in one pass; progress counts each event once; no event stays alive."""
    import gc
    import weakref

    from tests.helpers import SIMPLE_PRICEBOOK, event

    catalog = Catalog([book(SIMPLE_PRICEBOOK)])
    alive: list[weakref.ref[UsageEvent]] = []
    most_alive = 0

    def stream() -> Iterator[UsageEvent]:
        nonlocal most_alive
        for i in range(25_000):
            if not i % 1_000:
                gc.collect()
                most_alive = max(most_alive, sum(1 for ref in alive if ref() is not None))
                alive.clear()
            made = event(f"e{i}", tokens=i % 7, model="m")
            alive.append(weakref.ref(made))
            yield made

    seen: list[int] = []
    result = simulate(stream(), catalog, [catalog], registry, progress=seen.append)
    assert seen == [10_000, 20_000, 25_000]
    assert most_alive <= 1  # only the event being priced
    # 25,000 requests at 0.01, and their tokens: the first 1,000 at 0.001, the rest at 0.0005 (same under both)
    tokens = sum(i % 7 for i in range(25_000))
    expected = 25_000 * Decimal("0.01") + 1_000 * Decimal("0.001") + (tokens - 1_000) * Decimal("0.0005")
    for scenario in result.scenarios:
        assert sum(scenario.lines.values()) == expected == Decimal("287.9970")
        assert scenario.charged == {"acme": {"USD": Decimal("288.00")}}  # the close rounds the month to cents


def test_the_cli_streams_a_file_and_counts_its_invalid_records(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    events = write_demo_events(tmp_path / "demo.jsonl", 30)
    with events.open("a", encoding="utf-8") as stream:
        stream.write("{not json\n")
        stream.write('{"id": "x"}\n')
    assert (
        main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", CANDIDATE, "-o", "json"]) == 1
    )  # done, with records refused
    document = json.loads(capsys.readouterr().out)
    assert document["invalid_records"] == 2
    assert main(["diff", str(EXAMPLE), CANDIDATE, "--events", str(events)]) == 1
    assert "2 invalid records skipped" in capsys.readouterr().err
    seen: list[int] = []
    valid = EventFile(events, progress=seen.append)
    assert len(list(valid)) == 30 and valid.invalid == 2 and seen == [32]  # progress counts records, valid or not


def test_the_ledger_baseline_is_what_rate_and_close_period_billed(demo_history, capsys) -> None:  # type: ignore[no-untyped-def]
    events = demo_history
    ledger = ["simulate", "--db", "history.db", "--from", "2026-11-01", "--to", "2026-12-01", "--baseline", "ledger"]
    capsys.readouterr()
    assert main([*ledger, "--vs", str(EXAMPLE), "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert "customer periods are not closed yet" in captured.err
    open_rows = json.loads(captured.out)["customers"]
    assert any(Decimal(row["delta ai-gateway"]) for row in open_rows)  # the rounding close would post
    assert main(["close-period", "--period", "2026-11", "-p", str(EXAMPLE), "--db", "history.db"]) == 0
    capsys.readouterr()
    assert main([*ledger, "--vs", str(EXAMPLE), "--vs", CANDIDATE, "-o", "json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["customers"] and all(Decimal(row["delta ai-gateway"]) == 0 for row in compared["customers"])
    assert compared["revenue"]["ledger"] == compared["revenue"]["ai-gateway"]
    assert main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", CANDIDATE, "-o", "json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert compared["revenue"]["ai-gateway-2027"] == from_file["revenue"]["ai-gateway-2027"]
    assert main([*ledger]) == 2  # a usage error
    assert "--baseline ledger compares --db" in capsys.readouterr().err
