"""A server killed (SIGKILL) in the middle of a batch, restarted, and retried with the same ids: the ledger is the
one a single clean pass leaves (no event lost, none twice), it verifies, and every webhook message of the committed
changes reaches a receiver (verifying each delivery with the ``standardwebhooks`` library) at least once. On SQLite
and, with ``RATING_TEST_POSTGRES_URL``, on PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from rating.engine import Engine
from rating.events import parse_event
from rating.outbox import SPEND_ALERT_CROSSED
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.webhooks import add_endpoint, new_secret
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import EXAMPLE
from tests.server.conftest import bearer, event
from tests.server.test_serve import free_port, wait_ready

BATCHES = 12
PER_BATCH = 500
#: Each batch's events go to three customers of its own, each with a spend alert its batch crosses: the
#: announcements are written all along the run, in the commits around the kill.
ALERT = "0.01"


def customer(batch: int, n: int) -> str:
    return f"b{batch}-{n % 3}"


def batches() -> list[str]:
    """JSON Lines bodies of the same events every time: three customers a batch, tokens varying by event."""
    return [
        "".join(
            json.dumps(event(f"k{b}-{n}", customer=customer(b, n), input_tokens=100 + n, output_tokens=n)) + "\n"
            for n in range(PER_BATCH)
        )
        for b in range(BATCHES)
    ]


def alerting_pricebook(directory: Path) -> Path:
    """The example pricebook with the customers of :func:`batches`, each with a spend alert of :data:`ALERT`."""
    alerted = "".join(
        f'  {customer(b, n)}: {{plan: developer, spend_alert: "{ALERT}"}}\n' for b in range(BATCHES) for n in range(3)
    )
    text = EXAMPLE.read_text(encoding="utf-8").replace("customers:\n", "customers:\n" + alerted, 1)
    path = directory / EXAMPLE.name
    path.write_text(text, encoding="utf-8")
    return path


class Receiver:
    """A webhook endpoint on a free loopback port that verifies every delivery with ``standardwebhooks`` (401 when
    it does not verify) and keeps the ids of those that did; it takes a moment over each, so that the server is
    often killed with deliveries claimed and not yet answered."""

    def __init__(self, secret: str) -> None:
        self.verified: set[str] = set()
        self.unverified = 0
        receiver, webhook = self, Webhook(secret)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(0.02)
                try:
                    webhook.verify(body, {k.lower(): v for k, v in self.headers.items()})
                except WebhookVerificationError:
                    receiver.unverified += 1
                    self.send_response(401)
                else:
                    receiver.verified.add(self.headers["webhook-id"])
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(POSTGRES_URL is None,
                reason="needs RATING_TEST_POSTGRES_URL"))])  # fmt: skip
def ledger(request: pytest.FixtureRequest, db: str, registry: Registry) -> str:
    """A new, migrated ledger of each kind."""
    if request.param == "sqlite":
        return db
    url = postgres_url()
    registry.open_storage(url).close()
    return url


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    secret = new_secret()
    found = Receiver(secret)
    yield found, secret
    found.close()


def serve(db: str, keys: Path, pricebook: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "rating", "serve", "--db", db, "-p", str(pricebook), "--port", str(port)]
    command += ["--api-keys", str(keys), "--webhook-interval", "0.05"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


def wait_delivered(receiver: Receiver, ids: set[str], server: subprocess.Popen[bytes]) -> None:
    """Wait (at most 30 s: a bound, not a timing) until the receiver verified every one of ``ids``."""
    for _ in range(600):
        if ids <= receiver.verified or server.poll() is not None:
            return
        time.sleep(0.05)


def test_a_server_killed_mid_batch_then_retried_leaves_the_ledger_of_one_clean_pass_and_delivers_every_webhook(
    ledger: str, keys: Path, tmp_path: Path, registry: Registry, receiver: tuple[Receiver, str]
) -> None:
    hooks, secret = receiver
    pricebook = alerting_pricebook(tmp_path)
    with registry.open_storage(ledger) as storage:
        add_endpoint(storage, hooks.url, [secret])
    bodies = batches()
    server, base = serve(ledger, keys, pricebook)
    before: list[str] = []
    answered = threading.Event()
    sender = threading.Thread(target=post_all, args=(base, bodies, before, answered))
    sender.start()
    assert answered.wait(timeout=60)
    time.sleep(0.05)  # one batch committed (its alerts announced, some delivered), the next in flight
    server.send_signal(signal.SIGKILL)
    server.communicate(timeout=30)  # reaped, its pipe closed
    sender.join(timeout=60)
    assert len(before) < BATCHES * PER_BATCH  # it died before the end: the retry below has something to do
    with registry.open_storage(ledger) as storage:
        announced_before = {m.id for m in storage.outbox()}
    assert announced_before  # committed changes announced before the kill

    server, base = serve(ledger, keys, pricebook)  # restarted on the same ledger
    try:
        after: list[str] = []
        post_all(base, bodies, after)
        with registry.open_storage(ledger) as storage:
            announced = {m.id for m in storage.outbox()}
        wait_delivered(hooks, announced, server)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert len(after) == BATCHES * PER_BATCH
    assert set(after) <= {"accepted", "duplicate"}  # nothing refused on the retry
    assert after.count("duplicate") >= before.count("accepted")  # what was posted before is not posted again

    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    with registry.open_storage(clean) as storage:
        engine = Engine(load_catalog([pricebook], registry), storage, registry)
        events = [parse_event(json.loads(line)) for body in bodies for line in body.splitlines()]
        assert not engine.rate_batch(events).rejected
        expected = (storage.balances(), storage.count_transactions())
        expected_messages = {(m.id, m.type) for m in storage.outbox()}
    with registry.open_storage(ledger) as crashed:
        assert (crashed.balances(), crashed.count_transactions()) == expected
        assert crashed.verify() == []
        # Every alert crossed once, announced once: none lost in the kill, none announced twice on the retry.
        assert {(m.id, m.type) for m in crashed.outbox()} == expected_messages
    assert {kind for _, kind in expected_messages} == {SPEND_ALERT_CROSSED}
    assert len(expected_messages) == 3 * BATCHES
    # At least once: every message of a committed change reached the receiver, signed as Standard Webhooks says.
    assert hooks.unverified == 0
    assert announced_before <= announced == {id for id, _ in expected_messages}
    assert sorted(announced - hooks.verified) == []
