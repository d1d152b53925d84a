"""The columnar path totals per key in DuckDB and gives exactly what the per-event pricer gives."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating.errors import RatingError
from rating.events import UsageEvent
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import CustomerSpec, Pricebook
from rating.refusals import Refusal
from rating.simulate import Scenario, simulate
from rating.simulate.columnar import ParquetHistory, write_parquet
from tests.simulate.test_simulate import histories
from tests.test_telescoping import REGISTRY


def figures(scenario: Scenario) -> dict[str, object]:
    """Everything a simulation reports, with amounts compared by value."""
    return {
        "charged": {c: {a: v for a, v in per.items()} for c, per in scenario.charged.items()},
        "closing": scenario.closing,
        "lines": scenario.lines,
        "costs": scenario.costs,
        "unpriced": scenario.unpriced,
        "capped": scenario.capped,
        "periods": scenario.periods,
    }


def with_variety(book: Pricebook, events: list[UsageEvent], draw: st.DrawFn) -> tuple[Pricebook, list[UsageEvent]]:
    """Add what routes customers apart: a time zone, BYOK usage, unknown types, missing quantities, replays."""
    customers = dict(book.customers) | {"tokyo": CustomerSpec(plan="p", timezone="Asia/Tokyo")}
    book = book.model_copy(update={"customers": customers})
    varied = []
    for i, event in enumerate(events):
        change = draw(st.sampled_from(["keep"] * 6 + ["tokyo", "byok", "unknown", "no_q", "replay", "conflict"]))
        if change == "tokyo":
            event = event.model_copy(update={"customer": "tokyo"})
        elif change == "byok":
            event = event.model_copy(update={"billing_source": "byok"})
        elif change == "unknown":
            event = event.model_copy(update={"type": "other"})
        elif change == "no_q":
            event = event.model_copy(update={"properties": {k: v for k, v in event.properties.items() if k != "q"}})
        varied.append(event)
        if change == "replay":
            varied.append(event)
        elif change == "conflict":
            # Another number, not the same one written with another scale (a DECIMAL column keeps no scale).
            other = event.properties.get("q", Decimal(0)) + i + 1
            varied.append(event.model_copy(update={"properties": event.properties | {"q": other}}))
    return book, varied


@st.composite
def varied_histories(draw: st.DrawFn) -> tuple[Pricebook, list[UsageEvent]]:
    book, events = draw(histories())
    return with_variety(book, events, draw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(varied_histories())
def test_columnar_pricing_equals_pricing_event_by_event(tmp_path: Path, history: tuple[Pricebook, list]) -> None:  # type: ignore[type-arg]
    book, events = history
    path = tmp_path / "history.parquet"
    write_parquet(events, path)
    per_event = simulate(events, Catalog([book]), [], REGISTRY).baseline
    columnar = simulate(ParquetHistory([path]), Catalog([book]), [], REGISTRY).baseline
    assert figures(columnar) == figures(per_event)


def test_telescoping_customers_are_totalled_in_sql_and_the_rest_go_per_event(tmp_path: Path) -> None:
    from rating_plugins.per_unit import PerUnit

    from tests.simulate.test_simulate import pricebook

    model = PerUnit(meter="m", model="per_unit", unit_price=Decimal("0.5"))
    book = pricebook("sum", model, Decimal(10), None, None, model)
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    events = [
        UsageEvent(id=f"e{i}", customer=c, type="use", timestamp=start, properties={"q": Decimal(i), "g": "x"})
        for i, c in enumerate(["walk-in", "walk-in", "contracted", "listed"])
    ]
    write_parquet(events, tmp_path / "h.parquet")
    result = simulate(ParquetHistory([tmp_path / "h.parquet"]), Catalog([book]), [], REGISTRY)
    assert result.notices == ["sim@2026-10-01: 2 customers priced event by event"]
    assert result.baseline.charged["walk-in"] == {"USD": Decimal("0.5")}  # 0.5 x (0 + 1); fees are for listed ones
    assert figures(result.baseline) == figures(simulate(events, Catalog([book]), [], REGISTRY).baseline)


def test_a_double_column_a_meter_reads_is_refused(tmp_path: Path) -> None:
    import duckdb
    from rating_plugins.per_unit import PerUnit

    from tests.simulate.test_simulate import pricebook

    path = tmp_path / "floats.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT 'e1' AS id, 'walk-in' AS customer, 'use' AS type, TIMESTAMPTZ '2026-11-02 00:00:00+00'"
        f" AS timestamp, 0.1::DOUBLE AS q, 'x' AS g) TO '{path}' (FORMAT parquet)"
    )
    model = PerUnit(meter="m", model="per_unit", unit_price=Decimal("0.5"))
    book = pricebook("sum", model, None, None, None, model)
    with pytest.raises(RatingError, match="column 'q' is DOUBLE: meter m needs exact numbers"):
        simulate(ParquetHistory([path]), Catalog([book]), [], REGISTRY)


def test_a_missing_or_naive_layout_is_refused_in_one_line(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "naive.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT 'e1' AS id, 'c' AS customer, 'use' AS type, TIMESTAMP '2026-11-02' AS timestamp)"
        f" TO '{path}' (FORMAT parquet)"
    )
    with pytest.raises(RatingError, match="timestamp is TIMESTAMP; events need UTC-adjusted timestamps"):
        ParquetHistory([path])
    with pytest.raises(RatingError, match="no such events file"):
        ParquetHistory([tmp_path / "absent.parquet"])
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(RatingError, match="not readable as Parquet"):
        ParquetHistory([tmp_path / "junk.parquet"])


def test_a_local_dask_cluster_of_two_workers_gives_the_single_process_figures(tmp_path: Path) -> None:
    """Also while another program holds port 8787 (the Dask dashboard's): the cluster opens no dashboard port."""
    import socket

    from distributed import Client

    from rating.cli.demo import write_demo_events
    from rating.events import read_events
    from rating.pricebook.model import load_pricebook
    from rating.simulate.distributed import local_cluster, simulate_on_dask
    from tests.helpers import EXAMPLE, ROOT

    events = [r.event for r in read_events(write_demo_events(tmp_path / "demo.jsonl", 600)) if r.event]
    write_parquet(events[:300], tmp_path / "a.parquet")
    write_parquet(events[300:], tmp_path / "b.parquet")
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    baseline = Catalog([load_pricebook(EXAMPLE, REGISTRY)])
    candidate = Catalog([load_pricebook(ROOT / "pricebooks" / "candidates" / "ai-gateway-2027.yaml", REGISTRY)])
    single = simulate(ParquetHistory(paths), baseline, [candidate], REGISTRY, ["now", "next"])
    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 8787))
        holder.listen()
    except OSError:  # another program holds it already: just as good
        pass
    with holder, local_cluster(2) as cluster, Client(cluster) as client:
        spread = simulate_on_dask(paths, baseline, [candidate], ["now", "next"], client, partitions=3)
    assert spread.rows() == single.rows()
    for mine, theirs in zip(spread.scenarios, single.scenarios, strict=True):
        assert figures(mine) == figures(theirs)
    assert single.rows() == simulate(events, baseline, [candidate], REGISTRY, ["now", "next"]).rows()


