"""The command line's layout: one module per command group, the help order kept, ``invoice`` and ``statement``
as subcommand groups taking the argv the single commands took, and the helpers moved into the library."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import HELP_ORDER, build_parser, main
from rating.storage.memory import MemoryStorage
from rating.wallet.balances import CustomerBalance, customer_balances
from rating.wallet.wallets import Wallets
from tests.helpers import EXAMPLE


def invoke(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_every_command_is_listed_in_its_usual_place() -> None:
    code, out, _ = invoke("--help")
    places = [re.search(rf"\n    {re.escape(name)}\s", out) for name in HELP_ORDER]
    assert code == 0 and all(places)
    starts = [place.start() for place in places if place]
    assert starts == sorted(starts)
    commands = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert list(commands.choices) == list(HELP_ORDER)  # a new command must take its place in HELP_ORDER
    code, _, err = invoke("nosuch")
    assert code == 2 and "(choose from 'check', 'schema', 'quote'" in err and err.index("'db'") < err.index("'demo'")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("groups")
    db = root / "demo.db"
    code, _, _ = invoke("demo", "--events", "60", "--db", str(db), "--events-file", str(root / "events.jsonl"))
    assert code == 0
    return db


def test_invoice_and_statement_take_their_flags_before_the_action_or_after_it(demo_db: Path) -> None:
    db = str(demo_db)
    after = invoke("invoice", "list", "--db", db, "--output", "json")
    before = invoke("invoice", "--db", db, "--output", "json", "list")
    assert after[0] == before[0] == 0 and after[1] == before[1]
    show = ["--period", "2026-11", "-p", str(EXAMPLE), "--db", db, "-o", "json"]
    after = invoke("statement", "show", *show)
    before = invoke("statement", *show, "show")
    split = invoke("statement", *show[:2], "show", *show[2:])
    assert after[0] == before[0] == split[0] == 0 and after[1] == before[1] == split[1] and after[1].startswith("[")
    assert invoke("invoice", "--db", str(demo_db.with_name("missing.db")), "list")[2].endswith(
        "no_database: " + str(demo_db.with_name("missing.db")) + ": no such database\n"
    )


@pytest.mark.parametrize("argv", [["statement", "show"], ["statement", "export", "-p", "x.yaml"]])
def test_a_statement_without_its_required_flags_is_a_usage_error(argv: list[str]) -> None:
    code, out, err = invoke(*argv)
    assert code == 2 and not out and err.startswith("rating statement: error: the following arguments are required:")
    assert "--period" in err and ("--pricebook/-p" in err) == ("-p" not in argv)


def test_each_invoice_action_has_its_own_help() -> None:
    for action in ("issue", "list", "show", "pay", "credit"):
        code, out, _ = invoke("invoice", action, "--help")
        assert code == 0 and out.startswith(f"usage: rating invoice {action} ") and "--reference" in out


def test_the_old_import_paths_still_work_for_one_release() -> None:
    import importlib

    import rating.cli
    import rating.cli.args

    # one module: a monkeypatch of either reaches both
    assert importlib.import_module("rating.cliargs") is rating.cli.args
    assert rating.cli.simulation_summary.__module__ == "rating.simulate.summary"
    assert callable(rating.cli.customer_balances) and callable(rating.cli.file_name)


def test_a_customers_balances_are_typed_per_asset_in_the_library() -> None:
    storage = MemoryStorage()
    wallets = Wallets(storage)
    wallets.deposit("acme", "USD", Decimal("10"), "top-up-1")
    wallets.reserve("acme", "USD", Decimal("4"), "hold-1", dt.timedelta(minutes=5))
    assert customer_balances(storage, "acme") == [
        CustomerBalance(
            asset="USD", available=Decimal("6"), reserved=Decimal("4"), posted=Decimal("10"), owed=Decimal(0)
        )
    ]
    assert customer_balances(storage, "nobody") == []
