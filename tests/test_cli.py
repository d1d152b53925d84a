"""The command line, as a user runs it: exit codes, one-line errors, outputs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.cli.demo import demo_events
from rating.registry import Registry
from rating.wallet.wallets import Wallets
from tests.helpers import EXAMPLE, SIMPLE_PRICEBOOK

Run = tuple[int, str, str]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)

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


def write_events(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def call(id: str, tokens: object = 100, customer: str = "acme") -> str:
    return json.dumps(
        {
            "id": id,
            "customer": customer,
            "type": "api.call",
            "timestamp": "2026-11-05T12:00:00Z",
            "properties": {"tokens": tokens, "model": "m"},
        }
    )


def test_check_summarises_a_valid_pricebook(run, pricebook: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("check", str(pricebook), str(EXAMPLE))
    assert code == 0 and err == ""
    assert (
        f"{pricebook}: ok: pricebook test version 2026-11-01, USD, 2 meters, 1 plans, 1 customers, 0 contracts" in out
    )
    assert "plan basic: requests:per_call, tokens:tiered" in out


def test_check_points_at_the_broken_line_and_column(run, pricebook: Path) -> None:  # type: ignore[no-untyped-def]
    pricebook.write_text(SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "1,5"'))
    code, out, err = run("check", str(pricebook))
    assert code == 1 and out == ""
    assert err == f"{pricebook}:10:44: plans.basic.charges[0].price: value must be a decimal number, got '1,5'\n"


def test_schema_is_json_with_every_model(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0 and {"PerCall", "PerUnit", "Tiered", "Package"} <= set(schema["$defs"])


def test_rate_posts_reports_rejects_and_exits_one(run, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = write_events(tmp_path / "e.jsonl", [call("e1"), "{broken", call("e2", tokens=-3), call("e3", 900)])
    code, out, err = run("rate", str(events), "-p", str(pricebook), "--output", "csv")
    assert code == 1
    assert list(csv.DictReader(io.StringIO(out))) == [
        {"customer": "acme", "events": "2", "asset": "USD", "charged": "1.020"}
    ]
    rejected = list(csv.DictReader(io.StringIO(err.split("posted ")[0])))
    assert [(r["location"], r["code"]) for r in rejected] == [
        (f"{events}:2", "invalid_record"),
        (f"{events}:3", "invalid_quantity"),
    ]
    assert rejected[1]["reason"] == "tokens must not be negative, got -3"
    assert "posted 2 events, 0 already posted, 2 rejected" in err
    code, out, err = run("balance", "acme", "--output", "json")
    assert code == 0
    assert json.loads(out) == [{"asset": "USD", "available": "0", "reserved": "0", "posted": "0", "owed": "1.020"}]


def test_rate_twice_posts_nothing_new(run, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = write_events(tmp_path / "e.jsonl", [call("e1"), call("e2")])
    assert run("rate", str(events), "-p", str(pricebook))[0] == 0
    code, _, err = run("rate", str(events), "-p", str(pricebook))
    assert code == 0 and "posted 0 events, 2 already posted, 0 rejected" in err


def test_strict_rate_posts_nothing_on_one_bad_record(run, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = write_events(tmp_path / "e.jsonl", [call("e1"), call("e2", customer="ghost")])
    code, _, err = run("rate", str(events), "-p", str(pricebook), "--strict")
    assert code == 3 and "strict: nothing posted" in err  # exit codes: 3, nothing done
    code, _, err = run("balance", "acme")
    assert code == 3 and err.startswith("rating: error: no postings for customer 'acme'")


def test_quote_shows_the_explanation_and_writes_nothing(run, pricebook: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("quote", call("q1", 1200), "-p", str(pricebook), "--output", "json")
    rows = json.loads(out)
    assert code == 0 and err == ""
    assert rows[1]["explanation"] == "1,000 tokens x 0.001 USD (tier 1) + 200 tokens x 0.0005 USD (tier 2) = 1.1000 USD"
    assert rows[0]["unit_price"] == "0.01" and rows[1]["unit_price"] is None
    assert run("balance")[1].splitlines()[2:] == []


def test_bad_input_is_one_line_never_a_traceback(run, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("rate", str(tmp_path / "missing.jsonl"), "-p", str(pricebook))
    assert code == 3 and err == f"rating: error: {tmp_path / 'missing.jsonl'}: no such events file\n"
    code, _, err = run("quote", "{nope", "-p", str(pricebook))
    assert code == 3 and err.startswith("argument: invalid JSON") and err.count("\n") == 1  # every record refused
    code, _, err = run("balance", "--db", "redis://x")
    assert code == 3 and err.startswith("rating: error: no storage adapter for 'redis'")
    code, _, err = run("rate", "x.jsonl", "-p", str(tmp_path / "nope.yaml"))
    assert code == 3 and "cannot read pricebook" in err and "Traceback" not in err


def test_demo_rates_the_example_and_is_repeatable(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("demo", "--events", "300")
    assert code == 0, err
    first = out
    assert "acme-labs" in out and "posted 300 events" in err
    assert (tmp_path / "rating-demo.db").exists() and (tmp_path / "demo-events.jsonl").exists()
    code, out, err = run("demo", "--events", "300")
    assert code == 0 and out == first and "posted 0 events, 300 already posted" in err


def test_demo_events_are_reproducible() -> None:
    assert list(demo_events(5)) == list(demo_events(5))
    assert list(demo_events(5, seed=1)) != list(demo_events(5, seed=2))


def test_python_dash_m_rating_works() -> None:
    result = subprocess.run([sys.executable, "-m", "rating", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "demo" in result.stdout


def test_close_period_posts_once(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_subscriptions import SUBSCRIPTIONS

    book = tmp_path / "subs.yaml"
    book.write_text(SUBSCRIPTIONS)
    assert run("db", "migrate")[0] == 0  # only rate, demo and db migrate create a database
    code, out, err = run("close-period", "--period", "2026-11", "-p", str(book), "-o", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["transaction"] for r in rows] == ["fee:acme:2026-11:0", "fee:acme:2026-11:1", "fee:tokyo:2026-11:0"]
    assert "closed 2026-11 for 2 customers; posted 5 transactions" in err
    code, out, err = run("close-period", "--period", "2026-11", "-p", str(book))
    assert code == 0 and "posted 0 transactions" in err
    code, _, err = run("close-period", "--period", "nov", "-p", str(book))
    assert code == 2 and err == (
        "rating close-period: error: argument --period: 'nov' is not a period: use 2026-11-23, 2026-W47, 2026-11"
        " or 2026 (see rating close-period --help)\n"
    )


def test_balance_values_credits_in_the_pricebook_currency(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import EXAMPLE

    events = write_events(
        tmp_path / "e.jsonl",
        [json.dumps({"id": "c1", "customer": "initech", "type": "llm.request", "timestamp": "2026-11-05T12:00:00Z",
                     "properties": {"provider": "openai", "model": "gpt-5", "input_tokens": 10, "output_tokens": 5}})],
    )  # fmt: skip
    assert run("rate", str(events), "-p", str(EXAMPLE))[0] == 0
    code, out, _ = run("balance", "initech", "-p", str(EXAMPLE), "-o", "json")
    assert code == 0
    assert json.loads(out) == [
        {"asset": "CREDITS", "available": "0", "reserved": "0", "posted": "0", "owed": "10", "value_USD": "0.10"}
    ]


def test_usage_per_agent(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_examples import MARKETPLACE

    lines = [
        json.dumps({"id": f"x{i}", "customer": "walk-in", "type": "agent.execution",
                    "timestamp": f"2026-11-{10 + i}T08:00:00Z", "attribution": {"agent": agent},
                    "properties": {"inference_calls": 3}})
        for i, agent in enumerate(["agt_a", "agt_a", "agt_b"])
    ]  # fmt: skip
    events = write_events(tmp_path / "runs.jsonl", lines)
    assert run("rate", str(events), "-p", str(MARKETPLACE))[0] == 0
    code, out, err = run("usage", "--period", "30d", "--until", "2026-11-30T00:00:00Z", "-p", str(MARKETPLACE),
                         "-o", "csv")  # fmt: skip
    assert code == 0, err
    assert list(csv.DictReader(io.StringIO(out))) == [
        {"agent": "agt_a", "events": "2", "compute_units": "12", "executions": "2", "cost_USD": "0.30"},
        {"agent": "agt_b", "events": "1", "compute_units": "6", "executions": "1", "cost_USD": "0.15"},
    ]
    code, _, err = run("usage", "--until", "2026-11-30", "-p", str(MARKETPLACE))
    assert code == 2 and "needs a time zone" in err


def test_balance_of_a_customer_shows_the_wallet(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from rating.storage.sqlite import SQLiteStorage

    with SQLiteStorage(tmp_path / "rating.db") as storage:
        wallets = Wallets(storage)
        wallets.deposit("acme", "USD", Decimal("145.50"), "pay-1")
        wallets.reserve("acme", "USD", Decimal("3.00"), "run-1", timeout=dt.timedelta(minutes=5))
    code, out, _ = run("balance", "acme", "-o", "csv")
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == [
        {"asset": "USD", "available": "142.50", "reserved": "3.00", "posted": "145.50", "owed": "0"}
    ]


def test_rate_help_says_the_future_tolerance_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "e.g. 90s, 2h, 1d (default 5m); none accepts any time" in out


def test_rate_json_lists_rejections_with_their_codes(run, pricebook: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = write_events(tmp_path / "e.jsonl", [call("e1"), call("e2", tokens=-3)])
    code, out, _ = run("rate", str(events), "-p", str(pricebook), "-o", "json")
    document = json.loads(out)
    assert code == 1 and document["posted"] == 1 and document["already_posted"] == 0
    assert document["rejected"] == [
        {"location": f"{events}:2", "code": "invalid_quantity", "reason": "tokens must not be negative, got -3"}
    ]
    assert document["totals"] == [{"customer": "acme", "events": 1, "asset": "USD", "charged": "0.110"}]


def rate_from_stdin(pricebook: Path, db: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rating", "rate", "-", "-p", str(pricebook), "--db", str(db), *extra]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_rate_dash_posts_records_from_standard_input_as_they_arrive(pricebook: Path, tmp_path: Path) -> None:
    from rating.errors import StorageError

    db = tmp_path / "live.db"
    process = rate_from_stdin(pricebook, db)
    assert process.stdin is not None
    try:
        process.stdin.write((call("e1") + "\n" + call("e2") + "\n").encode())
        process.stdin.flush()
        posted: dict[str, object] = {}
        deadline = time.monotonic() + 30
        while len(posted) < 2 and time.monotonic() < deadline:  # the pipe stays open: a pause posts what came
            time.sleep(0.1)
            try:
                with Registry.load().open_storage(str(db), read_only=True) as storage:
                    posted = dict(storage.rated_events(["e1", "e2"]))
            except StorageError:  # not created, or not migrated yet: the writer is still starting
                continue
        assert sorted(posted) == ["e1", "e2"] and process.poll() is None
        process.stdin.write((call("e3") + "\nnot json\n").encode())
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1  # one record rejected
    assert "posted 3 events, 0 already posted, 1 rejected" in err.decode()


def test_strict_rate_from_standard_input_posts_all_or_nothing(pricebook: Path, tmp_path: Path) -> None:
    db = tmp_path / "strict.db"
    lines = (call("e1") + "\n" + call("e2", customer="bad:id") + "\n").encode()
    _, err = rate_from_stdin(pricebook, db, "--strict").communicate(lines, timeout=60)
    assert "strict: nothing posted" in err.decode()
    _, err = rate_from_stdin(pricebook, db, "--strict").communicate(call("e1").encode() + b"\n", timeout=60)
    assert "posted 1 events, 0 already posted, 0 rejected" in err.decode()


REQUEST_BOOK = """\
pricebook: gateway
version: 2026-11-01
currency: USD
assets:
  CREDITS: {scale: 4, sells_for: {USD: "0.01"}}
