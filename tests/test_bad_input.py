"""Bad input: each a clear reason in the rejected-events report, nothing of it posted."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rating.cli import main
from rating.engine import Engine
from rating.events import read_events
from rating.pricebook import Pricebook
from rating.registry import Registry
from rating.storage import Storage
from tests.helpers import SIMPLE_PRICEBOOK, event

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def line(
    id: str, customer: str = "acme", type: str = "api.call", at: str = "2026-11-05T12:00:00Z", tokens: Any = 5
) -> str:
    return json.dumps(
        {"id": id, "customer": customer, "type": type, "timestamp": at, "properties": {"tokens": tokens, "model": "m"}}
    ).replace('"TOKENS"', "1e400")


LINES = [
    line("ok"),
    "{not json",
    line("who", customer="ghost"),
    line("what", type="api.cal"),
    line("neg", tokens=-5),
    line("nan", tokens="five"),
    line("naive", at="2026-11-05T12:00:00"),
    line("future", at="2026-11-23T12:10:00Z"),
    line("huge", tokens="TOKENS"),  # a JSON number of 400 digits
    line("wide", tokens=10**15),  # large, but plausible
]


def test_every_kind_of_bad_record_is_reported_and_nothing_of_it_posted(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    tolerance = dt.timedelta(minutes=5)
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry, future_tolerance=tolerance, clock=lambda: NOW)
    report = engine.rate_batch(read_events(path))
    reasons = {int(r.location.rsplit(":", 1)[1]): r.reason for r in report.rejected}
    assert report.posted == 2
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3].startswith("unknown customer 'ghost'")
    assert reasons[4] == "no meter counts events of type 'api.cal'"
    assert reasons[5] == "tokens must not be negative, got -5"
    assert reasons[6] == "tokens must be a decimal number, got 'five'"
    assert reasons[7].startswith("timestamp: Input should have timezone info")
    assert reasons[8] == "timestamp 2026-11-23T12:10:00+00:00 is in the future beyond the 0:05:00 tolerance"
    assert reasons[9].startswith("tokens is absurdly large (1E+400)")
    assert {t.id for t in storage.transactions()} == {"rating:ok", "rating:wide"}
    assert storage.verify() == []


def test_absurd_prices_are_refused_not_crashed_on(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # Sums that cannot be exact within 60 digits: refused with a reason, never rounded, never a crash.
    engine = Engine(book(SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "1e999990"')), storage, registry)
    report = engine.rate_batch([event("e1", tokens=7, model="m")])
    assert report.posted == 0 and [r.reason for r in report.rejected] == ["cannot be priced exactly: Inexact"]
    assert list(storage.transactions()) == []


def test_future_tolerance_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.yaml").write_text(SIMPLE_PRICEBOOK)
    (tmp_path / "e.jsonl").write_text(line("later", at="2099-01-01T00:00:00Z") + "\n")
    argv = ["rate", str(tmp_path / "e.jsonl"), "-p", str(tmp_path / "b.yaml"), "--db", str(tmp_path / "r.db")]
    assert main([*argv, "--future-tolerance", "5m"]) == 1
    assert "in the future beyond the 0:05:00 tolerance" in capsys.readouterr().err
    assert main([*argv, "--future-tolerance", "soon"]) == 1
    assert "'soon' is not a duration" in capsys.readouterr().err
