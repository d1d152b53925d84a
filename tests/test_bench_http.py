"""``python -m rating.bench --http`` run tiny: its lines carry figures; the ledger the server wrote got the events."""

from __future__ import annotations

import os
import re

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from rating import bench_http  # noqa: E402 -- after the skips when the server extra is missing

NUMBER = r"[0-9][0-9,]*(\.[0-9]+)?"


def kinds() -> list[str]:
    return ["sqlite", "postgres"] if os.environ.get("RATING_TEST_POSTGRES_URL") else ["sqlite"]


def test_the_http_bench_prints_figures_beside_the_library_and_the_server_posts_every_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    postgres = os.environ.get("RATING_TEST_POSTGRES_URL")
    figures = bench_http.run(1_500, kinds(), postgres, clients=2, samples=4)  # drops the schemas it made
    out = capsys.readouterr().out
    for kind in kinds():
        assert figures[f"{kind} posted"] == 1_500  # every event of the two batches is in the ledger
        ingest = re.search(
            rf"HTTP batch ingest \({kind}\) +({NUMBER}) events/s +the library on {kind}: ({NUMBER})", out
        )
        assert ingest is not None, out
        assert float(ingest.group(1).replace(",", "")) > 0 and float(ingest.group(3).replace(",", "")) > 0
        for name in ("one event", "metered request"):
            line = re.search(rf"{name} over HTTP \({kind}\) +p50 +({NUMBER}) ms +p99 +({NUMBER}) ms +the library:", out)
            assert line is not None, out
            assert 0 < float(line.group(1)) <= float(line.group(3))
            assert figures[f"{kind} {name} p99 ms"] == pytest.approx(float(line.group(3)), abs=0.01)
        assert re.search(rf"HTTP ingest >= 50% of the library \({kind}\) +[0-9]+% +(met|NOT met)", out), out


@pytest.mark.skipif(not os.environ.get("RATING_TEST_POSTGRES_URL"), reason="needs RATING_TEST_POSTGRES_URL")
def test_the_http_bench_drops_only_the_schemas_it_made() -> None:
    import psycopg

    postgres = os.environ["RATING_TEST_POSTGRES_URL"]
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA IF NOT EXISTS rating_bench_another_run")
        try:
            bench_http.run(1_000, ["postgres"], postgres, clients=1, samples=2)
            names = {
                n for (n,) in admin.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rating_bench_%'")
            }
            assert "rating_bench_another_run" in names  # another run's schema stays
        finally:
            admin.execute("DROP SCHEMA IF EXISTS rating_bench_another_run CASCADE")
