"""Benchmark: batch rating and posting of synthetic events, against a bare Decimal loop.

    python -m rating.bench [--events 1000000] [--storage memory sqlite]
    python -m rating.bench --simulate [--events 10000000]

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
import sys
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
from rating.storage import Storage
from rating.wallet import Wallets

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


def drop_bench_schemas(postgres: str | None) -> None:
    """Remove the schemas benchmarks created, so nothing is left behind in the user's database."""
    if postgres is None:
        return
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as admin:
        names = [n for (n,) in admin.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rating_bench_%'")]
        for name in names:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


def storage_url(kind: str, directory: str, postgres: str | None) -> str:
    """Where a benchmark of ``kind`` stores: memory, a fresh SQLite file, or a fresh PostgreSQL schema."""
    if kind == "memory":
        return "memory:"
    if kind == "sqlite":
        return str(Path(directory) / f"bench-{time.monotonic_ns()}.db")
    if postgres is None:
        raise SystemExit("--storage postgres needs --postgres URL")
    import psycopg

    schema = f"rating_bench_{time.monotonic_ns()}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"


def raw_copy_seconds(url: str, storage: Storage) -> tuple[int, float]:
    """Time a bare COPY of the same posting rows into an unindexed table: the floor for PostgreSQL."""
    import psycopg

    rows = [
        (t.id, line, p.account, p.asset, p.amount) for t in storage.transactions() for line, p in enumerate(t.postings)
    ]
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "CREATE TABLE raw_postings (transaction_id TEXT, line INT, account TEXT, asset TEXT, amount NUMERIC)"
        )
        started = time.perf_counter()
        with db.cursor() as cursor, cursor.copy("COPY raw_postings FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows), time.perf_counter() - started


def run(count: int, storages: list[str], postgres: str | None) -> None:
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
            url = storage_url(kind, directory, postgres)
            storage = registry.open_storage(url)
            engine = Engine(book, storage, registry)
            seconds, report = timed(partial(engine.rate_batch, events, chunk_size=10_000))
            charged = sum(report.totals.values(), Decimal(0))
            if charged != expected:
                raise SystemExit(f"{kind}: charged {charged}, but the bare loop summed {expected}")
            ratio = seconds / bare_seconds
            label = f"rate + post ({kind})"
            print(f"{label:<24} {seconds:8.2f} s  {count / seconds:>12,.0f} events/s  ratio {ratio:4.1f}", flush=True)
            if kind == "postgres":
                postings, copy_seconds = raw_copy_seconds(url, storage)
                print(
                    f"{'  postings':<24} {postings / seconds:>21,.0f} postings/s; a raw COPY of the same rows: "
                    f"{postings / copy_seconds:,.0f}/s; ratio {seconds / copy_seconds:.1f}"
                )
            storage.close()


def latency(samples: int, storages: list[str], postgres: str | None) -> None:
    """Median and 99th percentile of one metered request: authorize (quote + reserve), then rate against it.

    Two durable commits: the reservation, then the rating paid from it with the rest released.
    """
    registry = Registry.load()
    book = parse_pricebook(PRICEBOOK, registry, "bench")
    events = synthetic_events(samples)
    with tempfile.TemporaryDirectory() as directory:
        for kind in storages:
            storage = registry.open_storage(storage_url(kind, directory, postgres))
            engine, wallets = Engine(book, storage, registry), Wallets(storage)
            for customer in {e.customer for e in events}:
                wallets.deposit(customer, "USD", Decimal(1000), f"seed-{customer}")
            times = []
            for event in events:
                started = time.perf_counter()
                estimate = sum((c.amount for c in engine.quote(event).charges), Decimal(0)) or Decimal("0.01")
                wallets.reserve(event.customer, "USD", estimate, event.id, timeout=dt.timedelta(minutes=5))
                engine.rate_reserved(event, event.id)
                times.append(time.perf_counter() - started)
            times.sort()
            p50, p99 = times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)]
            print(f"{'metered request (' + kind + ')':<34} p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms")
            storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rating.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--storage", nargs="+", choices=["memory", "sqlite", "postgres"], default=["memory", "sqlite"])
    parser.add_argument("--postgres", help="a PostgreSQL URL for --storage postgres (a schema is created per run)")
    parser.add_argument("--latency", type=int, metavar="N", help="instead: N single-event round trips, p50 and p99")
    parser.add_argument("--simulate", action="store_true", help="instead: columnar simulation of a Parquet history")
    args = parser.parse_args()
    try:
        if args.simulate:
            from rating.simulate.bench import run as simulation

            simulation(args.events if "--events" in sys.argv else 10_000_000)
        elif args.latency:
            latency(args.latency, args.storage, args.postgres)
        else:
            run(args.events, args.storage, args.postgres)
    finally:
        drop_bench_schemas(args.postgres)


if __name__ == "__main__":
    main()