meters:
  requests: {event: api.call, count: true}
  tokens: {event: api.call, sum: tokens, group_by: [model]}
plans:
  metered:
    charges:
      - {meter: requests, model: per_call, price: "0.01"}
      - {meter: tokens, model: per_unit, unit_price: "0.001"}
  mixed:
    charges:
      - {meter: requests, model: per_call, price: "0.01"}
      - {meter: tokens, model: per_unit, unit_price: "0.1", asset: CREDITS}
customers:
  acme: {plan: metered, billing: wallet}
  initech: {plan: mixed, billing: wallet}
default_plan: metered
"""


def request(id: str, tokens: int, customer: str = "acme") -> str:
    body = {"id": id, "customer": customer, "type": "api.call", "timestamp": "2026-11-20T10:00:00Z"}
    return json.dumps({**body, "properties": {"tokens": tokens, "model": "m"}})


@pytest.fixture
def funded(tmp_path: Path) -> tuple[Path, Path]:
    """A pricebook and a database where acme has 2.00 USD in its wallet."""
    book, db = tmp_path / "gateway.yaml", tmp_path / "r.db"
    book.write_text(REQUEST_BOOK)
    with Registry.load().open_storage(str(db)) as storage:
        Wallets(storage).deposit("acme", "USD", Decimal("2.00"), "pay-1")
    return book, db


def wallet_of(run, db: Path, customer: str = "acme") -> dict[str, str]:  # type: ignore[no-untyped-def]
    code, out, _ = run("balance", customer, "--db", str(db), "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    return {key: row[key] for key in ("available", "reserved", "posted")}


def test_request_holds_the_estimate_then_pays_what_ran_from_the_hold_once(run, funded) -> None:  # type: ignore[no-untyped-def]
    book, db = funded
    code, out, _ = run("request", "authorize", request("q1", 1_000), "-p", str(book), "--db", str(db), "-o", "json")
    assert code == 0
    (held,) = json.loads(out)
    assert (held["reservation"], held["customer"], held["asset"], Decimal(held["amount"])) == (
        "q1",
        "acme",
        "USD",
        Decimal("1.01"),
    )
    assert wallet_of(run, db) == {"available": "0.990", "reserved": "1.010", "posted": "2.000"}
    code, out, err = run("request", "complete", request("q1", 420), "-p", str(book), "--db", str(db), "-o", "json")
    assert code == 0, err
    assert [(c["meter"], Decimal(c["amount"])) for c in json.loads(out)] == [
        ("requests", Decimal("0.01")),
        ("tokens", Decimal("0.42")),
    ]
    assert "0.430 of 1.010 USD held paid the request, 0.580 USD released" in err
    assert wallet_of(run, db) == {"available": "1.570", "reserved": "0.000", "posted": "1.570"}
    code, _, err = run("request", "complete", request("q1", 420), "-p", str(book), "--db", str(db))
    assert code == 0 and "already rated" in err
    assert wallet_of(run, db)["available"] == "1.570"  # paid once
    code, out, _ = run("verify", "--db", str(db))
    assert code == 0 and "0 problems" in out


def test_a_retried_authorize_holds_nothing_more_and_other_terms_need_another_id(run, funded) -> None:  # type: ignore[no-untyped-def]
    book, db = funded
    first = run("request", "authorize", request("q1", 100), "-p", str(book), "--db", str(db))
    again = run("request", "authorize", request("q1", 100), "-p", str(book), "--db", str(db))
    assert first[0] == again[0] == 0 and first[1] == again[1]
    assert wallet_of(run, db)["reserved"] == "0.110"
    code, _, err = run("request", "authorize", request("q1", 200), "-p", str(book), "--db", str(db))
    assert code == 3
    assert (
        err == "rating: error: reservation q1 already holds 0.110 USD of 'acme'; 0.210 USD of 'acme' needs another id\n"
    )
    code, _, _ = run(
        "request", "authorize", request("q2", 200), "-p", str(book), "--db", str(db), "--reservation", "h2"
    )
    assert code == 0
    assert wallet_of(run, db)["reserved"] == "0.320"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (request("q1", 5_000), "rating: error: customer 'acme' has 2.00 USD available, 5.010 USD needed\n"),
        (
            request("q1", 10, customer="initech"),
            "rating: error: request q1 is priced in CREDITS, USD: a reservation holds one asset\n",
        ),
        ('{"id": "q1"}', "rating: error: argument: "),
    ],
)
def test_an_authorize_that_cannot_hold_is_refused_in_one_line_and_holds_nothing(  # type: ignore[no-untyped-def]
    run, funded, event: str, message: str
) -> None:
    book, db = funded
    code, out, err = run("request", "authorize", event, "-p", str(book), "--db", str(db))
    assert (code, out) == (3, "")
    assert err.startswith(message) and err.count("\n") == 1
    assert wallet_of(run, db) == {"available": "2.00", "reserved": "0", "posted": "2.00"}


def test_a_request_priced_at_nothing_or_a_file_of_several_events_is_not_held(run, funded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    book, db = funded
    free = book.read_text().replace('price: "0.01"', 'price: "0"').replace('"0.001"', '"0"')
    (tmp_path / "free.yaml").write_text(free)
    code, _, err = run("request", "authorize", request("q1", 10), "-p", str(tmp_path / "free.yaml"), "--db", str(db))
    assert code == 3 and "priced at 0 USD: nothing to hold" in err
    several = tmp_path / "two.jsonl"
    several.write_text(request("q1", 10) + "\n" + request("q2", 10) + "\n")
    code, _, err = run("request", "authorize", str(several), "-p", str(book), "--db", str(db))
    assert code == 3 and "a metered request is one event, found 2 records" in err
    assert wallet_of(run, db)["reserved"] == "0"


def test_void_releases_a_hold_once_and_expire_releases_holds_past_their_timeout(run, funded) -> None:  # type: ignore[no-untyped-def]
    book, db = funded
    run("request", "authorize", request("q1", 100), "-p", str(book), "--db", str(db))
    run("request", "authorize", request("q2", 200), "-p", str(book), "--db", str(db), "--timeout", "1s")
    code, _, err = run("request", "void", "q1", "--db", str(db))
    assert (code, err) == (0, "reservation q1: 0.110 USD released\n")
    code, _, err = run("request", "void", "q1", "--db", str(db))
    assert (code, err) == (3, "rating: error: reservation q1 is unknown, or already settled or voided\n")
    time.sleep(1.1)
    code, out, _ = run("request", "expire", "--db", str(db), "-o", "json")
    assert code == 0 and [row["reservation"] for row in json.loads(out)] == ["q2"]
    code, _, err = run("request", "complete", request("q2", 200), "-p", str(book), "--db", str(db))
    assert code == 3 and "reservation q2 is unknown, or already settled or voided" in err
    assert wallet_of(run, db) == {"available": "2.000", "reserved": "0.000", "posted": "2.000"}
