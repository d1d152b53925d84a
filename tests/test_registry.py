"""Plugins: built-ins and third-party models are discovered the same way."""

from __future__ import annotations

import importlib
from decimal import Decimal
from pathlib import Path

import pytest
from rating_plugins.per_unit import PerUnit

from rating.engine import Engine
from rating.errors import PluginError, PricebookError, StorageError
from rating.hookspecs import hookimpl
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import SIMPLE_PRICEBOOK, event

THIRD_PARTY = '''
from decimal import Decimal
from typing import Literal
from rating.hookspecs import hookimpl
from rating.pricebook.pricing import Price, PricingModel

class Capped(PricingModel):
    """Per unit, but never more than ``ceiling`` a period."""
    name = "capped"
    model: Literal["capped"]
    unit_price: Price
    ceiling: Price

    def period_price(self, quantity: Decimal) -> Decimal:
        return min(quantity * self.unit_price, self.ceiling)

@hookimpl
def rating_pricing_models():
    return [Capped]
'''


@pytest.fixture
def installed_third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on sys.path that declares an entry point in the ``rating.plugins`` group."""
    (tmp_path / "acme_pricing.py").write_text(THIRD_PARTY)
    info = tmp_path / "acme_pricing-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pricing\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[rating.plugins]\ncapped = acme_pricing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()


def test_builtins_come_through_the_entry_point_group() -> None:
    registry = Registry.load()
    assert {"per_call", "per_unit", "tiered", "package"} <= set(registry.pricing_models)
    assert {"memory", "sqlite"} <= set(registry.storage_adapters)
    assert Registry.load(entry_points=False).pricing_models == {}


def test_an_installed_third_party_model_prices_events_from_a_pricebook(installed_third_party: None) -> None:
    registry = Registry.load()
    assert "capped" in registry.pricing_models
    text = SIMPLE_PRICEBOOK.replace(
        '{meter: requests, model: per_call, price: "0.01"}',
        '{meter: requests, model: capped, unit_price: "0.40", ceiling: "1"}',
    )
    engine = Engine(parse_pricebook(text, registry), MemoryStorage(), registry)
    amounts = [engine.rate(event(f"e{i}", tokens=1, model="m")).charges[0].amount for i in range(4)]  # type: ignore[union-attr]
    assert amounts == [Decimal("0.40"), Decimal("0.40"), Decimal("0.20"), Decimal("0.00")]
    explanation = engine.quote(event("e9", tokens=1, model="m")).charges[0].explanation
    assert explanation == "period requests 4 -> 5: 1 - 1 = 0 USD"


def test_third_party_parameters_get_line_numbered_errors(installed_third_party: None) -> None:
    text = SIMPLE_PRICEBOOK.replace(
        '{meter: requests, model: per_call, price: "0.01"}', "{meter: requests, model: capped, unit_price: x}"
    )
    with pytest.raises(PricebookError) as error:
        parse_pricebook(text, Registry.load(), "p.yaml")
    assert error.value.problems == [
        "p.yaml:10:9: plans.basic.charges[0]: missing required key 'ceiling'",
        "p.yaml:10:42: plans.basic.charges[0].unit_price: value must be a decimal number, got 'x'",
    ]


def test_a_parameter_named_like_a_common_option_is_refused_at_registration() -> None:
    from rating.pricebook.pricing import Price, PricingModel

    class Shadowing(PricingModel):
        name = "shadowing"
        model: str
        cap: Price

    class Offers:
        @hookimpl
        def rating_pricing_models(self) -> list[type]:
            return [Shadowing]

    with pytest.raises(PluginError, match="'shadowing' .* declares cap, named like the common options"):
        Registry.load([Offers()], entry_points=False)


class Duplicate:
    @hookimpl
    def rating_pricing_models(self) -> list[type]:
        return [PerUnit]


class NotAModel:
    @hookimpl
    def rating_pricing_models(self) -> list[type]:
        return [dict]


def test_two_plugins_cannot_claim_one_name() -> None:
    with pytest.raises(PluginError, match="pricing model 'per_unit' is provided twice"):
        Registry.load([Duplicate()])
    with pytest.raises(PluginError, match="is not a named PricingModel subclass"):
        Registry.load([NotAModel()])


def test_unknown_storage_scheme_lists_the_installed_ones() -> None:
    with pytest.raises(
        StorageError, match="no storage adapter for .redis.*installed: memory, postgres, postgresql, sqlite"
    ):
        Registry.load().open_storage("redis://localhost")


def test_storage_urls(tmp_path: Path) -> None:
    registry = Registry.load()
    assert registry.open_storage("memory:").url == "memory:"
    with registry.open_storage(str(tmp_path / "a.db")) as plain:
        assert plain.url == f"sqlite:///{tmp_path / 'a.db'}"
        with registry.open_storage(plain.url) as again:
            assert again.url == plain.url


def test_the_readmes_per_event_model_works_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from rating.events import UsageEvent
    from rating.testing import check_per_event_model

    page = (Path(__file__).parent.parent / "docs" / "llm.md").read_text()
    code = next(block for block in page.split("```python")[1:] if "class PerMinute" in block).split("```")[0]
    (tmp_path / "per_minute.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("per_minute")
    registry = Registry.load([module])
    text = """\
pricebook: calls
version: 2026-11-01
currency: USD
meters:
  calls: {event: call.ended, count: true}
plans:
  voice:
    charges:
      - {meter: calls, model: per_minute, per_minute: "0.02"}
default_plan: voice
"""
    engine = Engine(parse_pricebook(text, registry), MemoryStorage(), registry)
    at = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    calls = [UsageEvent(id=f"c{s}", customer="a", type="call.ended", timestamp=at, properties={"seconds": s})
             for s in (1, 60, 61, 3600)]  # fmt: skip
    report = engine.rate_batch(calls)
    assert report.totals == {("a", "USD"): Decimal("0.02") * (1 + 1 + 2 + 60)}
    check_per_event_model(engine.pricebook.plans["voice"].charges[0], calls)  # type: ignore[arg-type]
