"""Benchmark of columnar simulation: ``python -m rating.bench --simulate [--events 10000000]``.

Generates a Parquet history (1,000 customers, three months, three meters, two
plans with tiers, an allowance and a cap), then times, in the same run:

- the yardstick: a bare DuckDB aggregate of the same file (totals per
  customer, type, model and month);
- a bare ``Decimal`` loop (multiply and add) over one million of the events;
- ``simulate`` of the history under the baseline alone, and with one candidate.

Prints events per second and the ratios, and the process's peak memory. A
benchmark, not a test: it asserts only that the simulation saw every event.
"""

from __future__ import annotations

import resource
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from rating.pricebook.catalog import Catalog
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from rating.simulate import simulate
from rating.simulate.columnar import ParquetHistory

BASELINE = """
pricebook: bench-sim
version: 2026-01-01
currency: USD
meters:
  input_tokens: {event: llm.request, sum: input_tokens, group_by: [model]}
  output_tokens: {event: llm.request, sum: output_tokens, group_by: [model]}
  calls: {event: api.call, count: true}
plans:
  pay-as-you-go:
    charges:
      - {meter: input_tokens, model: per_unit, unit_price: "0.0000025"}
      - {meter: output_tokens, model: per_unit, unit_price: "0.00001"}
      - {meter: calls, model: per_call, price: "0.001", included: 100}
  pro:
    fee: "49"
    charges:
      - meter: input_tokens
        model: tiered
        mode: graduated
        tiers: [{up_to: 1000000, unit_price: "0.000002"}, {unit_price: "0.0000015"}]
      - {meter: output_tokens, model: per_unit, unit_price: "0.000008", cap: "500"}
      - {meter: calls, model: per_call, price: "0.0008"}
default_plan: pay-as-you-go
customers:
"""
CANDIDATE_CHANGES = {'"0.0000025"': '"0.000003"', '"0.000008"': '"0.000007"'}
CUSTOMERS = 1_000


def pricebooks(registry: Registry) -> tuple[Catalog, Catalog]:
    """The baseline (every tenth customer on pro) and a candidate with other prices."""
    text = BASELINE + "".join(f"  c{n}: {{plan: pro}}\n" for n in range(0, CUSTOMERS, 10))
    candidate = text
    for old, new in CANDIDATE_CHANGES.items():
        candidate = candidate.replace(old, new)
    return (
        Catalog([parse_pricebook(text, registry, "baseline")]),
        Catalog([parse_pricebook(candidate, registry, "candidate")]),
    )


def generate(connection: object, path: Path, count: int) -> None:
    """``count`` events over August to October 2026, written by DuckDB itself."""
    seconds = 92 * 24 * 3600
    connection.execute(  # type: ignore[attr-defined]
        f"""COPY (SELECT 'e' || i AS id, 'c' || (hash(i) % {CUSTOMERS}) AS customer,
                    CASE WHEN i % 4 = 0 THEN 'api.call' ELSE 'llm.request' END AS type,
                    TIMESTAMPTZ '2026-08-01 00:00:00+00' + to_seconds(i * {seconds} // {count}) AS timestamp,
                    CASE WHEN i % 4 = 0 THEN NULL ELSE (100 + hash(i * 7) % 4000)::DECIMAL(18, 0) END AS input_tokens,
                    CASE WHEN i % 4 = 0 THEN NULL ELSE (hash(i * 13) % 1000)::BIGINT END AS output_tokens,
                    CASE WHEN i % 4 = 0 THEN NULL ELSE ['small', 'large', 'huge'][1 + i % 3] END AS model
                 FROM range({count}) AS t(i)) TO '{path}' (FORMAT parquet)"""
    )


def run(count: int) -> None:
    import duckdb

    registry = Registry.load()
    baseline, candidate = pricebooks(registry)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "history.parquet"
        connection = duckdb.connect()
        print(f"writing {count:,} events to Parquet ...", flush=True)
        generate(connection, path, count)
        started = time.perf_counter()
        connection.execute(
            f"""SELECT customer, type, model, date_trunc('month', timestamp AT TIME ZONE 'UTC'),
                       sum(input_tokens), sum(output_tokens), count(*) FROM '{path}' GROUP BY ALL"""
        ).fetchall()
        yardstick = time.perf_counter() - started
        print(f"{'DuckDB bare aggregate':<34} {yardstick:7.2f} s  {count / yardstick:>12,.0f} events/s")
        sample = connection.execute(
            f"SELECT input_tokens FROM '{path}' WHERE input_tokens IS NOT NULL LIMIT 1000000"
        ).fetchall()
        price, total = Decimal("0.0000025"), Decimal(0)
        started = time.perf_counter()
        for (tokens,) in sample:
            total += tokens * price
        loop = (time.perf_counter() - started) / len(sample)
        print(f"{'bare Decimal loop (1M events)':<34} {loop * len(sample):7.2f} s  {1 / loop:>12,.0f} events/s")
        for label, candidates in (("simulate, baseline only", []), ("simulate, baseline + candidate", [candidate])):
            started = time.perf_counter()
            result = simulate(ParquetHistory([path]), baseline, candidates, registry)
            seconds = time.perf_counter() - started
            priced = sum(result.baseline.revenue().values(), Decimal(0))
            if not priced or result.notices:
                raise SystemExit(f"the simulation went per event: {result.notices}")
            rate = count / seconds
            print(
                f"{label:<34} {seconds:7.2f} s  {rate:>12,.0f} events/s  x{seconds / yardstick:.1f} the DuckDB "
                f"aggregate, x{seconds / (loop * count):.1f} a bare Decimal loop"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'peak memory (whole process)':<34} {peak:7.0f} MiB")
