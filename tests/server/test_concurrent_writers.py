"""Two `rating serve` processes and one `rating rate` writer on one PostgreSQL ledger, over the same customers, in
arrival orders of their own: the ledger is the one a sequential run in time order leaves (issue 23)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rating.engine import Engine
from rating.events import parse_event
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import EXAMPLE
from tests.server.conftest import bearer, event
from tests.server.test_serve import free_port, wait_ready
from tests.test_arrival_order import assert_same_bill

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs RATING_TEST_POSTGRES_URL")

#: Two customers on the team plan (an allowance, so the order of their events decides single charges) and one
#: on the developer plan.
CUSTOMERS = ("acme-labs", "globex", "dev-1")


def events() -> list[dict[str, Any]]:
    """November usage of every customer, spread over the month; every other one on a frontier model, whose
    volume tiers the team plan's period total crosses (each crossing re-prices that customer's month)."""
    made = []
    for n in range(180):
        one = event(
            f"w{n}",
            customer=CUSTOMERS[n % 3],
            input_tokens=200_000 + 1_000 * n,
            output_tokens=50_000 + 500 * n,
            timestamp=f"2026-11-{1 + (n * 7) % 28:02d}T{n % 24:02d}:00:00Z",
        )
        if n % 2:
            one["properties"]["model"] = "gpt-5"
        made.append(one)
    return made


@contextmanager
def served(url: str, keys: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "rating", "serve", "--db", url, "-p", str(EXAMPLE), "--port", str(port)]
    server = subprocess.Popen([*command, "--api-keys", str(keys)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def post_batches(base: str, share: list[dict[str, Any]]) -> list[str]:
    with httpx.Client(base_url=base, headers=bearer("write"), timeout=60) as client:
        statuses = []
        for start in range(0, len(share), 15):
            answer = client.post("/v1/events/batch", json=share[start : start + 15])
            assert answer.status_code == 200, answer.text
            statuses += [result["status"] for result in answer.json()["results"]]
        return statuses


def post_singly(base: str, share: list[dict[str, Any]]) -> list[str]:
    with httpx.Client(base_url=base, headers=bearer("write"), timeout=60) as client:
        statuses = []
        for one in share:
            answer = client.post("/v1/events", json=one)
            assert answer.status_code == 201, answer.text
            statuses.append(answer.json()["status"])
        return statuses


def rate_file(url: str, share: list[dict[str, Any]], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text("".join(json.dumps(one) + "\n" for one in share), encoding="utf-8")
    command = [sys.executable, "-m", "rating", "rate", str(path), "--db", url, "-p", str(EXAMPLE), "-o", "json"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_two_servers_and_a_cli_writer_on_one_postgres_ledger_leave_the_ledger_of_a_sequential_run(
    registry: Registry, tmp_path: Path, keys: Path
) -> None:
    everything = events()
    shares: list[list[dict[str, Any]]] = [everything[writer::3] for writer in range(3)]
    for writer, share in enumerate(shares):  # each writer's own arrival order: late usage everywhere
        random.Random(writer).shuffle(share)
    url = postgres_url()
    registry.open_storage(url).close()  # rating db migrate, once
    with served(url, keys) as one, served(url, keys) as two, ThreadPoolExecutor(3) as pool:
        batched = pool.submit(post_batches, one, shares[0])
        single = pool.submit(post_singly, two, shares[1])
        cli = pool.submit(rate_file, url, shares[2], tmp_path / "share.jsonl")
        assert batched.result() == ["accepted"] * len(shares[0])
        assert single.result() == ["accepted"] * len(shares[1])
        finished = cli.result()
        assert finished.returncode == 0, finished.stderr

    sequential_url = postgres_url()
    in_time = sorted((parse_event(one) for one in everything), key=lambda e: (e.timestamp, e.id))
    catalog = load_catalog([EXAMPLE], registry)
    with registry.open_storage(url) as concurrent, registry.open_storage(sequential_url) as sequential:
        engine = Engine(catalog, sequential, registry)
        for one in in_time:
            engine.rate(one)
        assert_same_bill(concurrent, sequential)
        assert concurrent.verify() == []
