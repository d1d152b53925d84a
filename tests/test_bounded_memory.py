"""Every read is bounded: no input file or stream, however large its records or lines, takes memory with it.

The command-line tests run ``rating`` in a child process and read its peak resident memory, which must stay
under 300 MB (the limit docs/limits.md gives) where the unbounded reads took the input's size and more.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rating.cli import main
from rating.cli.common import count_lines as _count_lines
from rating.engine import Engine
from rating.errors import PricebookError
from rating.events import Pause, UsageEvent, follow, read_events
from rating.hookspecs import hookimpl
from rating.invoices.profiles import load_billing
from rating.pricebook.model import Pricebook, load_pricebook, parse_pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage.sqlite import SQLiteStorage
from tests.helpers import SIMPLE_PRICEBOOK, event

MiB = 1024 * 1024
#: Peak resident memory any command may reach on any input.
MAX_RSS = 300 * 1000 * 1000


def _peak(work: Callable[[], object]) -> int:
    """The most memory Python allocated at once while ``work`` ran, in bytes."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _record(number: int, pad: int) -> bytes:
    body = {
        "id": f"e{number}",
        "customer": "acme",
        "type": "api.call",
        "timestamp": "2026-11-05T12:00:00Z",
        "properties": {"tokens": 1, "model": "m", "pad": "x" * pad},
    }
    return json.dumps(body).encode() + b"\n"


