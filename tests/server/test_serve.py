"""``rating serve``: the real server on a free port, and the command's refusals before it starts."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from rating.cli import main
from tests.helpers import EXAMPLE
from tests.server.conftest import bearer, event


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base: str, server: subprocess.Popen[bytes], attempts: int = 300) -> None:
    """Poll /readyz until it answers 200 (at most ``attempts`` times, 0.1 s apart), or fail with the server's log."""
    for _ in range(attempts):
        if server.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    server.kill()
    _, log = server.communicate(timeout=10)
    pytest.fail(f"the server never became ready: {log.decode(errors='replace')[-2000:]}")


@pytest.mark.parametrize("workers", [1, 2])
def test_rating_serve_answers_on_a_free_port(workers: int, db: str, keys: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "rating", "serve", "--db", db, "-p", str(EXAMPLE), "--port", str(port)]
    command += ["--api-keys", str(keys), "--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        with httpx.Client(base_url=base, timeout=10) as client:
            posted = client.post("/v1/events", json=event("live-1", timestamp=stamp), headers=bearer("write"))
            assert posted.status_code == 201, posted.text
            assert posted.json()["totals"] == {"USD": "0.00065000"}
            assert client.post("/v1/events", json=event("live-1", timestamp=stamp)).status_code == 401
            [asset] = client.get("/v1/customers/dev-1/balance", headers=bearer("read")).json()["assets"]
            assert Decimal(asset["owed"]) == Decimal("0.00065")
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)
    # uvicorn shuts down gracefully on SIGTERM, then ends by the signal it caught (the master of --workers exits 0)
    assert server.returncode in (0, -signal.SIGTERM) and b"Traceback" not in log


def test_serve_refuses_no_auth_with_a_key_file(db: str, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db", db, "-p", str(EXAMPLE), "--no-auth", "--api-keys", str(keys)]) == 2
    assert "do not go together" in capsys.readouterr().err


def test_serve_refuses_a_missing_database_a_bad_key_file_and_a_bad_port(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "typo.db")
    assert main(["serve", "--db", missing, "-p", str(EXAMPLE), "--api-keys", str(keys)]) == 3
    assert "no_database" in capsys.readouterr().err and not Path(missing).exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keys": [{"name": "x", "sha256": "rk_plain_key", "scopes": ["read"]}]}))
    assert main(["serve", "--db", missing, "-p", str(EXAMPLE), "--api-keys", str(bad)]) == 3
    assert "sha256 must be 64 lowercase hex digits" in capsys.readouterr().err
    assert main(["serve", "--db", missing, "-p", str(EXAMPLE), "--no-auth", "--port", "70000"]) == 2


def test_serve_without_the_server_extra_says_which_extra(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert main(["serve", "--db", db, "-p", str(EXAMPLE), "--no-auth"]) == 3
    expected = (
        "rating: error: rating serve needs the server extra:"
        " pip install 'rating-engine[server]' (from a checkout: pip install -e '.[server]')"
    )
    assert capsys.readouterr().err.strip() == expected
