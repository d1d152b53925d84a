"""A delivery claimed by a worker that died: on this host, the next pass sends it at once (the dead process is
probed); another host's claim, or one of a live process, waits out its lease."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys

import pytest

from rating.outbox import INVOICE_PAID, message
from rating.storage.sqlite import SQLiteStorage
from rating.webhooks import LEASE, add_endpoint, claim, is_gone, new_secret, worker_id

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a process is probed only on POSIX")


def dead_pid() -> int:
    """The pid of a process that ran and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_worker_of_this_host_is_gone_only_when_its_process_is() -> None:
    host = socket.gethostname()
    assert is_gone(f"{host}:{dead_pid()}")
    assert not is_gone(worker_id())  # this process: never (another deliverer in it shares its name)
    assert not is_gone(f"{host}:1")  # alive (init), perhaps another user's
    assert not is_gone(f"another-{host}:{dead_pid()}")  # another host's: its lease decides
    assert not is_gone("") and not is_gone("worker-a")


def test_pairs_claimed_by_a_worker_killed_on_this_host_are_claimed_again_at_once() -> None:
    storage = SQLiteStorage(":memory:")
    try:
        add_endpoint(storage, "http://127.0.0.1:9/hooks", [new_secret()])
        storage.announce([message(INVOICE_PAID, f"INV-{n}", {"n": n}) for n in range(2)])
        now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        host = socket.gethostname()
        killed, remote = f"{host}:{dead_pid()}", f"elsewhere-{host}:{os.getpid()}"
        [(held, _, _)] = claim(storage, now=now, worker=remote, limit=1)  # a live worker on another host
        [(lost, _, _)] = claim(storage, now=now, worker=killed, limit=1)  # then kill -9: never sent, never logged
        assert held.id != lost.id
        # The next pass takes over the dead worker's pair at once; the other host's waits out its lease.
        assert [(m.id, attempt) for m, _, attempt in claim(storage, now=now, worker="next")] == [(lost.id, 1)]
        assert claim(storage, now=now, worker="next") == []  # its own claim now holds it
        assert sorted(m.id for m, _, _ in claim(storage, now=now + LEASE, worker="next")) == sorted([lost.id, held.id])
    finally:
        storage.close()
