"""Every command driven with hostile flag values: an exit code of the table of docs/cli.md, one line, never a traceback.

The values are parsed by one layer (:mod:`rating.cli.args`): a value its parser refuses is answered
with exit code 2 before anything is read or written; any other value runs the command, which ends
with 0, 1 or 3. The databases each command may create, and the passwords no output shows, are
checked here too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.cli import args as cliargs
from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.cli.documents import file_name
from rating.errors import InvalidValue, StorageError
from rating.registry import Registry
from rating.storage import masked
from tests.conftest import POSTGRES_URL
from tests.helpers import EXAMPLE, ROOT, SIMPLE_PRICEBOOK

BILLING = ROOT / "pricebooks" / "billing.yaml"
SECRET = "hunter2-secret"
#: Exit codes of the table of docs/cli.md (130, interrupted, is not provoked here).
TABLE = {0, 1, 2, 3}


def invoke(*argv: str) -> tuple[int, str, str]:
    """``rating ARGV`` in this process: its exit code, stdout and stderr (main must never raise)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with a pricebook, 200 rated demo events in ``r.db``, their Parquet file and a sub-directory."""
    root = tmp_path_factory.mktemp("values")
    before = Path.cwd()
    os.chdir(root)  # commands given a relative file write it here
    try:
        (root / "book.yaml").write_text(SIMPLE_PRICEBOOK)
        events = write_demo_events(root / "events.jsonl", 200)
        assert invoke("rate", str(events), "-p", str(EXAMPLE), "--db", "r.db")[0] == 0
        assert invoke("to-parquet", str(events), "events.parquet")[0] == 0
        (root / "adir").mkdir()
        yield root
    finally:
        os.chdir(before)


#: Values no flag should take whole: huge, out of range, not numbers, not dates, paths that are directories.
HOSTILE = [
    "999999999d", "99999999999999999999", "0s", "-5m", "5", "5 m", "", " ", "-", "--", "none", "%", "20%%",
    "9999-12", "9999-W52", "9999-12-31", "0001-01", "1899-12", "2026-13", "2026-W54", "2026-02-30", "2026-+1",
    "２０２６-11", "2026-11-30T25:00Z", "2026-11-30T00:00", "9999-12-31T23:59:59+14:00", "garbage",
    "1e999999", "-1e999999", "1E+999999999", "NaN", "Infinity", "sNaN", "1_000", " 12 ", "٣", "0.1e-99", "1e-30",
    "adir", "adir/", "/nonexistent/x", "r.db", "events.jsonl", "memory:", "redis://x", "a\x00b",
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",
]  # fmt: skip
values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12), st.from_regex(r"-?[0-9]{1,12}[smhd%]?"))

P = ["-p", "book.yaml"]
EVENT = json.dumps(
    {"id": "q1", "customer": "acme", "type": "api.call", "timestamp": "2026-11-05T12:00:00Z",
     "properties": {"tokens": 10, "model": "m"}}
)  # fmt: skip

#: (argv with ``{}`` where the value goes, the parser of that flag or None for a free-form argument).
TEMPLATES: list[tuple[list[str], Callable[[str], Any] | None]] = [
    (["rate", "events.jsonl", *P, "--db", "r.db", "--future-tolerance", "{}"], cliargs.tolerance),
    (["rate", "events.jsonl", *P, "--db", "{}"], cliargs.database),
    (["rate", "{}", *P, "--db", "r.db", "--strict"], None),
    (["quote", "{}", *P, "--db", "r.db"], None),
    (["quote", EVENT, *P, "--db", "{}"], cliargs.database),
    (["request", "authorize", EVENT, *P, "--db", "r.db", "--timeout", "{}"], cliargs.duration),
    (["request", "void", "{}", "--db", "r.db"], None),
    (["balance", "{}", "--db", "r.db"], None),
    (["balance", "--db", "{}"], cliargs.database),
    (["close-period", *P, "--db", "r.db", "--period", "{}"], cliargs.period),
    (["close-period", *P, "--db", "{}", "--period", "2026-11"], cliargs.database),
    (["usage", *P, "--db", "r.db", "--period", "{}"], cliargs.window),
    (["usage", *P, "--db", "r.db", "--until", "{}"], cliargs.timestamp),
    (["margin", *P, "--db", "r.db", "--below", "{}"], cliargs.percentage),
    (["margin", *P, "--db", "r.db", "--period", "{}", "--until", "2026-12-01T00:00Z"], cliargs.window),
    (["payouts", *P, "--db", "r.db", "--week", "{}"], cliargs.week),
    (["statement", "show", *P, "--db", "r.db", "--period", "{}"], cliargs.period),
    (["statement", "show", *P, "--db", "r.db", "--period", "2026-11", "--html", "{}"], cliargs.output_dir),
    (["invoice", "issue", *P, "--db", "r.db", "--billing", str(BILLING), "--period", "{}"], cliargs.period),
    (["invoice", "issue", *P, "--db", "r.db", "--billing", str(BILLING), "--period", "2026-11", "--date", "{}"],
     cliargs.date),
    (["invoice", "pay", "INV-2026-000001", "--db", "r.db", "--reference", "w1", "--amount", "{}"], cliargs.amount),
    (["invoice", "credit", "INV-2026-000001", "--db", "r.db", "--reference", "c1", "--line", "{}"], cliargs.count),
    (["invoice", "show", "{}", "--db", "r.db"], None),
    (["rerate", *P, "--db", "r.db", "--from", "{}", "--to", "2026-12-01", "--dry-run"], cliargs.date),
    (["rerate", *P, "--db", "r.db", "--from", "2026-11-01", "--to", "{}", "--dry-run"], cliargs.date),
    (["simulate", "events.jsonl", *P, "--report", "{}"], cliargs.output_file),
    (["simulate", *P, "--db", "r.db", "--from", "{}", "--to", "2026-12-01"], cliargs.date),
    (["simulate", "events.parquet", *P, "--workers", "{}", "--dask", "tcp://127.0.0.1:1"], cliargs.count),
    (["import", "genai-prices", "--provider", "{}", "--out", "catalogue.yaml"], None),
    (["import", "genai-prices", "--provider", "anthropic", "--out", "{}"], cliargs.output_file),
    (["to-parquet", "events.jsonl", "{}"], cliargs.output_file),
    (["to-parquet", "{}", "out.parquet"], None),
    (["verify", "--db", "{}"], cliargs.database),
    (["check", "{}"], None),
    (["diff", "book.yaml", "{}"], None),
    (["demo", "--events", "3", "--db", "demo.db", "--events-file", "{}"], cliargs.output_file),  # not millions
]  # fmt: skip


def refuses(parse: Callable[[str], Any], value: str) -> bool:
    try:
        parse(value)
    except InvalidValue:
        return True
    return False


@settings(max_examples=400)
@given(template=st.sampled_from(TEMPLATES), value=values)
def test_every_command_answers_any_value_with_a_code_of_the_table_and_one_line(
    workspace: Path, template: tuple[list[str], Callable[[str], Any] | None], value: str
) -> None:
    argv, parse = template
    code, out, err = invoke(*(value if part == "{}" else part for part in argv))
    assert code in TABLE, (argv, value, err)
    assert "Traceback" not in err and SECRET not in err + out
    if parse is not None and not value.startswith("-") and refuses(parse, value):
        assert code == 2 and err.count("\n") == 1, (argv, value, err)  # refused at parse time: one usage line


ISSUE_19 = [
    (["request", "authorize", EVENT, *P, "--db", "r.db", "--timeout", "999999999d"], "--timeout"),
    (["rate", "events.jsonl", *P, "--db", "r.db", "--future-tolerance", "999999999d"], "--future-tolerance"),
    (["usage", *P, "--db", "r.db", "--period", "999999999d"], "--period"),
    (["usage", *P, "--db", "r.db", "--until", "garbage"], "--until"),
    (["close-period", *P, "--db", "r.db", "--period", "9999-12"], "--period"),
    (["statement", "show", *P, "--db", "r.db", "--period", "9999-12"], "--period"),
    (["invoice", "issue", *P, "--db", "r.db", "--billing", str(BILLING), "--period", "9999-12"], "--period"),
    (["payouts", *P, "--db", "r.db", "--week", "9999-W52"], "--week"),
    (["rerate", *P, "--db", "r.db", "--from", "9999-12-01", "--to", "9999-12-31"], "--from"),
    (["invoice", "issue", *P, "--db", "r.db", "--billing", str(BILLING), "--period", "garbage"], "--period"),
    (["invoice", "issue", *P, "--db", "r.db", "--billing", str(BILLING), "--period", "2026-11", "--date", "garbage"],
     "--date"),
    (["invoice", "pay", "INV-2026-000001", "--db", "r.db", "--reference", "w", "--amount", "1e999999"], "--amount"),
    (["rate", "events.jsonl", *P, "--db", "adir"], "--db"),
    (["close-period", *P, "--db", "adir", "--period", "2026-11"], "--db"),
    (["import", "genai-prices", "--provider", "anthropic", "--out", "adir"], "--out"),
    (["to-parquet", "events.jsonl", "adir"], "OUT.parquet"),
    (["simulate", "events.jsonl", *P, "--report", "adir"], "--report"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "flag"), ISSUE_19)
def test_the_values_that_raised_tracebacks_are_one_usage_line(workspace: Path, argv: list[str], flag: str) -> None:
    code, out, err = invoke(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"rating {argv[0]}") and f"argument {flag}" in err and err.count("\n") == 1


def test_an_unreachable_dask_scheduler_fails_at_once_in_one_line(workspace: Path) -> None:
    started = time.monotonic()
    code, _, err = invoke("simulate", "events.parquet", *P, "--dask", "tcp://127.0.0.1:1")
    assert time.monotonic() - started < 5  # not Dask's 30 s of retries
    assert code == 3 and err.startswith("rating: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert err.count("\n") == 1


def test_to_parquet_of_no_valid_event_writes_nothing(workspace: Path) -> None:
    for source in ("r.db", "book.yaml"):
        code, out, err = invoke("to-parquet", source, "nothing.parquet")
        assert code == 3 and out == "" and f"rating: error: {source}: no valid event to write (" in err
    assert not (workspace / "nothing.parquet").exists()


def test_a_mistyped_db_never_starts_a_fresh_ledger(workspace: Path) -> None:
    for argv in (
        ["close-period", *P, "--period", "2026-11"],
        ["invoice", "issue", *P, "--billing", str(BILLING), "--period", "2026-11"],
        ["statement", "show", *P, "--period", "2026-11"],
        ["balance"],
        ["rerate", *P, "--from", "2026-11-01", "--to", "2026-12-01"],
        ["payouts", *P, "--week", "2026-W45"],
        ["request", "expire"],
        ["verify"],
    ):
        code, out, err = invoke(*argv, "--db", "typo.db")
        assert (code, out) == (3, "") and err == "rating: error: no_database: typo.db: no such database\n", argv
    assert not (workspace / "typo.db").exists()
    code, out, _ = invoke("quote", EVENT, *P, "--db", "typo.db", "-o", "json")  # a missing database is empty
    assert code == 0 and [row["amount"] for row in json.loads(out)] == ["0.01", "0.010"]
    code, _, err = invoke("simulate", *P, "--db", "typo.db", "--from", "2026-11-01", "--to", "2026-12-01")
    assert code == 0 and "revenue nothing" in err
    assert not (workspace / "typo.db").exists()
    assert invoke("db", "migrate", "--db", "typo.db")[0] == 0  # creates it
    assert invoke("close-period", *P, "--period", "2026-11", "--db", "typo.db")[0] == 0
    (workspace / "typo.db").unlink()


def test_only_rate_and_db_migrate_upgrade_a_schema(tmp_path: Path) -> None:
    import shutil

    legacy = tmp_path / "legacy.db"
    shutil.copy(ROOT / "tests" / "fixtures" / "legacy-v3.db", legacy)
    before = legacy.read_bytes()
    code, _, err = invoke("close-period", "-p", str(EXAMPLE), "--period", "2026-11", "--db", str(legacy))
    assert code == 3 and "schema_outdated: " in err and "run rating db migrate" in err
    assert legacy.read_bytes() == before
    events = write_demo_events(tmp_path / "e.jsonl", 5)
    assert invoke("rate", str(events), "-p", str(EXAMPLE), "--db", str(legacy))[0] == 0
    assert invoke("close-period", "-p", str(EXAMPLE), "--period", "2026-11", "--db", str(legacy))[0] == 0


def test_an_adapter_without_the_existing_keyword_is_named_not_called() -> None:
    from rating.errors import PluginError
    from rating.storage.memory import MemoryStorage

    registry = Registry.load()
    registry.storage_adapters["old"] = lambda url, read_only=False: MemoryStorage(url)
    assert registry.open_storage("old://x").url == "old://x"
    with pytest.raises(PluginError, match="'old' storage adapter cannot open an existing database only"):
        registry.open_storage("old://x", existing=True)


def test_an_empty_file_is_not_a_rating_database(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    code, _, err = invoke("balance", "--db", str(tmp_path / "empty.db"))
    assert code == 3 and "no_database: " in err and "not a rating database" in err


def test_rate_refuses_events_five_minutes_ahead_unless_told_none(tmp_path: Path) -> None:
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    lines = [
        json.loads(EVENT) | {"id": "ahead", "timestamp": ahead.isoformat()},
        json.loads(EVENT) | {"id": "soon", "timestamp": soon.isoformat()},
    ]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    argv = ["rate", str(events), "-p", str(tmp_path / "book.yaml"), "--db", str(tmp_path / "r.db")]
    code, _, err = invoke(*argv)
    assert code == 1 and "future_timestamp" in err and "beyond the 0:05:00 tolerance" in err
    assert "posted 1 events, 0 already posted, 1 rejected" in err
    code, _, err = invoke(*argv, "--future-tolerance", "none")
    assert code == 0 and "posted 1 events, 1 already posted, 0 rejected" in err


def test_strict_reports_every_refused_record_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    good = json.loads(EVENT)
    lines = [
        json.dumps(good),
        "not json",
        json.dumps(good | {"id": "ghost", "customer": "ghost"}),  # unknown_customer: found only by pricing
        json.dumps(good | {"id": "neg", "properties": {"tokens": -1, "model": "m"}}),
    ]
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(lines) + "\n")
    code, out, err = invoke("rate", str(events), "-p", str(tmp_path / "book.yaml"), "--db", str(tmp_path / "r.db"),
                            "--strict", "-o", "json")  # fmt: skip
    assert code == 3 and "strict: nothing posted because 3 records were rejected" in err
    document = json.loads(out)
    assert document["posted"] == 0
    assert [r["code"] for r in document["rejected"]] == ["invalid_record", "unknown_customer", "invalid_quantity"]


def test_exit_codes_of_rate_follow_the_table(tmp_path: Path) -> None:
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    good, ghost = json.loads(EVENT), json.loads(EVENT) | {"id": "g", "customer": "ghost"}
    rate = ["rate", "-p", str(tmp_path / "book.yaml"), "--db", str(tmp_path / "r.db")]
    (tmp_path / "all-bad.jsonl").write_text(json.dumps(ghost) + "\n")
    (tmp_path / "mixed.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(ghost) + "\n")
    assert invoke(rate[0], str(tmp_path / "all-bad.jsonl"), *rate[1:])[0] == 3  # every record refused
    assert invoke(rate[0], str(tmp_path / "mixed.jsonl"), *rate[1:])[0] == 1  # done, some refused
    (tmp_path / "good.jsonl").write_text(json.dumps(good) + "\n")
    assert invoke(rate[0], str(tmp_path / "good.jsonl"), *rate[1:])[0] == 0  # done (already posted)
    assert invoke("rate", str(tmp_path / "good.jsonl"))[0] == 2  # usage: -p is required


def test_simulate_with_unpriced_records_exits_one(tmp_path: Path) -> None:
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    good, ghost = json.loads(EVENT), json.loads(EVENT) | {"id": "g", "customer": "ghost"}
    (tmp_path / "e.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(ghost) + "\n")
    code, _, err = invoke("simulate", str(tmp_path / "e.jsonl"), "-p", str(tmp_path / "book.yaml"))
    assert code == 1 and "1 events not priced (unknown_customer)" in err


def test_a_postgresql_password_is_never_printed() -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"
    for argv in (["balance"], ["verify"], ["db", "migrate"], ["close-period", *P, "--period", "2026-11"]):
        code, out, err = invoke(*argv, "--db", url)
        assert code == 3 and SECRET not in out + err and "postgres:***@127.0.0.1:1" in err, (argv, err)
    assert masked(f"host=h password={SECRET} user=u") == "host=h password=*** user=u"
    assert masked(f"postgresql://u:{SECRET}@h/db?password={SECRET}") == "postgresql://u:***@h/db?password=***"
    with pytest.raises(StorageError) as refused:
        Registry.load().open_storage(f"redis://u:{SECRET}@h")
    assert SECRET not in str(refused.value)


@pytest.mark.skipif(not POSTGRES_URL, reason="needs RATING_TEST_POSTGRES_URL")
def test_postgresql_without_a_schema_is_no_database_and_rate_creates_one(tmp_path: Path) -> None:
    from tests.conftest import postgres_url

    url = postgres_url()  # an empty schema of its own
    code, _, err = invoke("close-period", "-p", str(EXAMPLE), "--period", "2026-11", "--db", url)
    assert code == 3 and "no_database: " in err and "no rating schema" in err
    events = write_demo_events(tmp_path / "e.jsonl", 20)
    code, _, err = invoke("rate", str(events), "-p", str(EXAMPLE), "--db", url)
    assert code == 0, err
    assert invoke("close-period", "-p", str(EXAMPLE), "--period", "2026-11", "--db", url)[0] == 0


def test_document_file_names_are_one_file_whatever_the_id() -> None:
    assert file_name("statement-a/b-2026-11") == "statement-a%2Fb-2026-11"
    assert file_name("..") == "%2E."
    assert file_name("Załóż-東京") == "Załóż-東京"
    assert file_name("a\\b%c") == "a%5Cb%25c"
    assert file_name("a/b") != file_name("a%2Fb") or file_name("a%2Fb") == "a%252Fb"
    long = file_name("x" * 300)
    assert len(long.encode()) <= 200 and long != file_name("x" * 301)


def test_statement_html_of_a_customer_id_with_a_slash(tmp_path: Path) -> None:
    book = SIMPLE_PRICEBOOK.replace("  acme: {plan: basic}", '  acme: {plan: basic}\n  "team/a": {plan: basic}')
    (tmp_path / "book.yaml").write_text(book)
    (tmp_path / "e.jsonl").write_text(json.dumps(json.loads(EVENT) | {"customer": "team/a"}) + "\n")
    db = str(tmp_path / "r.db")
    assert invoke("rate", str(tmp_path / "e.jsonl"), "-p", str(tmp_path / "book.yaml"), "--db", db)[0] == 0
    code, _, err = invoke("statement", "show", "-p", str(tmp_path / "book.yaml"), "--db", db, "--period", "2026-11",
                          "--customer", "team/a", "--html", str(tmp_path / "docs"))  # fmt: skip
    assert code == 0, err
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["statement-team%2Fa-2026-11.html"]