def _parquet(path: Path, columns: dict[str, str], rows: int = 2) -> Path:
    """A Parquet file of ``rows`` copies of one row: walk-in's event e1 of type use, with ``columns`` (SQL)."""
    import duckdb

    row = {
        "id": "'e1'",
        "customer": "'walk-in'",
        "type": "'use'",
        "timestamp": "TIMESTAMPTZ '2026-11-02 00:00:00+00'",
        "q": "3",
        "g": "'x'",
        "member": "'m1'",
    } | columns
    select = ", ".join(f'{value} AS "{name}"' for name, value in row.items())
    duckdb.connect().execute(f"COPY (SELECT {select} FROM range({rows})) TO '{path}' (FORMAT parquet)")
    return path


def _book(aggregation: str) -> Pricebook:
    from rating_plugins.per_unit import PerUnit

    from tests.simulate.test_simulate import pricebook

    model = PerUnit(meter="m", model="per_unit", unit_price=Decimal("0.5"))
    return pricebook(aggregation, model, None, None, None, model)


def test_a_decimal_38_30_column_is_totalled_exactly_in_sql(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "fine.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT 'e' || i AS id, 'walk-in' AS customer, 'use' AS type,"
        f" TIMESTAMPTZ '2026-11-02 00:00:00+00' AS timestamp, 'x' AS g,"
        f" (CASE i WHEN 0 THEN '1.5' WHEN 1 THEN '2.25' ELSE '0.000000000000000000000000000001' END)::DECIMAL(38,30)"
        f" AS q FROM range(3) t(i)) TO '{path}' (FORMAT parquet)"
    )
    result = simulate(ParquetHistory([path]), Catalog([_book("sum")]), [], REGISTRY)
    assert not any("every event" in notice for notice in result.notices)  # walk-in totalled by key in SQL
    assert sum(result.baseline.lines.values()) == Decimal("3.750000000000000000000000000001") * Decimal("0.5")


def test_a_list_column_a_meter_reads_refuses_its_events_and_a_field_of_another_type_is_refused(
    tmp_path: Path,
) -> None:
    listed = _parquet(tmp_path / "list.parquet", {"q": "[1, 2]"})
    result = simulate(ParquetHistory([listed]), Catalog([_book("sum")]), [], REGISTRY)
    assert result.notices == [
        "sim@2026-10-01: every event priced one by one: meter m reads column 'q' of type INTEGER[],"
        " which holds no exact number"
    ]
    assert result.baseline.charged == {} and result.baseline.unpriced == {Refusal.INVALID_QUANTITY: 1}
    numbered = _parquet(tmp_path / "agent.parquet", {"agent": "7"})
    with pytest.raises(RatingError, match=r"agent.parquet: column agent is INTEGER; event fields are text"):
        ParquetHistory([numbered])


