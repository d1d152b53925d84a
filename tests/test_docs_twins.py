"""Twins of the documented blocks that cannot run in CI as written (``<!-- test: not-run TWIN -->``).

Each runs what its block shows at a size CI affords, or against what CI has in place of what the block
names (the test PostgreSQL database for a production URL, a local cluster for a remote Dask scheduler).
tests/test_docs.py checks that every not-run block names one of these and says so where readers see it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def rating(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``rating`` command of this venv, as the docs run it."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(["rating", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_bench_twin() -> None:
    """docs/benchmark.md: ``python -m rating.bench --events 1000000``, on 2,000 events in memory."""
    done = subprocess.run(
        [sys.executable, "-m", "rating.bench", "--events", "2000", "--storage", "memory"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rate = re.search(r"^rate \+ post \(memory\)\s+[\d.]+ s\s+([\d,]+) events/s", done.stdout, re.M)
    assert rate and int(rate.group(1).replace(",", "")) > 0, done.stdout
    assert re.search(r"^memory: >= 150,000 events/s\s+[\d,]+ events/s", done.stdout, re.M), done.stdout


def test_postgres_twin(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/benchmark.md: the bench on PostgreSQL, 2,000 events and 20 metered requests on the test database."""
    url = os.environ.get("RATING_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("RATING_TEST_POSTGRES_URL is not set")
    from rating.bench import latency, run

    figures = run(2_000, ["postgres"], url)
    p99s = latency(20, ["postgres"], url)
    printed = capsys.readouterr().out
    assert figures["postgres"] > 0 and figures["postgres share of COPY"] > 0, printed
    assert p99s["postgres"] > 0, printed
    assert re.search(r"^rate \+ post \(postgres\)\s+[\d.]+ s\s+[\d,]+ events/s", printed, re.M), printed
    assert "a raw COPY of the same rows" in printed


def test_dask_twin(tmp_path: Path) -> None:
    """docs/simulation.md: ``rating simulate FILE.parquet --dask tcp://scheduler:8786``, on a local two-worker
    cluster (``--workers 2``): the same table as the single process, digit for digit."""
    shutil.copytree(ROOT / "pricebooks", tmp_path / "pricebooks")
    assert rating("demo", cwd=tmp_path).returncode == 0
    converted = rating("to-parquet", "demo-events.jsonl", "demo-events.parquet", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    command = [
        "simulate",
        "demo-events.parquet",
        "-p",
        "pricebooks/ai-gateway.yaml",
        "--vs",
        "pricebooks/candidates/ai-gateway-2027.yaml",
    ]
    alone = rating(*command, cwd=tmp_path)
    cluster = rating(*command, "--workers", "2", cwd=tmp_path)
    assert alone.returncode == 0 and cluster.returncode == 0, alone.stderr + cluster.stderr
    assert "acme-labs" in alone.stdout
    assert cluster.stdout == alone.stdout