def test_counting_the_lines_of_a_file_never_holds_a_line(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    with path.open("wb") as file:
        file.write(_record(1, 10))
        file.write(b"x" * (48 * MiB) + b"\n")  # the progress counter held a 1 GiB line whole: 2.1 GB peak
        file.write(_record(2, 10).rstrip(b"\n"))
    assert _peak(lambda: _count_lines(path)) < 4 * MiB
    assert _count_lines(path) == 3 and _count_lines(Path("/dev/zero")) is None


def test_a_long_line_is_skipped_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(_record(1, 10) + b"x" * (48 * MiB) + b"\n" + _record(2, 10))
    records = []
    assert _peak(lambda: records.extend(read_events(path))) < 8 * MiB
    assert [r.event.id if r.event else r.error for r in records] == ["e1", "line is longer than 1,048,576 bytes", "e2"]


def test_chunks_of_large_records_are_bounded_by_bytes(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    path = tmp_path / "large.jsonl"
    path.write_bytes(b"".join(_record(number, MiB - 300) for number in range(40)))  # 40 MiB of records
    with SQLiteStorage(tmp_path / "r.db") as storage:
        engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry)
        reports = []
        peak = _peak(lambda: reports.append(engine.rate_batch(read_events(path), chunk_bytes=4 * MiB)))
    assert reports[0].posted == 40 and peak < 20 * MiB  # a chunk of 5,000 records held all 40 MiB, and copies


def test_a_live_stream_reads_ahead_a_bounded_number_of_bytes() -> None:
    stream = io.BytesIO(b"".join(_record(number, MiB - 300) for number in range(40)))
    records = follow(stream, "<stdin>", idle=5, budget=4 * MiB)

    def read_slowly() -> None:
        assert not isinstance(next(records), Pause)
        time.sleep(0.5)  # the reader thread parsed the whole stream ahead meanwhile: 10,000 records allowed
        assert sum(1 for record in records if not isinstance(record, Pause)) == 39

    assert _peak(read_slowly) < 16 * MiB


@pytest.mark.parametrize("loader", [load_pricebook, load_billing], ids=["pricebook", "billing"])
def test_a_special_file_is_read_up_to_the_limit_never_until_memory_runs_out(loader: Callable[[str], object]) -> None:
    with pytest.raises(PricebookError, match="/dev/zero:1:5242881: the file is over the 5,242,880-byte"):
        loader("/dev/zero")


def test_a_catalogue_that_never_ends_is_a_problem_of_its_charge(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(
        SIMPLE_PRICEBOOK.replace(
            '      - {meter: requests, model: per_call, price: "0.01"}',
            "      - {meter: requests, model: llm, catalogue: /dev/zero}",
        )
    )
    with pytest.raises(PricebookError, match="catalogue /dev/zero:1:5242881: the file is over the 5,242,880-byte"):
        load_pricebook(path, registry)


def test_check_of_a_special_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/dev/zero"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "/dev/zero:1:5242881: the file is over the 5,242,880-byte pricebook limit"


# -- the command line, in a child process whose peak memory is read --------------------------------------------

#: Runs ``rating`` and prints its peak resident memory: VmHWM, which starts anew with the process's memory at
#: exec (ru_maxrss carries over the parent's peak, and the test runner's own is hundreds of megabytes by then).
PEAK = "import sys; from rating.cli import main; code = main(sys.argv[1:]); " + (
    "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0]; "
    "print('peak', int(hwm) * 1024, file=sys.stderr); sys.exit(code)"
)


def _rate(tmp_path: Path, source: Path, *argv: str) -> tuple[int, str, int]:
    """``rating rate`` with ``argv`` and ``source`` on standard input: exit code, stderr, peak resident bytes."""
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    command = [sys.executable, "-c", PEAK, "rate", *argv, "-p", "book.yaml", "--db", "r.db"]
    with source.open("rb") as stdin:
        done = subprocess.run(command, stdin=stdin, capture_output=True, cwd=tmp_path, check=False, timeout=600)
    err = done.stderr.decode()
    return done.returncode, err, int(err.rsplit("peak ", 1)[1])


@pytest.fixture(scope="module")
def large_records(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """150 records of 1 MiB each (the rating of 2,000 of them took 4.2 GB)."""
    path = tmp_path_factory.mktemp("large") / "large.jsonl"
    with path.open("wb") as file:
        for number in range(150):
            file.write(_record(number, MiB - 300))
    yield path
    path.unlink()


@pytest.mark.parametrize("events", ["file", "-"], ids=["file", "stdin"])
def test_rating_large_records_stays_under_the_memory_limit(tmp_path: Path, large_records: Path, events: str) -> None:
    code, err, peak = _rate(tmp_path, large_records, str(large_records) if events == "file" else "-")
    assert code == 0 and "posted 150 events" in err and peak < MAX_RSS, peak  # 354 MB before


def test_a_line_of_hundreds_of_megabytes_on_strict_standard_input_stays_under_the_limit(tmp_path: Path) -> None:
    source = tmp_path / "long.jsonl"
    with source.open("wb") as file:
        file.write(_record(1, 10))
        for _ in range(320):  # 320 MiB in one line, written in pieces
            file.write(b"x" * MiB)
        file.write(b"\n" + _record(2, 10))
    code, err, peak = _rate(tmp_path, source, "-", "--strict")
    source.unlink()
    assert code != 0 and "line is longer than 1,048,576 bytes" in err and "nothing posted" in err
    assert peak < MAX_RSS, peak  # the progress counter read the line whole


def test_strict_rating_of_large_records_stays_under_the_memory_limit(tmp_path: Path, large_records: Path) -> None:
    """All or nothing without holding everything: the chunks are stored in one transaction, rolled back on a
    refusal (the records of a strict batch were all held until their one post)."""
    code, err, peak = _rate(tmp_path, large_records, str(large_records), "--strict")
    assert code == 0 and "posted 150 events" in err and peak < MAX_RSS, peak


def test_a_strict_batch_stores_its_chunks_as_it_goes_and_takes_them_all_back_on_a_refusal(tmp_path: Path) -> None:
    registry = Registry.load()
    with SQLiteStorage(tmp_path / "strict.db") as storage:
        posted: list[str] = []

        class Listener:
            @hookimpl
            def rating_transaction_posted(self, transaction: object) -> None:
                posted.append(str(transaction))

        engine = Engine(parse_pricebook(SIMPLE_PRICEBOOK, registry, "book.yaml"), storage, Registry.load([Listener()]))
        seen_while_reading: list[bool] = []

        def events(last_customer: str) -> Iterator[UsageEvent]:
            for number in range(250):
                if number == 200:  # two chunks of 100 are in the transaction already, not held in memory
                    seen_while_reading.append(bool(storage.rated_events(["e0", "e150"])))
                yield event(f"e{number}", customer="acme" if number < 249 else last_customer, tokens=1, model="m")

        refused = engine.rate_batch(events("nobody"), strict=True, chunk_size=100)
        assert [r.code for r in refused.rejected] == [Refusal.UNKNOWN_CUSTOMER] and refused.posted == 0
        assert seen_while_reading == [True] and storage.rated_events(["e0"]) == {} and storage.balances() == {}
        assert posted == []  # plugins heard of nothing that was rolled back
        done = engine.rate_batch(events("acme"), strict=True, chunk_size=100)
        assert done.posted == 250 and done.rejected == [] and len(posted) == 250