COLUMN_TYPES = [
    "1.5::DECIMAL(38,30)", "99999999.5::DECIMAL(38,30)", "1::DECIMAL(38,0)", "1::DECIMAL(4,3)", "[1, 2]", "['a']",
    "[1.5::DECIMAL(38,30)]", "{'a': 1}", "map([1], [2])", "1::HUGEINT", "1::UBIGINT", "'1'", "true", "NULL",
    "DATE '2026-01-01'", "'\\x00'::BLOB", "1.5::DOUBLE", "'{}'::JSON",
]  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    column=st.sampled_from(["id", "customer", "type", "billing_source", "agent", "q", "g", "member"]),
    value=st.sampled_from(COLUMN_TYPES),
    aggregation=st.sampled_from(["sum", "max", "count", "unique"]),
)
def test_a_column_of_any_type_is_read_or_refused_in_one_line_never_crashes_duckdb(
    tmp_path: Path, column: str, value: str, aggregation: str
) -> None:
    path = _parquet(tmp_path / "any.parquet", {column: value})
    try:
        result = simulate(ParquetHistory([path]), Catalog([_book(aggregation)]), [], REGISTRY)
    except RatingError as error:
        assert "\n" not in str(error)
        return
    # One event (the second row replays the first): charged, or counted as not priced.
    scenario = result.baseline
    assert bool(scenario.charged) != bool(scenario.unpriced) and sum(scenario.unpriced.values()) <= 1


#: Meters of every kind the columnar path totals in SQL: a weighted sum, a filtered sum, a max and a unique count.
WIDE_METERS = {
    "w": {"event": "use", "sum": {"q": "0.5", "r": "2"}, "group_by": ("g",)},
    "f": {"event": "use", "sum": "q", "where": {"g": ["x"]}},
    "mx": {"event": "use", "max": "q", "group_by": ("g",)},
    "u": {"event": "use", "unique": "member"},
}
NOVEMBER_10 = dt.date(2026, 11, 10)
TOKYO = "Asia/Tokyo"


@st.composite
def wide_catalogs(draw: st.DrawFn) -> Catalog:
    """Two versions (1 October and 10 November) of the four meters, each charged by a drawn model, and a
    provider cost on the weighted meter."""
    from rating_plugins.per_unit import PerUnit

    from rating.pricebook.meters import Meter
    from rating.pricebook.model import Plan
    from tests.test_telescoping import models, prices

    aggregation = {"w": "sum", "f": "sum", "mx": "max", "u": "unique"}
    versions = []
    for version in (dt.date(2026, 10, 1), NOVEMBER_10):
        charges = tuple(draw(models(name, aggregation[name])) for name in WIDE_METERS)
        cost = PerUnit(meter="w", model="per_unit", unit_price=draw(prices))
        versions.append(
            Pricebook(
                pricebook="wide",
                version=version,
                currency="USD",
                meters={name: Meter(**spec) for name, spec in WIDE_METERS.items()},  # type: ignore[arg-type]
                plans={"p": Plan(charges=charges)},
                customers={
                    "listed": CustomerSpec(plan="p"),
                    "contracted": CustomerSpec(plan="p", timezone="Asia/Tokyo"),
                },
                default_plan="p",
                costs=(cost,),
            )
        )
    return Catalog(versions)


@st.composite
def wide_histories(draw: st.DrawFn) -> tuple[Catalog, list[UsageEvent]]:
    """The simulation tests' usage, each event with a second quantity ``r`` for the weighted meter."""
    from tests.simulate.test_simulate import usage
    from tests.test_telescoping import quantities

    events = draw(usage())
    weights = draw(st.lists(quantities, min_size=len(events), max_size=len(events)))
    return draw(wide_catalogs()), [
        e.model_copy(update={"properties": e.properties | {"r": r}}) for e, r in zip(events, weights, strict=True)
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wide_histories())
def test_columnar_equals_per_event_across_versions_weights_filters_max_unique_and_costs(
    tmp_path: Path, history: tuple[Catalog, list[UsageEvent]]
) -> None:
    """Issue 21: the columnar path gives the per-event figures over two versions (a switch on 10 November), a
    weighted sum, a ``where`` filter, ``max`` and ``unique`` meters, and a provider cost."""
    catalog, events = history
    path = tmp_path / "history.parquet"
    write_parquet(events, path)
    per_event = simulate(events, catalog, [], REGISTRY).baseline
    columnar = simulate(ParquetHistory([path]), catalog, [], REGISTRY).baseline
    assert figures(columnar) == figures(per_event)
