"""Provider costs beside every price, and margins: where does usage destroy margin?"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.engine import Engine
from rating.events import UsageEvent
from rating.periods import UTC
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.reports.usage import margin_report, window
from rating.storage import Storage
from tests.helpers import EXAMPLE

AT = dt.datetime(2026, 11, 5, 12, tzinfo=UTC)


def request(id: str, model: str, provider: str, source: str = "platform") -> UsageEvent:
    return UsageEvent(
        id=id,
        customer="someone",
        type="llm.request",
        timestamp=AT,
        billing_source=source,  # type: ignore[arg-type]
        properties={"provider": provider, "model": model, "input_tokens": 1000, "output_tokens": 100},
    )


def test_costs_are_posted_beside_prices_and_byok_costs_nothing(registry: Registry, storage: Storage) -> None:
    engine = Engine(load_catalog([EXAMPLE], registry), storage, registry)
    rating = engine.rate(request("r1", "gpt-5", "openai"))
    assert rating is not None
    costs = {p.account: p.amount for p in rating.transaction.postings if "provider" in p.account}
    assert costs == {
        "expense:provider:frontier_input_tokens": Decimal("0.0020000"),
        "expense:provider:frontier_output_tokens": Decimal("0.0010000"),
        "payable:providers": Decimal("-0.0030000"),
    }
    byok = engine.rate(request("b1", "gpt-5", "openai", source="byok"))
    assert byok is not None and not [p for p in byok.transaction.postings if "provider" in p.account]


def test_margin_per_model_lists_where_usage_destroys_margin(registry: Registry, storage: Storage) -> None:
    catalog = load_catalog([EXAMPLE], registry)
    engine = Engine(catalog, storage, registry)
    engine.rate(request("r1", "gpt-5", "openai"))  # 0.0047 revenue, 0.0030 cost
    engine.rate(request("r2", "gpt-5-mini", "openai"))  # sold at cost, but the request fee
    since, until = window("30d", UTC, AT + dt.timedelta(days=1))
    rows = {r.group: r for r in margin_report(storage, catalog.latest, since, until, "model")}
    big = rows["gpt-5"]
    assert (big.revenue, big.cost, big.margin) == (Decimal("0.0047000"), Decimal("0.0030000"), Decimal("0.0017000"))
    assert big.margin_percent == Decimal("36.2")
    below = margin_report(storage, catalog.latest, since, until, "model", below=Decimal(40))
    assert [r.group for r in below] == ["gpt-5"]


def test_margin_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.jsonl").write_text(request("r1", "gpt-5", "openai").model_dump_json() + "\n")
    assert main(["rate", "r.jsonl", "-p", str(EXAMPLE)]) == 0
    capsys.readouterr()
    argv = ["margin", "--below", "40%", "--until", "2026-11-06T00:00:00Z", "-p", str(EXAMPLE), "-o", "csv"]
    assert main(argv) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out))) == [
        {
            "model": "gpt-5",
            "revenue_USD": "0.0047000",
            "cost_USD": "0.0030000",
            "margin_USD": "0.0017000",
            "margin_%": "36.2",
        }
    ]
