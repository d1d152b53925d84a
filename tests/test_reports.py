"""Usage reports: the marketplace's "usage per agent over 30 days"."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from rating.engine import Engine
from rating.errors import RatingError
from rating.periods import UTC
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.reports.usage import usage_report, window
from rating.storage import Storage
from tests.helpers import event
from tests.test_examples import MARKETPLACE

NOW = dt.datetime(2026, 11, 28, tzinfo=UTC)


def run(id: str, agent: str, day: int, calls: int, source: str = "platform") -> object:
    item = event(id, customer="studio-nine", type="agent.execution", at=dt.datetime(2026, 11, day, tzinfo=UTC),
                 agent=agent, inference_calls=calls)  # fmt: skip
    return item.model_copy(update={"billing_source": source})


def test_usage_per_agent_reproduces_the_marketplace_document(registry: Registry, storage: Storage) -> None:
    book = load_catalog([MARKETPLACE], registry)
    engine = Engine(book, storage, registry)
    engine.rate(run("warm-up", "agt_other", 11, 5000))  # the 10,000 included compute units
    engine.rate_batch([run(f"x{i}", "agt_abc123", 12 + i % 10, 15) for i in range(141)])  # 30 CU each
    engine.rate(run("x141", "agt_abc123", 25, 25))  # 50 CU
    assert engine.rate_batch([run("old", "agt_abc123", 1, 1)]).rejected  # before the subscription: not reported
    since, until = window("30d", UTC, NOW)
    rows = {row.group: row for row in usage_report(storage, book.latest, since, until, "agent")}
    abc = rows["agt_abc123"]
    assert (abc.events, abc.quantities["compute_units"], abc.cost) == (142, Decimal(4280), {"USD": Decimal("21.40")})
    assert abc.quantities["executions"] == 142
    assert rows["agt_other"].cost == {"USD": Decimal(0)}


def test_byok_usage_is_reported_but_not_charged(registry: Registry, storage: Storage) -> None:
    book = load_catalog([MARKETPLACE], registry)
    engine = Engine(book, storage, registry)
    engine.rate(run("b1", "agt_byok", 12, 10, source="byok"))
    [row] = usage_report(storage, book.latest, *window("2026-11", UTC, NOW), "agent")
    assert (row.group, row.events, row.quantities["compute_units"], row.cost) == ("agt_byok", 1, Decimal(20), {})


def test_windows() -> None:
    assert window("24h", UTC, NOW) == (NOW - dt.timedelta(hours=24), NOW)
    assert window("2026-11", UTC, NOW) == (dt.datetime(2026, 11, 1, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(RatingError, match="'a while' is not a window"):
        window("a while", UTC, NOW)
