"""``rating customer add|show|list|subscribe``: customers as data in --db, seen by rate and the commands after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rating.cli import main
from tests.test_customers import PRICEBOOK

Run = tuple[int, str, str]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(PRICEBOOK)

    def invoke(*argv: str) -> Run:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    assert main(["db", "migrate", "--db", "rating.db"]) == 0
    capsys.readouterr()
    return invoke


def call(id: str, customer: str, day: str) -> str:
    return json.dumps(
        {"id": id, "customer": customer, "type": "api.call", "timestamp": f"{day}T12:00:00Z", "properties": {}}
    )


def rate(run, tmp_path: Path, *lines: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Rate ``lines`` with the CLI into ``rating.db``; what each customer was charged."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    code, out, err = run("rate", str(events), "-p", "book.yaml", "--future-tolerance", "none", "-o", "json")
    assert code == 0, err
    return json.loads(out)["totals"]


def test_a_customer_added_by_the_cli_is_rated_by_its_plan(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("customer", "add", "globex", "--plan", "pro", "-p", "book.yaml", "-o", "json")
    assert code == 0, err
    assert json.loads(out)[0]["version"] == 1 and json.loads(json.loads(out)[0]["spec"]) == {"plan": "pro"}
    charges = rate(run, tmp_path, call("e1", "globex", "2026-11-05"))
    assert [(c["customer"], c["charged"]) for c in charges] == [("globex", "0.50")]
    code, out, _ = run("customer", "list", "-p", "book.yaml", "-o", "json")
    assert code == 0
    assert [(r["customer"], r["plan"], r["source"]) for r in json.loads(out)] == [
        ("acme", "basic", "pricebook"),
        ("globex", "pro", "database"),
    ]


def test_subscribe_moves_a_seeded_customer_to_a_plan_from_a_date(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("customer", "subscribe", "acme", "pro", "--from", "2030-01-10", "-p", "book.yaml")
    assert code == 0, err
    charges = rate(run, tmp_path, call("e1", "acme", "2030-01-09"), call("e2", "acme", "2030-01-10"))
    assert [(c["events"], c["charged"]) for c in charges] == [(2, "0.51")]  # one at 0.01, the other at 0.50
    code, out, _ = run("customer", "show", "acme", "-p", "book.yaml", "-o", "json")
    assert code == 0 and json.loads(json.loads(out)[0]["spec"])["changes"] == [{"on": "2030-01-10", "plan": "pro"}]


def test_refusals_exit_3_with_one_line_and_bad_flags_exit_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("customer", "add", "globex", "--plan", "gold", "-p", "book.yaml")
    assert code == 3 and err.strip().splitlines() == [
        "rating: error: invalid_customer: customers.globex.plan: unknown plan 'gold'; plans: basic, pro"
    ]
    rate(run, tmp_path, call("e1", "acme", "2030-01-20"))
    code, _, err = run("customer", "subscribe", "acme", "pro", "--from", "2030-01-10", "-p", "book.yaml")
    assert code == 3 and "before_rated_usage" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("customer", "subscribe", "acme", "pro", "--from", "2030-13-10", "-p", "book.yaml")
    assert code == 2 and "is not a date" in err
    code, _, err = run("customer", "show", "nobody", "-p", "book.yaml")
    assert code == 2 and "no customer 'nobody'" in err


def test_rerate_sees_the_customers_of_the_database(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("customer", "add", "globex", "--plan", "pro", "-p", "book.yaml")[0] == 0
    rate(run, tmp_path, call("e1", "globex", "2026-11-05"))
    code, out, err = run("rerate", "--from", "2026-11-01", "--to", "2026-12-01", "-p", "book.yaml", "-o", "json")
    # Priced again by its stored plan: nothing to correct (by the pricebook alone, globex is an unknown customer).
    assert code == 0, err
    document = json.loads(out)
    assert document["corrections"] == [] and "unknown_customer" not in out


def test_check_with_a_database_names_the_stored_customers_the_pricebook_cannot_rate(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    from tests.test_customers import WITHOUT_PRO

    assert run("customer", "add", "globex", "--plan", "pro", "-p", "book.yaml")[0] == 0
    assert run("customer", "add", "initech", "--plan", "basic", "-p", "book.yaml")[0] == 0
    code, out, _ = run("check", "book.yaml", "--db", "rating.db")
    assert code == 0 and "book.yaml: 2 of 2 stored customers rated by it" in out
    (tmp_path / "smaller.yaml").write_text(WITHOUT_PRO)
    code, out, err = run("check", "smaller.yaml", "--db", "rating.db")
    assert code == 1 and "1 of 2 stored customers" in out
    assert err.splitlines() == ["smaller.yaml: customers.globex (stored, version 1): unknown plan 'pro'; plans: basic"]
