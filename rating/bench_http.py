"""Benchmark of the service over HTTP: ``rating serve`` against the library on the same storage, in the same run.

    python -m rating.bench --http [--events 20000] [--clients 4] [--samples 500] [--storage sqlite postgres]

For each SQL storage, ``rating serve`` (uvicorn, one worker) is started on a free loopback port over a fresh ledger
and driven with httpx: batch ingest (``POST /v1/events/batch``, 1,000 events a batch as JSON Lines, from several
concurrent clients) beside the engine's own rate on a fresh storage of the same kind, 1,000 events a call; then the
p50 and p99 latency of one event (``POST /v1/events``) and of a metered request (``authorize`` then ``complete``)
over HTTP, each beside the same operation called on the library. A benchmark, not a test: it asserts nothing about
speed, only that the ledger the server wrote charged what the bare loop sums.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rating.bench import PRICEBOOK, bare_loop, storage_url, synthetic_events
from rating.engine import Engine
from rating.events import UsageEvent
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from rating.wallet.wallets import Wallets

#: Events per batch request: the most the batch route takes.
BATCH = 1_000
#: The write key the benchmark's server accepts (from a key file of its own, as a deployment's would be).
KEY = "rk_bench_write"
#: The targets of the service issue: HTTP ingest at least this share of the library's rate; one event's p99 (ms).
INGEST_SHARE, ONE_EVENT_P99_MS = 0.5, 10.0


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``times`` (seconds), in milliseconds."""
    ordered = sorted(times)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)] * 1000


