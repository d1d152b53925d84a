"""Conventions every command follows: $RATING_DB and $RATING_PRICEBOOK (flags win), ``-o`` as the output format,
subcommands, ``-`` for standard input wherever events are read, progress with a rate and the time left."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest

from rating.cli import build_parser, main
from rating.cli.common import NOT_FROM_ENVIRONMENT, PRICEBOOK_VARIABLE, Progress, pricebooks_from_environment
from rating.registry import Registry
from tests.helpers import SIMPLE_PRICEBOOK

Run = tuple[int, str, str]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RATING_DB", raising=False)
    monkeypatch.delenv("RATING_PRICEBOOK", raising=False)

    def invoke(*argv: str) -> Run:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def pricebook(tmp_path: Path) -> Path:
    path = tmp_path / "book.yaml"
    path.write_text(SIMPLE_PRICEBOOK)
    return path


def call(id: str, timestamp: str = "2026-11-05T12:00:00Z", tokens: int = 100) -> str:
    properties = {"tokens": tokens, "model": "m"}
    return json.dumps(
        {"id": id, "customer": "acme", "type": "api.call", "timestamp": timestamp, "properties": properties}
    )


def events_file(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def posted(db: Path, *ids: str) -> dict[str, object]:
    """The rated events ``ids`` stored in ``db`` (none if it does not exist)."""
    if not db.exists():
        return {}
    with Registry.load().open_storage(str(db), read_only=True) as storage:
        return dict(storage.rated_events(list(ids)))


# --- $RATING_DB and $RATING_PRICEBOOK -------------------------------------------------------------------------------


def test_the_environment_names_the_database_and_the_pricebook(
    run, pricebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    events = events_file(tmp_path / "events.jsonl", call("e1"), call("e2"))
    monkeypatch.setenv("RATING_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("RATING_PRICEBOOK", str(pricebook))
    code, out, err = run("rate", str(events))
    assert code == 0, err
    assert f"storage: sqlite:///{tmp_path / 'env.db'}" in err
    assert sorted(posted(tmp_path / "env.db", "e1", "e2")) == ["e1", "e2"]
    assert not (tmp_path / "rating.db").exists()
    code, out, err = run("balance", "-o", "json")  # a reader of the same ledger, with no flag either
    assert code == 0, err
    assert {"account": "customer:acme:receivable", "asset": "USD", "balance": "0.220"} in json.loads(out)


def test_flags_win_over_the_environment(run, pricebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    events = events_file(tmp_path / "events.jsonl", call("e1"))
    monkeypatch.setenv("RATING_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("RATING_PRICEBOOK", str(tmp_path / "no-such-pricebook.yaml"))
    code, _, err = run("rate", str(events), "--db", str(tmp_path / "flag.db"), "-p", str(pricebook))
    assert code == 0, err
    assert list(posted(tmp_path / "flag.db", "e1")) == ["e1"]
    assert not (tmp_path / "env.db").exists()


def test_rating_pricebook_holds_several_paths_separated_by_pathsep(
    run, pricebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    december = tmp_path / "book-2026-12.yaml"
    december.write_text(
        SIMPLE_PRICEBOOK.replace("version: 2026-11-01", "version: 2026-12-01").replace('"0.01"', '"0.05"')
    )
    monkeypatch.setenv("RATING_PRICEBOOK", f"{pricebook}{os.pathsep}{os.pathsep}{december}")  # an empty part is none
    args = build_parser().parse_args(["rate", "events.jsonl"])
    pricebooks_from_environment(args)
    assert args.pricebook == [str(pricebook), str(december)]
    code, out, err = run("quote", "-o", "json", call("nov", "2026-11-30T12:00:00Z", tokens=0))
    assert code == 0, err
    assert [row["amount"] for row in json.loads(out) if row["meter"] == "requests"] == ["0.01"]
    code, out, err = run("quote", "-o", "json", call("dec", "2026-12-01T12:00:00Z", tokens=0))
    assert code == 0, err
    assert [row["amount"] for row in json.loads(out) if row["meter"] == "requests"] == ["0.05"]  # the second file


def test_without_flag_or_variable_a_pricebook_is_still_required(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("rate", "events.jsonl")
    assert (code, out) == (2, "")
    assert "the following arguments are required: --pricebook/-p" in err
    code, out, _ = run("rate", "--help")
    assert code == 0 and "$RATING_PRICEBOOK" in out and "$RATING_DB" in out


def test_a_bad_rating_db_is_a_usage_error(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RATING_DB", str(tmp_path))  # a directory
    code, out, err = run("balance")
    assert (code, out) == (2, "")
    assert err.strip().endswith(
        f"argument --db: {tmp_path}: is a directory, not a database file (see rating balance --help)"
    )


def test_demo_and_optional_flags_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATING_DB", "env.db")
    monkeypatch.setenv("RATING_PRICEBOOK", "env.yaml")

    def parsed(*argv: str) -> argparse.Namespace:
        args = build_parser().parse_args(argv)
        pricebooks_from_environment(args)
        return args

    demo = parsed("demo")
    assert (demo.db, demo.pricebook) == ("rating-demo.db", None)  # a demo never writes into the named ledger
    assert parsed("check", "book.yaml").db is None  # check --db adds a check only when asked
    assert parsed("balance").pricebook is None  # balance -p adds values only when asked
    baseline = parsed(
        "simulate", "--baseline", "ledger", "--vs", "new.yaml", "--from", "2026-11-01", "--to", "2026-12-01"
    )
    assert (baseline.db, baseline.pricebook) == ("env.db", None)  # the ledger is the baseline: no pricebook
    assert parsed("simulate", "events.jsonl").pricebook == ["env.yaml"]
    invoice = parsed("invoice", "issue", "--period", "2026-11", "--billing", "billing.yaml")
    assert (invoice.db, invoice.pricebook) == ("env.db", ["env.yaml"])
    assert parsed("invoice", "--db", "flag.db", "list").db == "flag.db"  # a group flag before the action still wins
    assert parsed("customer", "list").pricebook == ["env.yaml"]
    assert parsed("db", "migrate").db == "env.db"


def test_every_command_taking_a_pricebook_or_a_database_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATING_PRICEBOOK", "env.yaml")
    monkeypatch.setenv("RATING_DB", "env.db")
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    def parsers(name: str, command: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
        found = [(name, command)]
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    found += parsers(f"{name} {sub_name}", sub)
        return found

    taking_pricebook, taking_db = set(), set()
    for name, command in commands.choices.items():
        for path, sub in parsers(name, command):
            for action in sub._actions:
                if action.dest == "pricebook" and name not in NOT_FROM_ENVIRONMENT[PRICEBOOK_VARIABLE]:
                    taking_pricebook.add(name)
                    assert not action.required, path
                if action.dest == "db" and name not in NOT_FROM_ENVIRONMENT["RATING_DB"]:
                    taking_db.add(name)
                    assert action.default in ("env.db", argparse.SUPPRESS), path
    assert {"rate", "quote", "close-period", "rerate", "serve", "statement", "invoice", "customer"} <= taking_pricebook
    assert {"rate", "balance", "verify", "serve", "invoice", "statement", "apikey", "webhooks", "db"} <= taking_db


# --- -o is the output format ------------------------------------------------------------------------------------------


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand of ``rating``, named as typed (``invoice issue``)."""

    def walk(name: str, parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
        found = [(name, parser)] if name else []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    found += walk(f"{name} {sub_name}".strip(), sub)
        return found

    return walk("", build_parser())


def test_dash_o_is_the_output_format_in_every_command() -> None:
    with_o = []
    for name, parser in all_parsers():
        for action in parser._actions:
            if "-o" in action.option_strings and name != "import":
                with_o.append(name)
                assert action.dest == "output" and set(action.choices or ()) <= {"table", "json", "csv"}, name
    assert {"rate", "quote", "balance", "invoice list", "statement show", "customer list"} <= set(with_o)


def test_import_writes_to_out_and_dash_o_is_deprecated(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from rating.cli import imports

    written: list[str] = []

    class Imported:
        models = ["m"]
        skipped: list[str] = []

        def write(self, path: str, source: str) -> None:
            written.append(path)

    monkeypatch.setattr("rating.imports.genai_prices.import_genai_prices", lambda providers, models: Imported())
    code, out, err = run("import", "genai-prices", "--provider", "anthropic", "--out", "new.yaml")
    assert (code, written, err) == (0, ["new.yaml"], "wrote 1 models to new.yaml\n")
    for flag in ("-o", "--output"):
        code, out, err = run("import", "genai-prices", "--provider", "anthropic", flag, "old.yaml")
        assert (code, written[-1]) == (0, "old.yaml")
        assert err.splitlines()[0] == imports.DEPRECATED_OUTPUT
    assert imports.DEPRECATED_OUTPUT == (
        "rating: warning: rating import -o/--output FILE is deprecated and goes in the next release:"
        " use --out FILE (-o is the output format in every other command)"
    )
    code, out, err = run("import", "genai-prices", "--provider", "anthropic")
    assert code == 2 and "one of the arguments --out is required" in err
    code, out, err = run("import", "genai-prices", "--provider", "anthropic", "--out", "a.yaml", "-o", "b.yaml")
    assert code == 2 and "not allowed with argument --out" in err


# --- subcommands ------------------------------------------------------------------------------------------------------


def test_every_multi_action_command_uses_subcommands() -> None:
    """No command takes its action as a positional choice; the one positional choice left is import's SOURCE."""
    for name, parser in all_parsers():
        for action in parser._actions:
            if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
                assert (name, action.dest) == ("import", "source"), name
    groups = {name for name, parser in all_parsers() if parser._subparsers is not None}
    assert {"invoice", "statement", "wallet", "request", "customer", "apikey", "webhooks", "db"} <= groups


def test_db_migrate_takes_its_flags_before_or_after_the_action(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "migrate", "--db", "after.db")[:2] == (0, "sqlite:///after.db: schema version 14\n")
    assert run("db", "--db", "before.db", "migrate")[0] == 0
    assert (tmp_path / "after.db").exists() and (tmp_path / "before.db").exists()
    code, _, err = run("db")
    assert code == 2 and "required: ACTION" in err


# --- standard input ---------------------------------------------------------------------------------------------------


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Give the command ``text`` on standard input."""

    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))

    return feed


def test_quote_reads_json_lines_from_standard_input(run, stdin, pricebook: Path) -> None:  # type: ignore[no-untyped-def]
    stdin(call("a", tokens=0) + "\nnot json\n" + call("b", tokens=0) + "\n")
    code, out, err = run("quote", "-", "-p", str(pricebook), "-o", "json")
    assert code == 1
    assert [(row["event"], row["amount"]) for row in json.loads(out) if row["meter"] == "requests"] == [
        ("a", "0.01"),
        ("b", "0.01"),
    ]
    assert err.startswith("<stdin>:2: ")


def test_rate_strict_reads_standard_input(run, stdin, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stdin(call("a") + "\n" + call("b") + "\n")
    code, _, err = run("rate", "-", "--strict", "-p", str(pricebook), "--db", "in.db")
    assert code == 0, err
    assert sorted(posted(tmp_path / "in.db", "a", "b")) == ["a", "b"]


def test_simulate_reads_standard_input(run, stdin, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dearer = tmp_path / "dearer.yaml"
    dearer.write_text(SIMPLE_PRICEBOOK.replace('"0.01"', '"0.02"'))
    lines = call("a", tokens=0) + "\n" + call("b", tokens=0) + "\n"
    stdin(lines)
    code, out, err = run("simulate", "-", "-p", str(pricebook), "--vs", str(dearer), "-o", "json")
    from_stdin = json.loads(out)
    assert code == 0, err
    assert from_stdin["revenue"] == {"book": {"USD": "0.02"}, "dearer": {"USD": "0.04"}}
    events = events_file(tmp_path / "events.jsonl", call("a", tokens=0), call("b", tokens=0))
    code, out, err = run("simulate", str(events), "-p", str(pricebook), "--vs", str(dearer), "-o", "json")
    assert json.loads(out) == from_stdin  # the same as from the file


def test_diff_events_reads_standard_input(run, stdin, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    after = tmp_path / "after.yaml"
    after.write_text(SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "0.02"'))
    stdin(call("e1", tokens=10) + "\n")
    code, out, err = run("diff", str(pricebook), str(after), "--events", "-", "-o", "csv")
    assert code == 0, err
    assert "after vs before: 0.010 USD (+50.00%)" in err


def test_to_parquet_reads_standard_input(run, stdin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stdin(call("a") + "\n" + call("b") + "\n")
    code, out, err = run("to-parquet", "-", "events.parquet")
    assert (code, out) == (0, "2 events written to events.parquet\n"), err
    assert (tmp_path / "events.parquet").stat().st_size > 0


def test_request_authorize_reads_its_event_from_standard_input(run, stdin, pricebook: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "migrate", "--db", "r.db")[0] == 0
    stdin(call("r1", tokens=0) + "\n")
    code, out, err = run("request", "authorize", "-", "-p", str(pricebook), "--db", "r.db")
    assert (code, err) == (3, "rating: error: customer 'acme' has 0 USD available, 0.01 USD needed\n")  # priced
    stdin(call("r1") + "\n" + call("r2") + "\n")
    code, out, err = run("request", "authorize", "-", "-p", str(pricebook), "--db", "r.db")
    assert (code, err) == (3, "rating: error: -: a metered request is one event, found 2 records\n")


# --- progress ---------------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_shows_the_rate_and_the_time_left() -> None:
    clock = Clock()
    progress = Progress(1_000_000, clock=clock)
    clock.now += 3
    assert progress.line(120_000) == (
        "rating [###...........................] 120,000/1,000,000 events  40,000 events/s  0:22 left"
    )
    clock.now += 3597 + 3600
    assert progress.line(600_000).endswith("83 events/s  1:20:00 left")
    clock.now = 100 + 12_000
    assert progress.line(1_000_000).endswith("1,000,000/1,000,000 events  83 events/s  done in 3:20:00")
    clock.now += 10
    assert progress.line(20_000).endswith("20,000/1,000,000 events")  # a new pass: its clock starts again
    clock.now += 4
    assert progress.line(40_000).endswith("40,000/1,000,000 events  10,000 events/s  1:36 left")


def test_progress_without_a_total_shows_the_rate() -> None:
    clock = Clock()
    progress = Progress(None, clock=clock)
    assert progress.line(0) == "rating 0 events"
    clock.now += 4
    assert progress.line(10_000) == "rating 10,000 events  2,500 events/s"
    slow = Progress(3, "pricebooks", clock=clock)
    clock.now += 5
    assert slow.line(1) == "rating [##########....................] 1/3 pricebooks  0.2 pricebooks/s  0:10 left"


def test_progress_is_drawn_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    clock = Clock()
    terminal = Terminal(True)
    monkeypatch.setattr("sys.stderr", terminal)
    progress = Progress(20_000, clock=clock)
    clock.now += 1
    progress(10_000)
    clock.now += 1
    progress(20_000)
    assert terminal.getvalue() == (
        "\rrating [###############...............] 10,000/20,000 events  10,000 events/s  0:01 left"
        "\rrating [##############################] 20,000/20,000 events  10,000 events/s  done in 0:02\n"
    )
    piped = Terminal(False)
    monkeypatch.setattr("sys.stderr", piped)
    Progress(10)(10)
    assert piped.getvalue() == ""
