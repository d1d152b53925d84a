"""Benchmark: batch rating and posting of synthetic events, against a bare Decimal loop.

    python -m rating.bench [--events 1000000] [--storage memory sqlite]

Prints events per second for each storage and the ratio of its time to a bare
``Decimal`` multiply-and-sum loop over the same events in the same run (lower is
better; 1.0 would mean rating costs nothing beyond the arithmetic). A
benchmark, not a test: it asserts nothing about speed, only that both loops
computed the same total.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path

from rating.engine import BatchReport, Engine
from rating.events import Attribution, UsageEvent
from rating.pricebook import parse_pricebook
from rating.registry import Registry

PRICE = Decimal("0.0000025")
PRICEBOOK = f"""
pricebook: bench
version: 2026-11-01
currency: USD
meters:
  tokens: {{event: llm.request, sum: tokens, group_by: [model]}}
plans:
  pay-as-you-go:
    charges:
      - {{meter: tokens, model: per_unit, unit_price: "{PRICE}"}}
default_plan: pay-as-you-go
"""


def synthetic_events(count: int, customers: int = 1_000) -> list[UsageEvent]:
    """``count`` events over one month; built without validation (the fields are known good)."""
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    step = dt.timedelta(seconds=28 * 24 * 3600 / count)
    models = ("small", "large", "huge")
    empty = Attribution()
    return [
        UsageEvent.model_construct(
            id=f"b{n}",
            customer=f"c{n % customers}",
            type="llm.request",
            timestamp=start + n * step,
            properties={"tokens": Decimal(100 + n % 900), "model": models[n % 3]},
            attribution=empty,
            billing_source="platform",
        )
        for n in range(count)
    ]


def bare_loop(events: list[UsageEvent]) -> Decimal:
    """The yardstick: multiply each event's quantity by the price and sum."""
    total = Decimal(0)
    for event in events:
        total += event.properties["tokens"] * PRICE
    return total


def timed(work: Callable[[], BatchReport]) -> tuple[float, BatchReport]:
    gc.collect()
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def run(count: int, storages: list[str]) -> None:
    registry = Registry.load()
    book = parse_pricebook(PRICEBOOK, registry, "bench")
    print(f"building {count:,} synthetic events ...", flush=True)
    events = synthetic_events(count)
    started = time.perf_counter()
    expected = bare_loop(events)
    bare_seconds = time.perf_counter() - started
    print(f"{'bare Decimal loop':<24} {bare_seconds:8.2f} s  {count / bare_seconds:>12,.0f} events/s  ratio  1.0")
    with tempfile.TemporaryDirectory() as directory:
        for kind in storages:
            url = "memory:" if kind == "memory" else str(Path(directory) / "bench.db")
            storage = registry.open_storage(url)
            engine = Engine(book, storage, registry)
            seconds, report = timed(partial(engine.rate_batch, events, chunk_size=10_000))
            charged = sum(report.totals.values(), Decimal(0))
            if charged != expected:
                raise SystemExit(f"{kind}: charged {charged}, but the bare loop summed {expected}")
            ratio = seconds / bare_seconds
            label = f"rate + post ({kind})"
            print(f"{label:<24} {seconds:8.2f} s  {count / seconds:>12,.0f} events/s  ratio {ratio:4.1f}", flush=True)
            storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rating.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--storage", nargs="+", choices=["memory", "sqlite"], default=["memory", "sqlite"])
    args = parser.parse_args()
    run(args.events, args.storage)


if __name__ == "__main__":
    main()
