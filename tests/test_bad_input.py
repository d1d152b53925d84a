"""Bad input: each a clear reason in the rejected-events report, nothing of it posted."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rating.cli import main
from rating.engine import Engine
from rating.events import read_events
from rating.pricebook import Pricebook
from rating.refusals import Refusal
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


def test_sums_that_cannot_stay_exact_are_refused_not_rounded(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # Prices are bounded at check time; a quantity of 1E-100 on top of 7 cannot be summed in 60 digits.
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry)
    report = engine.rate_batch([event("e1", tokens=7, model="m"), event("e2", tokens=Decimal("1E-100"), model="m")])
    assert report.posted == 1 and [(r.code, r.reason) for r in report.rejected] == [
        (Refusal.NOT_EXACT, "cannot be priced exactly: Inexact")
    ]
    assert [t.id for t in storage.transactions()] == ["rating:e1"]


def test_future_tolerance_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.yaml").write_text(SIMPLE_PRICEBOOK)
    (tmp_path / "e.jsonl").write_text(line("later", at="2099-01-01T00:00:00Z") + "\n")
    argv = ["rate", str(tmp_path / "e.jsonl"), "-p", str(tmp_path / "b.yaml"), "--db", str(tmp_path / "r.db")]
    assert main([*argv, "--future-tolerance", "5m"]) == 3  # exit codes: every record refused, nothing done
    assert "in the future beyond the 0:05:00 tolerance" in capsys.readouterr().err
    assert main([*argv, "--future-tolerance", "soon"]) == 2  # an invalid flag value
    assert "'soon' is not a duration" in capsys.readouterr().err


HOSTILE = [
    line("first").encode(),
    line("nul\x00id").encode(),  # PostgreSQL cannot store NUL: refused before it gets there
    line("nul-customer", customer="ac\x00me").encode(),
    line("x" * 1_000_000).encode(),  # an id of about 1 MB, past the 256-character bound
    line("latin").encode().replace(b'"m"', b'"\xe9"'),  # a byte that is not UTF-8
    b'{"id": "deep", "properties": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    line("end-of-time", at="9999-12-31T23:59:59Z"),  # year 10000 once converted to a zone east of UTC
    b'{"id": "huge", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}',  # a line past the 1 MiB bound
    line("last").encode(),
]
HOSTILE_BOOK = SIMPLE_PRICEBOOK.replace("currency: USD", "currency: USD\ntimezone: Asia/Tokyo")


def _hostile_file(path: Path) -> Path:
    path.write_bytes(b"\n".join(h if isinstance(h, bytes) else h.encode() for h in HOSTILE) + b"\n")
    return path


def test_hostile_records_are_rejected_one_by_one_and_the_rest_is_posted(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(HOSTILE_BOOK), storage, registry)
    report = engine.rate_batch(read_events(_hostile_file(tmp_path / "hostile.jsonl")))
    assert report.posted == 2 and sorted(storage.rated_events(["first", "last"])) == ["first", "last"]
    reasons = {int(r.location.rsplit(":", 1)[1]): r.reason for r in report.rejected}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8]
    assert "control characters such as NUL" in reasons[2] and "U+0000" in reasons[3]
    assert "must be 1 to 256 characters" in reasons[4]
    assert "not UTF-8 (byte 0xe9" in reasons[5]
    assert "nested deeper than" in reasons[6] and "timestamp must lie between 1900 and 9000" in reasons[7]
    assert "line is longer than 1,048,576 bytes" in reasons[8]
    assert storage.verify() == []


def test_hostile_records_in_strict_mode_post_nothing_and_exit_three(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(HOSTILE_BOOK)
    events = _hostile_file(tmp_path / "hostile.jsonl")
    assert main(["rate", str(events), "-p", "book.yaml", "--strict"]) == 3  # a strict refusal: nothing done
    err = capsys.readouterr().err
    assert "strict: nothing posted because 7 records were rejected" in err and "Traceback" not in err
    assert main(["rate", str(events), "-p", "book.yaml"]) == 1  # and the replay posts the good ones, once
    assert "posted 2 events, 0 already posted, 7 rejected" in capsys.readouterr().err


def test_hostile_csv_rows_are_rejected_one_by_one(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    from rating.storage.memory import MemoryStorage

    rows = [
        b"id,customer,type,timestamp,tokens,model",
        b"c1,acme,api.call,2026-11-05T12:00:00Z,5,m",
        b"c2,acme,api.call,2026-11-05T12:00:00Z,5,\xff",
        b"c3,acme,api.call,2026-11-05T12:00:00Z,5,m,extra",
        b'c4,acme,api.call,2026-11-05T12:00:00Z,5,"' + b"y" * 200_000 + b'"',
        b"c5,acme,api.call,2026-11-05T12:00:00Z,5,m",
    ]
    path = tmp_path / "e.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    report = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry).rate_batch(read_events(path))
    assert report.posted == 2
    assert [(r.location.rsplit(":", 1)[1], r.reason.split(" ")[0]) for r in report.rejected] == [
        ("3", "not"),
        ("4", "more"),
        ("5", "invalid"),
    ]


def test_quote_of_a_deeply_nested_event_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    deep = '{"id": "q", "properties": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert main(["quote", deep, "-p", "book.yaml"]) == 3  # its only record refused
    err = capsys.readouterr().err
    assert "argument: invalid JSON: nested deeper than 32 levels" in err and "Traceback" not in err
