"""Benchmark: batch rating and posting of synthetic events, against a bare Decimal loop.

    python -m rating.bench [--events 1000000] [--storage memory sqlite]
    python -m rating.bench --simulate [--events 10000000]
    python -m rating.bench --http [--events 20000] [--clients 4] [--samples 500] [--storage sqlite postgres]

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
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path

from rating import fastread
from rating.engine import BatchReport, Engine
from rating.engine.writer import cyclic_gc_paused
from rating.events import Attribution, UsageEvent, read_jsonl
from rating.pricebook.model import Pricebook, parse_pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.wallet.wallets import Wallets

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


def synthetic_events(count: int, customers: int = 1_000, numbers: range | None = None) -> list[UsageEvent]:
    """``count`` events over one month (or those of them ``numbers`` says); built without validation."""
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
        for n in (numbers if numbers is not None else range(count))
    ]


def gateway_events(count: int, customers: int = 1_000) -> list[UsageEvent]:
    """``count`` model calls shaped for ``pricebooks/ai-gateway.yaml`` (6 meters, 11 charges, provider costs):
    its five models over ``customers`` customers, three of them its named team and credit customers."""
    from rating.cli.demo import MODELS

    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    step = dt.timedelta(seconds=28 * 24 * 3600 / count)
    names = ["acme-labs", "globex", "initech"] + [f"c{n}" for n in range(3, customers)]
    empty = Attribution()
    events = []
    for n in range(count):
        provider, model, typical_in, typical_out = MODELS[n % len(MODELS)]
        properties = {
            "provider": provider,
            "model": model,
            "input_tokens": Decimal(typical_in // 4 + n % (typical_in * 3)),
            "output_tokens": Decimal(typical_out // 4 + n % (typical_out * 3)),
        }
        events.append(
            UsageEvent.model_construct(
                id=f"g{n}",
                customer=names[n % customers],
                type="llm.request",
                timestamp=start + n * step,
                properties=properties,
                attribution=empty,
                billing_source="platform",
            )
        )
    return events


def synthetic_stream(count: int, customers: int = 1_000) -> Iterator[UsageEvent]:
    """The same events as :func:`synthetic_events`, made one at a time (nothing held)."""
    for start in range(0, count, 10_000):
        batch = synthetic_events(count, customers, range(start, min(count, start + 10_000)))
        yield from batch


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


def current_rss() -> int | None:
    """This process's resident memory now, in bytes (Linux), or None where it cannot be read."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def rate_timed(
    url: str, book: Pricebook, events: list[UsageEvent], registry: Registry
) -> tuple[float, BatchReport, Storage]:
    """Seconds to rate ``events`` by ``book`` into the fresh storage at ``url``, what it reported, and the storage."""
    storage = registry.open_storage(url)
    engine = Engine(book, storage, registry, pause_gc=True)  # as `rating rate` runs it
    seconds, report = timed(partial(engine.rate_batch, events, chunk_size=10_000))
    return seconds, report, storage


def rate_into(
    kind: str, url: str, events: list[UsageEvent], expected: Decimal, registry: Registry
) -> tuple[float, Storage]:
    """Rate ``events`` into a fresh storage of ``kind``; check the total against the bare loop's ``expected``."""
    seconds, report, storage = rate_timed(url, parse_pricebook(PRICEBOOK, registry, "bench"), events, registry)
    charged = sum(report.totals.values(), Decimal(0))
    if charged != expected:
        raise SystemExit(f"{kind}: charged {charged}, but the bare loop summed {expected}")
    return seconds, storage


def read_rates(events: list[UsageEvent]) -> dict[str, float]:
    """Events/s of reading ``events`` back from JSON Lines, through the pydantic path and (with msgspec) the fast one.

    Both readers take the same bytes in the same run; every record must come back an event.
    """
    data = "".join(event.model_dump_json() + "\n" for event in events).encode()
    rates = {}
    for name, fast in (("pydantic", False), ("msgspec", True)):
        if fast and not fastread.AVAILABLE:
            continue
        started = time.perf_counter()
        read = sum(record.event is not None for record in read_jsonl(io.BytesIO(data), "bench", fast=fast))
        seconds = time.perf_counter() - started
        if read != len(events):
            raise SystemExit(f"the {name} reader read {read} of {len(events)} events")
        rates[name] = len(events) / seconds
    return rates


