"""Conventions every command follows: $RATING_DB and $RATING_PRICEBOOK (flags win), ``-o`` as the output format,
subcommands, ``-`` for standard input wherever events are read, progress with a rate and the time left."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from rating.cli import build_parser, main
from rating.cli.common import NOT_FROM_ENVIRONMENT, PRICEBOOK_VARIABLE, pricebooks_from_environment
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