class Server:
    """``rating serve`` in a child process on a free loopback port, its log in ``directory``; stopped on exit."""

    def __init__(self, db: str, directory: Path) -> None:
        pricebook, keys = directory / "bench.yaml", directory / "keys.json"
        pricebook.write_text(PRICEBOOK)
        from rating.server.auth import digest

        keys.write_text(json.dumps({"keys": [{"name": "bench", "sha256": digest(KEY).hex(), "scopes": ["write"]}]}))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "rating", "serve", "--db", db, "-p", str(pricebook), "--port", str(self.port)]
        command += ["--api-keys", str(keys), "--webhook-interval", "0"]
        self.log = (directory / f"serve-{self.port}.log").open("wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        for _ in range(600):  # at most a minute
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.__exit__()
        raise SystemExit(f"rating serve never became ready: {Path(self.log.name).read_text()[-2000:]}")

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _client(base: str) -> Any:
    """An httpx client of the benchmark's server (its write key on every request)."""
    try:
        import httpx
    except ImportError:
        raise SystemExit("python -m rating.bench --http needs httpx: pip install httpx") from None
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def ingest_http(base: str, events: list[UsageEvent], clients: int) -> float:
    """Seconds for ``clients`` concurrent clients to post ``events`` in batches of :data:`BATCH` (JSON Lines, the
    bodies made before the clock starts); every event must come back accepted."""
    bodies = [
        "".join(event.canonical_json() + "\n" for event in events[start : start + BATCH]).encode()
        for start in range(0, len(events), BATCH)
    ]
    queue, lock, accepted = list(reversed(bodies)), threading.Lock(), [0]
    problems: list[str] = []

    def work() -> None:
        with _client(base) as client:
            while True:
                with lock:
                    if not queue or problems:
                        return
                    body = queue.pop()
                answer = client.post("/v1/events/batch", content=body, headers={"Content-Type": "application/x-ndjson"})
                with lock:
                    if answer.status_code != 200:
                        problems.append(f"{answer.status_code}: {answer.text[:300]}")
                    else:
                        accepted[0] += answer.json()["accepted"]

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if problems:
        raise SystemExit(f"a batch was refused: {problems[0]}")
    if accepted[0] != len(events):
        raise SystemExit(f"{accepted[0]:,} of {len(events):,} events accepted over HTTP")
    return seconds


def ingest_library(url: str, events: list[UsageEvent], registry: Registry) -> float:
    """Seconds for the engine to rate ``events`` into the fresh storage at ``url``, :data:`BATCH` events a call
    (what the batch route asks of it per request)."""
    book = parse_pricebook(PRICEBOOK, registry, "bench")
    with registry.open_storage(url) as storage:
        engine = Engine(book, storage, registry)
        started = time.perf_counter()
        for start in range(0, len(events), BATCH):
            engine.rate_batch(events[start : start + BATCH])
        return time.perf_counter() - started


def _fund(url: str, events: Sequence[UsageEvent], registry: Registry) -> None:
    """Deposit funds for the customers of ``events`` (the metered requests pay from them)."""
    with registry.open_storage(url) as storage:
        wallets = Wallets(storage)
        for customer in sorted({event.customer for event in events}):
            wallets.deposit(customer, "USD", Decimal(1000), f"seed-{customer}")


def _timed(calls: Sequence[Callable[[], None]]) -> tuple[float, float]:
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return percentiles(times)


def latency_http(base: str, singles: list[UsageEvent], metered: list[UsageEvent]) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of one event and of one metered request (authorize, then complete) over HTTP."""
    with _client(base) as client:

        def one(event: UsageEvent) -> Callable[[], None]:
            def post() -> None:
                answer = client.post("/v1/events", content=event.canonical_json(), headers=_JSON)
                if answer.status_code != 201:
                    raise SystemExit(f"POST /v1/events: {answer.status_code} {answer.text[:300]}")

            return post

        def request(event: UsageEvent) -> Callable[[], None]:
            def run() -> None:
                body = event.canonical_json()
                held = client.post(f"/v1/requests/{event.id}/authorize", content=body, headers=_JSON)
                done = client.post(f"/v1/requests/{event.id}/complete", content=body, headers=_JSON)
                if held.status_code != 201 or done.status_code != 200:
                    raise SystemExit(f"metered request: {held.status_code} {done.status_code} {done.text[:300]}")

            return run

        return {
            "one event": _timed([one(e) for e in singles]),
            "metered request": _timed([request(e) for e in metered]),
        }


_JSON = {"Content-Type": "application/json"}


def latency_library(
    url: str, singles: list[UsageEvent], metered: list[UsageEvent], registry: Registry
) -> dict[str, tuple[float, float]]:
    """The same operations called on the engine over a fresh storage at ``url``."""
    book = parse_pricebook(PRICEBOOK, registry, "bench")
    with registry.open_storage(url) as storage:
        engine = Engine(book, storage, registry)

        def request(event: UsageEvent) -> Callable[[], None]:
            def run() -> None:
                engine.authorize(event, event.id)
                engine.rate_reserved(event, event.id)

            return run

        def one(event: UsageEvent) -> Callable[[], None]:
            return lambda: None if engine.rate(event) is None else None

        return {
            "one event": _timed([one(e) for e in singles]),
            "metered request": _timed([request(e) for e in metered]),
        }


def _renamed(events: list[UsageEvent], prefix: str) -> list[UsageEvent]:
    return [event.model_copy(update={"id": f"{prefix}{event.id}"}) for event in events]


def run(
    count: int, storages: Sequence[str], postgres: str | None, clients: int = 4, samples: int = 500
) -> dict[str, float]:
    """The HTTP figures of each SQL storage of ``storages`` beside the library's; returns them by name
    (``KIND http events/s``, ``KIND library events/s``, ``KIND posted``, ``KIND one event p99 ms`` ...)."""
    registry = Registry.load()
    kinds = [kind for kind in storages if kind == "sqlite" or (kind == "postgres" and postgres)]
    events = synthetic_events(count)
    expected = bare_loop(events)
    # The latency samples: events of their own ids (the ingest's totals are checked before they are sent).
    sampled = synthetic_events(max(samples, 1) * 2)
    singles, metered = _renamed(sampled[:samples], "s"), _renamed(sampled[samples : 2 * samples], "m")
    figures: dict[str, float] = {}
    print(f"HTTP: {count:,} events, {BATCH:,} a batch, {clients} clients; {samples:,} latency samples", flush=True)
    made: list[str] = []

    def fresh_url(kind: str) -> str:
        made.append(storage_url(kind, directory, postgres))
        return made[-1]

    with tempfile.TemporaryDirectory() as directory, _dropped(made):
        folder = Path(directory)
        for kind in kinds:
            library = count / ingest_library(fresh_url(kind), events, registry)
            url = fresh_url(kind)
            _fund(url, metered, registry)  # creates (and migrates) the ledger the server opens
            with Server(url, folder) as server:
                http = count / ingest_http(server.base, events, clients)
                with registry.open_storage(url) as storage:  # what the server wrote, before the latency samples
                    charged = sum(storage.period_totals("2026-11").values(), Decimal(0))
                    posted = len(storage.rated_events([event.id for event in events]))
                if charged != expected:
                    raise SystemExit(f"rating serve ({kind}): charged {charged}, the bare loop summed {expected}")
                over_http = latency_http(server.base, singles, metered)
            fresh = fresh_url(kind)
            _fund(fresh, metered, registry)
            library_latency = latency_library(fresh, singles, metered, registry)
            figures.update({f"{kind} http events/s": http, f"{kind} library events/s": library})
            figures[f"{kind} posted"] = posted
            label = f"HTTP batch ingest ({kind})"
            print(
                f"{label:<38} {http:>12,.0f} events/s   the library on {kind}: {library:,.0f} events/s"
                f"   HTTP/library {http / library:.2f}",
                flush=True,
            )
            for name, (p50, p99) in over_http.items():
                lib50, lib99 = library_latency[name]
                figures[f"{kind} {name} p50 ms"], figures[f"{kind} {name} p99 ms"] = p50, p99
                label = f"{name} over HTTP ({kind})"
                print(
                    f"{label:<38} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
                    f"   the library: p50 {lib50:7.2f} ms   p99 {lib99:7.2f} ms",
                    flush=True,
                )
    print()
    print(targets(figures, kinds))
    return figures


@contextlib.contextmanager
def _dropped(urls: list[str]) -> Iterator[None]:
    """Drop the PostgreSQL schemas of ``urls`` (those the run made) when it ends; never another run's."""
    try:
        yield
    finally:
        made = [url for url in urls if "options=-csearch_path" in url]  # the PostgreSQL ones: a schema each
        if made:
            import psycopg

            base = made[0].rpartition("options=-csearch_path")[0][:-1]  # the URL before "?options" or "&options"
            with psycopg.connect(base, autocommit=True) as admin:
                for url in made:
                    admin.execute(f"DROP SCHEMA IF EXISTS {unquote(url).rpartition('search_path=')[2]} CASCADE")


def targets(figures: dict[str, float], kinds: Sequence[str]) -> str:
    """The service issue's targets beside this run's figures."""
    rows = []
    for kind in kinds:
        share = figures[f"{kind} http events/s"] / figures[f"{kind} library events/s"]
        verdict = "met" if share >= INGEST_SHARE else "NOT met"
        rows.append((f"HTTP ingest >= {INGEST_SHARE:.0%} of the library ({kind})", f"{share:.0%}", verdict))
    if "postgres" in kinds:
        p99 = figures["postgres one event p99 ms"]
        verdict = "met" if p99 < ONE_EVENT_P99_MS else "NOT met"
        rows.append((f"one event p99 < {ONE_EVENT_P99_MS:g} ms (postgres)", f"{p99:.2f} ms", verdict))
    else:
        rows.append((f"one event p99 < {ONE_EVENT_P99_MS:g} ms (postgres)", "-", "not measured"))
    width = max(len(target) for target, _, _ in rows)
    lines = [f"{'target':<{width}}  {'figure':>10}  verdict", "-" * (width + 22)]
    lines += [f"{target:<{width}}  {shown:>10}  {verdict}" for target, shown, verdict in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m rating.bench_http: the same as python -m rating.bench --http
    os.execv(sys.executable, [sys.executable, "-m", "rating.bench", "--http", *sys.argv[1:]])