def run(count: int, storages: list[str], postgres: str | None) -> dict[str, float]:
    """Rate ``count`` events into each storage; returns the figures the target table reads."""
    registry = Registry.load()
    print(f"building {count:,} synthetic events ...", flush=True)
    events = synthetic_events(count)
    started = time.perf_counter()
    expected = bare_loop(events)
    bare_seconds = time.perf_counter() - started
    print(f"{'bare Decimal loop':<24} {bare_seconds:8.2f} s  {count / bare_seconds:>12,.0f} events/s  ratio  1.0")
    figures: dict[str, float] = {}
    sample = events[:100_000]
    reads = "  ".join(f"{name} {rate:,.0f}/s" for name, rate in read_rates(sample).items())
    print(f"{'read JSONL':<24} {len(sample):,} events: {reads} (msgspec with rating-engine[fast])", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        for kind in storages:
            url = storage_url(kind, directory, postgres)
            before = current_rss()
            seconds, storage = rate_into(kind, url, events, expected, registry)
            after = current_rss()
            figures[kind] = count / seconds
            if kind == "memory" and before is not None and after is not None:
                figures["memory bytes/event"] = (after - before) / count
            label = f"rate + post ({kind})"
            ratio = seconds / bare_seconds
            print(f"{label:<24} {seconds:8.2f} s  {count / seconds:>12,.0f} events/s  ratio {ratio:4.1f}", flush=True)
            if kind == "postgres":
                postings, copy_seconds = raw_copy_seconds(url, storage)
                figures["postgres share of COPY"] = copy_seconds / seconds
                print(
                    f"{'  postings':<24} {postings / seconds:>21,.0f} postings/s; a raw COPY of the same rows: "
                    f"{postings / copy_seconds:,.0f}/s; ratio {seconds / copy_seconds:.1f}"
                )
            storage.close()
            if kind == storages[0] and count >= 100_000:  # the same storage at a tenth: is the cost linear?
                tenth = events[: count // 10]
                url = storage_url(kind, directory, postgres)
                seconds, storage = rate_into(kind, url, tenth, bare_loop(tenth), registry)
                storage.close()
                figures["linear"] = figures[kind] / (len(tenth) / seconds)
                print(f"{'  at a tenth':<24} {seconds:8.2f} s  {len(tenth) / seconds:>12,.0f} events/s")
    return figures


def gateway(count: int, storages: list[str], postgres: str | None) -> dict[str, float]:
    """Events/s of ``count`` calls rated by ``pricebooks/ai-gateway.yaml`` into each storage (no target: a
    pricebook with several meters, charges and costs per event, beside the bench's own)."""
    from rating.cli.demo import example_pricebook

    registry = Registry.load()
    book = parse_pricebook(example_pricebook().read_text(), registry, "ai-gateway.yaml")
    events = gateway_events(count)
    rates = {}
    with tempfile.TemporaryDirectory() as directory:
        for kind in storages:
            seconds, report, storage = rate_timed(storage_url(kind, directory, postgres), book, events, registry)
            storage.close()
            if report.posted != count:
                raise SystemExit(f"ai-gateway.yaml ({kind}): {report.posted} of {count} events posted")
            rates[kind] = count / seconds
            label = f"ai-gateway.yaml ({kind})"
            print(f"{label:<24} {seconds:8.2f} s  {count / seconds:>12,.0f} events/s", flush=True)
    return rates


def streamed_peak_rss(count: int) -> float:
    """Peak RSS in MB of a fresh process rating ``count`` generated events to SQLite as a stream."""
    code = (
        "import tempfile\n"
        "from rating.bench import PRICEBOOK, synthetic_stream\n"
        "from rating.engine import Engine\n"
        "from rating.pricebook.model import parse_pricebook\n"
        "from rating.registry import Registry\n"
        "registry = Registry.load()\n"
        "with tempfile.TemporaryDirectory() as d, registry.open_storage(d + '/s.db') as storage:\n"
        "    book = parse_pricebook(PRICEBOOK, registry, 'bench')\n"
        f"    Engine(book, storage, registry, pause_gc=True).rate_batch(synthetic_stream({count}), chunk_size=10_000)\n"
        # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's size when forked, this bench's events
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def latency(samples: int, storages: list[str], postgres: str | None) -> dict[str, float]:
    """Median and 99th percentile of one metered request: ``authorize`` (quote + reserve), then ``rate_reserved``.

    Two durable commits: the reservation, then the rating paid from it with the rest released.
    """
    registry = Registry.load()
    book = parse_pricebook(PRICEBOOK, registry, "bench")
    events = synthetic_events(samples)
    p99s = {}
    with tempfile.TemporaryDirectory() as directory:
        for kind in storages:
            storage = registry.open_storage(storage_url(kind, directory, postgres))
            engine, wallets = Engine(book, storage, registry, pause_gc=True), Wallets(storage)
            for customer in {e.customer for e in events}:
                wallets.deposit(customer, "USD", Decimal(1000), f"seed-{customer}")
            times = []
            for event in events:
                started = time.perf_counter()
                engine.authorize(event)
                engine.rate_reserved(event, event.id)
                times.append(time.perf_counter() - started)
            times.sort()
            p50, p99 = times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)]
            print(f"{'metered request (' + kind + ')':<34} p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms")
            p99s[kind] = p99 * 1000
            storage.close()
    return p99s


def writers_speedup(count: int, writers: int = 4) -> tuple[float, float]:
    """Events/s of ``writers`` ``rating rate`` processes on SQLite over one process's: over disjoint customers,
    and over the same customers (each process a share of every customer's events)."""
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "bench.yaml").write_text(PRICEBOOK)
        disjoint = [(folder / f"part{i}.jsonl").open("w") for i in range(writers)]
        shared = [(folder / f"shared{i}.jsonl").open("w") for i in range(writers)]
        with (folder / "all.jsonl").open("w") as whole:
            for number, event in enumerate(synthetic_stream(count)):
                line = event.canonical_json() + "\n"
                whole.write(line)
                disjoint[int(event.customer[1:]) % writers].write(line)
                shared[number // 1_000 % writers].write(line)  # runs of 1,000 events: every customer in each
        for part in disjoint + shared:
            part.close()

        def rate(files: list[str], db: str) -> float:
            command = [sys.executable, "-m", "rating", "rate", "-p", str(folder / "bench.yaml"), "--db", db]
            started = time.perf_counter()
            running = [
                subprocess.Popen([*command, name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name in files
            ]
            if any([process.wait() for process in running]):  # a list: wait for every one, even after a failure
                raise SystemExit("a rating process failed")
            return count / (time.perf_counter() - started)

        alone = rate([str(folder / "all.jsonl")], str(folder / "one.db"))
        apart = rate([str(folder / f"part{i}.jsonl") for i in range(writers)], str(folder / "apart.db"))
        together = rate([str(folder / f"shared{i}.jsonl") for i in range(writers)], str(folder / "shared.db"))
        print(f"{'rating rate, 1 process':<34} {alone:>12,.0f} events/s")
        print(f"{f'rating rate, {writers} processes':<34} {apart:>12,.0f} events/s  (disjoint customers)")
        print(f"{f'rating rate, {writers} processes':<34} {together:>12,.0f} events/s  (the same customers)")
        return apart / alone, together / alone


def postgres_writers(count: int, postgres: str, counts: tuple[int, ...] = (1, 2, 4)) -> dict[int, float]:
    """Events/s of 1, 2 and 4 ``rating rate`` processes (ingest included) over disjoint customers, each run into
    a fresh PostgreSQL schema (migrated before the clock starts); printed with the speed-up over one process."""
    from rating.storage.postgres import PostgresStorage

    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "bench.yaml").write_text(PRICEBOOK)
        lines = [event.canonical_json() + "\n" for event in synthetic_stream(count)]
        for writers in counts:
            parts = [folder / f"w{writers}-{i}.jsonl" for i in range(writers)]
            for i, part in enumerate(parts):  # customer cN goes to worker N mod writers: disjoint customers
                part.write_text("".join(line for n, line in enumerate(lines) if n % 1_000 % writers == i))
            url = storage_url("postgres", directory, postgres)
            PostgresStorage(url).close()  # the schema migrated before the clock starts
            command = [sys.executable, "-m", "rating", "rate", "-p", str(folder / "bench.yaml"), "--db", url]
            started = time.perf_counter()
            running = [
                subprocess.Popen([*command, str(part)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for part in parts
            ]
            if any([process.wait() for process in running]):  # a list: wait for every one, even after a failure
                raise SystemExit("a rating process failed")
            rates[writers] = count / (time.perf_counter() - started)
            speedup = rates[writers] / rates[counts[0]]
            label = f"rating rate, {writers} process{'es' if writers > 1 else ''} (postgres)"
            print(f"{label:<34} {rates[writers]:>12,.0f} events/s  {speedup:.2f}x one (disjoint customers)")
    return {writers: rate / rates[counts[0]] for writers, rate in rates.items()}


def rate_end_to_end(count: int, storages: list[str], postgres: str | None) -> dict[str, float]:
    """Events/s of ``rating rate`` itself on the bench's events: a JSON Lines file rated by ``python -m rating rate``
    in a fresh process (start-up, reading and validating every line with the msgspec reader when installed, rating,
    posting), per SQL storage of ``storages`` (``KIND``), and of the engine alone on the same events just before it
    (``KIND engine``: the machine's load moves both alike). The totals charged are checked against the bare loop's.

    Also prints the start-up alone (the same command on an empty file): the part of the figure that does not grow
    with the file.
    """
    rates: dict[str, float] = {}
    kinds = [kind for kind in storages if kind == "sqlite" or (kind == "postgres" and postgres)]
    if not kinds:
        return rates
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "bench.yaml").write_text(PRICEBOOK)
        expected = Decimal(0)
        with (folder / "events.jsonl").open("w") as file:
            for event in synthetic_stream(count):
                file.write(event.canonical_json() + "\n")
                expected += event.properties["tokens"] * PRICE
        (folder / "empty.jsonl").write_text("")

        def rate(name: str, db: str) -> float:
            command = [sys.executable, "-m", "rating", "rate", "-p", str(folder / "bench.yaml"), "--db", db]
            started = time.perf_counter()
            done = subprocess.run([*command, str(folder / name)], capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"rating rate ({db}) failed: {done.stderr.strip()[-500:]}")
            return time.perf_counter() - started

        registry = Registry.load()
        events = synthetic_events(count)
        for kind in kinds:
            # The engine alone on the same events just before, so that both figures see the same machine load.
            alone, storage = rate_into(kind, storage_url(kind, directory, postgres), events, expected, registry)
            storage.close()
            rates[f"{kind} engine"] = count / alone
            startup = rate("empty.jsonl", storage_url(kind, directory, postgres))
            url = storage_url(kind, directory, postgres)
            seconds = rate("events.jsonl", url)
            with registry.open_storage(url) as storage:
                charged = sum(storage.period_totals("2026-11").values(), Decimal(0))
            if charged != expected:
                raise SystemExit(f"rating rate ({kind}): charged {charged}, the bare loop summed {expected}")
            rates[kind] = count / seconds
            label = f"rating rate ({kind})"
            print(
                f"{label:<24} {seconds:8.2f} s  {count / seconds:>12,.0f} events/s  end to end, in a fresh process"
                f" (of which {startup:.2f} s start-up on an empty file); the engine alone just before:"
                f" {count / alone:,.0f} events/s",
                flush=True,
            )
    return rates


def stages(count: int) -> dict[str, float]:
    """Microseconds per event of the memory path stage by stage, cumulatively, over the same events in one run:
    the terms (rate cards), + pricing, + the policies and the poster (the pipeline), + the storage records, and
    the whole engine into memory storage. Each stage's share of the engine is what it would save to remove it."""
    from decimal import localcontext

    from rating.core.charges import event_record
    from rating.core.pipeline import Pipeline
    from rating.core.pricer import Pricer, advance
    from rating.money import MONEY_CONTEXT, ZERO
    from rating.pricebook.catalog import Catalog
    from rating.pricebook.meters import PeriodState

    registry = Registry.load()
    book = parse_pricebook(PRICEBOOK, registry, "bench")
    events = synthetic_events(count)

    def run_to(depth: int) -> float:
        pricer = Pricer(Catalog([book]), check_inputs=True)  # as the engine prices events being rated
        pipeline = Pipeline(pricer)
        states: dict[object, PeriodState] = {}

        def lookup(key: object) -> PeriodState:
            state = states.get(key)
            if state is None:
                state = states[key] = PeriodState(ZERO)
            return state

        with localcontext(MONEY_CONTEXT), cyclic_gc_paused():
            started = time.perf_counter()
            for event in events:
                terms = pricer.terms(event)
                if depth == 1:
                    advance(lookup, event.customer, pricer.price(terms, lookup).usage)
                elif depth >= 2:
                    rating = pipeline.run(event, lookup, lambda customer, period: False, terms).rating
                    advance(lookup, event.customer, rating.usage)
                    if depth == 3:
                        event_record(rating, False)
            return (time.perf_counter() - started) * 1e6 / count

    names = ("terms (rate cards)", "+ pricing", "+ policies and poster", "+ storage records")
    figures = {name: run_to(depth) for depth, name in enumerate(names)}
    storage = registry.open_storage("memory:")
    seconds, _ = timed(partial(Engine(book, storage, registry, pause_gc=True).rate_batch, events, chunk_size=10_000))
    figures["the engine into memory"] = seconds * 1e6 / count
    whole = figures["the engine into memory"]
    for name, micros in figures.items():
        print(f"  {name:<26} {micros:7.1f} us/event  {micros / whole:5.0%} of the engine")
    return figures


def target_table(
    figures: dict[str, float],
    p99s: dict[str, float],
    streamed: float | None,
    speedups: tuple[float, float] | None,
    count: int,
    gateway_rates: dict[str, float] | None = None,
    postgres_speedups: dict[int, float] | None = None,
    end_to_end: dict[str, float] | None = None,
) -> str:
    """Each target of the online-rating issue beside its figure from this run."""
    rows = []

    def row(target: str, figure: float | None, shown: str, met: bool | None) -> None:
        verdict = "not measured" if figure is None else "met" if met else "NOT met"
        rows.append((target, shown if figure is not None else "-", verdict))

    for kind, floor in (("memory", 150_000), ("sqlite", 60_000), ("postgres", 40_000)):
        got = figures.get(kind)
        row(f"{kind}: >= {floor:,} events/s", got, f"{got or 0:,.0f} events/s", got is not None and got >= floor)
    share = figures.get("postgres share of COPY")
    row("postgres: >= 30% of a raw COPY", share, f"{(share or 0) * 100:.1f}%", share is not None and share >= 0.30)
    linear = figures.get("linear")
    row(
        f"{count:,} events within 15% of a tenth",
        linear,
        f"{(linear or 0) * 100:.0f}% of the rate",
        linear is not None and linear >= 0.85,
    )
    per_event = figures.get("memory bytes/event")
    row(
        "memory: <= 900 bytes kept per event",
        per_event,
        f"{per_event or 0:,.0f} bytes",
        per_event is not None and per_event <= 900,
    )
    row(
        "10M-event stream to SQLite: peak RSS < 300 MB",
        streamed,
        f"{streamed or 0:,.0f} MB ({count:,} events)",
        streamed is not None and streamed < 300,
    )
    for kind, ceiling in (("sqlite", 2.0), ("postgres", 8.0)):
        got = p99s.get(kind)
        row(
            f"metered request p99 ({kind}) < {ceiling:g} ms",
            got,
            f"{got or 0:.2f} ms",
            got is not None and got < ceiling,
        )
    apart, shared = speedups or (None, None)
    row("4 writers, disjoint customers >= 1.5x one (sqlite)", apart, f"{apart or 0:.2f}x", bool(apart and apart >= 1.5))
    row("4 writers, same customers >= 1x one (sqlite)", shared, f"{shared or 0:.2f}x", bool(shared and shared >= 1))
    four = (postgres_speedups or {}).get(4)
    row(
        "4 writers over disjoint customers on PostgreSQL >= 1.5x one",
        four,
        f"{four or 0:.2f}x",
        bool(four and four >= 1.5),
    )
    for kind, rate in (end_to_end or {}).items():
        if kind.endswith(" engine"):
            continue
        alone = (end_to_end or {}).get(f"{kind} engine") or figures.get(kind)
        shown = f"{rate:,.0f}/s, {rate / alone:.0%} of engine" if alone else f"{rate:,.0f} events/s"
        rows.append((f"rating rate end to end ({kind}), ingest included", shown, "no target"))
    for kind, rate in (gateway_rates or {}).items():
        rows.append((f"ai-gateway.yaml ({kind}), for comparison", f"{rate:,.0f} events/s", "no target"))
    width = max(len(target) for target, _, _ in rows)
    lines = [f"{'target':<{width}}  {'figure':>26}  verdict", "-" * (width + 38)]
    lines += [f"{target:<{width}}  {shown:>26}  {verdict}" for target, shown, verdict in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rating.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--storage", nargs="+", choices=["memory", "sqlite", "postgres"], default=["memory", "sqlite"])
    parser.add_argument("--postgres", help="a PostgreSQL URL for --storage postgres (a schema is created per run)")
    parser.add_argument("--latency", type=int, metavar="N", help="instead: N single-event round trips, p50 and p99")
    parser.add_argument("--simulate", action="store_true", help="instead: columnar simulation of a Parquet history")
    parser.add_argument("--llm", action="store_true", help="instead: LLM requests priced here and by genai-prices")
    parser.add_argument("--writers", action="store_true", help="instead: 1, 2 and 4 rating rate processes")
    parser.add_argument("--stages", action="store_true", help="instead: the memory path's cost stage by stage")
    parser.add_argument(
        "--http", action="store_true", help="instead: rating serve over HTTP beside the library (rating.bench_http)"
    )
    parser.add_argument("--clients", type=int, default=4, help="--http: concurrent batch clients (default 4)")
    parser.add_argument("--samples", type=int, default=500, help="--http: latency samples of each kind (default 500)")
    args = parser.parse_args()
    try:
        if args.http:
            from rating.bench_http import run as http

            http(
                args.events if "--events" in sys.argv else 20_000,
                args.storage,
                args.postgres,
                args.clients,
                args.samples,
            )
        elif args.llm:
            from rating.bench_llm import run as llm

            llm(args.events if "--events" in sys.argv else 20_000)
        elif args.simulate:
            from rating.simulate.bench import run as simulation

            simulation(args.events if "--events" in sys.argv else 10_000_000)
        elif args.latency:
            latency(args.latency, args.storage, args.postgres)
        elif args.stages:
            print("the memory path stage by stage (cumulative):")
            stages(args.events if "--events" in sys.argv else 100_000)
        elif args.writers:
            count = args.events if "--events" in sys.argv else 100_000
            speedups = writers_speedup(count) if "sqlite" in args.storage else None
            on_postgres = (
                postgres_writers(count, args.postgres) if "postgres" in args.storage and args.postgres else None
            )
            print()
            print(target_table({}, {}, None, speedups, count, None, on_postgres))
        else:
            figures = run(args.events, args.storage, args.postgres)
            print("the memory path stage by stage (cumulative), where the time of an event goes:")
            stages(min(args.events, 100_000))
            gateway_rates = gateway(min(args.events, 100_000), args.storage, args.postgres)
            p99s = latency(1_000, [k for k in args.storage if k != "memory"], args.postgres)
            streamed = streamed_peak_rss(args.events) if "sqlite" in args.storage else None
            speedups = writers_speedup(min(args.events, 100_000)) if "sqlite" in args.storage else None
            on_postgres = (
                postgres_writers(min(args.events, 100_000), args.postgres)
                if "postgres" in args.storage and args.postgres
                else None
            )
            ends = rate_end_to_end(args.events, args.storage, args.postgres)
            print()
            print(target_table(figures, p99s, streamed, speedups, args.events, gateway_rates, on_postgres, ends))
    finally:
        drop_bench_schemas(args.postgres)


if __name__ == "__main__":
    main()
