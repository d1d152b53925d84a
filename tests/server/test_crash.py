"""A server killed (SIGKILL) in the middle of a batch, restarted, and retried with the same ids: the ledger is the
one a single clean pass leaves (no event lost, none twice), and it verifies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from rating.engine import Engine
from rating.events import parse_event
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from tests.helpers import EXAMPLE
from tests.server.conftest import bearer, event
from tests.server.test_serve import free_port, wait_ready

BATCHES = 20
PER_BATCH = 500


def batches() -> list[str]:
    """JSON Lines bodies of the same events every time: three customers, tokens varying by event."""
    return [
        "".join(
            json.dumps(event(f"k{b}-{n}", customer=f"dev-{n % 3 + 1}", input_tokens=100 + n, output_tokens=n)) + "\n"
            for n in range(PER_BATCH)
        )
        for b in range(BATCHES)
    ]


def serve(db: str, keys: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "rating", "serve", "--db", db, "-p", str(EXAMPLE), "--port", str(port)]
    server = subprocess.Popen([*command, "--api-keys", str(keys)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server)
    return server, base


def post_all(base: str, bodies: list[str], statuses: list[str], first: threading.Event | None = None) -> None:
    """Post every batch in turn, keeping each event's status (``first`` is set once one batch is answered); stop at
    the first failure (the server died)."""
    headers = {**bearer("write"), "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=base, timeout=60) as client:
        for body in bodies:
            try:
                answer = client.post("/v1/events/batch", content=body, headers=headers)
            except httpx.HTTPError:
                return
            if answer.status_code != 200:
                return
            statuses.extend(result["status"] for result in answer.json()["results"])
            if first is not None:
                first.set()


def test_a_server_killed_mid_batch_then_retried_leaves_the_ledger_of_one_clean_pass(
    db: str, keys: Path, tmp_path: Path, registry: Registry
) -> None:
    bodies = batches()
    server, base = serve(db, keys)
    before: list[str] = []
    answered = threading.Event()
    sender = threading.Thread(target=post_all, args=(base, bodies, before, answered))
    sender.start()
    assert answered.wait(timeout=60)
    time.sleep(0.05)  # one batch committed, the next in flight
    server.send_signal(signal.SIGKILL)
    server.communicate(timeout=30)  # reaped, its pipe closed
    sender.join(timeout=60)
    assert len(before) < BATCHES * PER_BATCH  # it died before the end: the retry below has something to do

    server, base = serve(db, keys)  # restarted on the same ledger
    try:
        after: list[str] = []
        post_all(base, bodies, after)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert len(after) == BATCHES * PER_BATCH
    assert set(after) <= {"accepted", "duplicate"}  # nothing refused on the retry
    assert after.count("duplicate") >= before.count("accepted")  # what was posted before is not posted again

    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    with registry.open_storage(clean) as storage:
        engine = Engine(load_catalog([EXAMPLE], registry), storage, registry)
        events = [parse_event(json.loads(line)) for body in bodies for line in body.splitlines()]
        assert not engine.rate_batch(events).rejected
        expected = (storage.balances(), storage.count_transactions())
    with registry.open_storage(db) as crashed:
        assert (crashed.balances(), crashed.count_transactions()) == expected
        assert crashed.verify() == []
