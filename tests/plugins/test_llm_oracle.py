"""The oracle: an imported genai-prices catalogue prices 2,000 requests exactly as genai-prices' calc_price does,
per provider and as one catalogue of every provider matched on the request's (provider, model).

Requests are generated over 11 models of 4 providers, around what decides a
price: context tiers (one token under, at and over the threshold), price
changes and variant start dates (a second before and after midnight UTC),
DeepSeek's off-peak window and its wraparound (a second before and after each
end), offsets other than UTC, dated model names (dashed and compact), cache
reads and writes, audio input, service tiers and batch processing.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal, localcontext
from typing import Any

import pytest

from rating.errors import EventError
from rating.events import UsageEvent
from rating.imports.genai_prices import import_genai_prices
from rating.money import MONEY_CONTEXT
from rating.registry import Registry

genai_prices = pytest.importorskip("genai_prices")
from genai_prices import Usage, calc_price, data_snapshot, types  # noqa: E402

#: (provider, model id, names a gateway might send for it)
MODELS = [
    ("anthropic", "claude-sonnet-4-5", ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-sonnet-4.5"]),
    ("anthropic", "claude-opus-4-6", ["claude-opus-4-6", "claude-opus-4.6-20260205"]),
    ("anthropic", "claude-haiku-4-5", ["claude-haiku-4-5-20251001"]),
    ("openai", "gpt-5.4", ["gpt-5.4", "gpt-5.4-2026-03-05", "gpt-5.4-20260305"]),
    ("openai", "gpt-5.6-terra", ["gpt-5.6-terra", "gpt-5.6-terra-2026-09-01"]),
    ("openai", "gpt-4o", ["gpt-4o", "gpt-4o-2024-08-06"]),
    ("google", "gemini-2.5-pro", ["gemini-2.5-pro", "gemini-2.5-pro-preview-06-05"]),
    ("google", "gemini-2.5-flash", ["gemini-2.5-flash", "gemini-2.5-flash-latest"]),
    ("google", "gemini-3-pro-preview", ["gemini-3-pro-preview"]),
    ("deepseek", "deepseek-chat", ["deepseek-chat"]),
    ("deepseek", "deepseek-reasoner", ["deepseek-reasoner", "deepseek-r1"]),
]
OFFSETS = [dt.UTC, dt.timezone(dt.timedelta(hours=9)), dt.timezone(dt.timedelta(hours=-8)),
           dt.timezone(dt.timedelta(hours=5, minutes=30))]  # fmt: skip
CONTEXTS: list[dict[str, str]] = [
    {}, {}, {}, {"service_tier": "default"}, {"service_tier": "flex"}, {"service_tier": "priority"},
    {"service_tier": "fast"}, {"processing": "batch"},
]  # fmt: skip


def genai_model(provider: str, model: str) -> Any:
    found = next(p for p in data_snapshot.get_snapshot().providers if p.id == provider)
    return next(m for m in found.models if m.id == model)


def edges(model: Any) -> tuple[list[int], list[dt.datetime]]:
    """The context thresholds and the moments (price changes, windows) where the model's price changes."""
    conditionals = model.prices if isinstance(model.prices, list) else []
    prices = [c.prices for c in conditionals] or [model.prices]
    prices += [v.prices for v in model.price_variants or []]
    thresholds = sorted(
        {t.start for p in prices for v in p.__dict__.values() if isinstance(v, types.TieredPrices) for t in v.tiers}
    )
    constraints = [c.constraint for c in conditionals] + [v.constraint for v in model.price_variants or []]
    moments = []
    for constraint in constraints:
        if hasattr(constraint, "start_date"):
            moments.append(dt.datetime.combine(constraint.start_date, dt.time(), dt.UTC))
        elif hasattr(constraint, "start_time"):
            for day in (dt.date(2026, 3, 1), dt.date(2026, 11, 23)):
                for moment in (constraint.start_time, constraint.end_time):
                    moments.append(dt.datetime.combine(day, moment.replace(tzinfo=None), dt.UTC))
    return thresholds, moments


def request(rng: random.Random, number: int) -> tuple[str, str, UsageEvent]:
    provider, model_id, names = MODELS[number % len(MODELS)]
    thresholds, moments = edges(genai_model(provider, model_id))
    if thresholds and rng.random() < 0.5:
        input_tokens = rng.choice(thresholds) + rng.choice([-1, 0, 1])
    else:
        input_tokens = rng.choice([0, 1, rng.randint(2, 5_000), rng.randint(5_000, 400_000)])
    if moments and rng.random() < 0.6:
        at = rng.choice(moments) + dt.timedelta(seconds=rng.choice([-1, 0, 1]))
    else:
        at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randint(0, 570 * 86_400))
    usage: dict[str, int] = {"input_tokens": input_tokens, "output_tokens": rng.choice([0, rng.randint(1, 20_000)])}
    if input_tokens and rng.random() < 0.5:
        usage["cache_read_tokens"] = rng.randint(0, input_tokens // 2)
    if input_tokens and rng.random() < 0.4:
        usage["cache_write_tokens"] = rng.randint(0, input_tokens - usage.get("cache_read_tokens", 0))
        if rng.random() < 0.3:
            usage["cache_write_1h_tokens"] = rng.randint(0, usage["cache_write_tokens"])
    if input_tokens and model_id == "gemini-2.5-flash" and rng.random() < 0.5:
        usage["input_audio_tokens"] = rng.randint(0, input_tokens - usage.get("cache_read_tokens", 0))
    properties: dict[str, Any] = {"model": rng.choice(names), **usage, **rng.choice(CONTEXTS)}
    event = UsageEvent(id=f"r{number}", customer="c", type="llm.request", timestamp=at.astimezone(rng.choice(OFFSETS)),
                       properties=properties)  # fmt: skip
    return provider, properties["model"], event


def test_imported_prices_equal_calc_price_on_two_thousand_requests() -> None:
    registry = Registry.load()
    charges = {
        provider: registry.pricing_models["llm"].model_validate(
            {"meter": "calls", "model": "llm", "models": import_genai_prices([provider]).models}
        )
        for provider in {provider for provider, _, _ in MODELS}
    }
    # One catalogue of every provider, matched on the request's (provider, model): the same prices.
    together = registry.pricing_models["llm"].model_validate(
        {"meter": "calls", "model": "llm", "models": import_genai_prices(sorted(charges)).models}
    )
    rng = random.Random(20261130)
    compared = refused = 0
    for number in range(2_000):
        provider, name, event = request(rng, number)
        usage = {k: v for k, v in event.properties.items() if k.endswith("_tokens")}
        context = {k: v for k, v in event.properties.items() if k in ("service_tier", "processing")}
        try:
            expected: Decimal | None = calc_price(
                Usage(**usage), name, provider_id=provider, genai_request_timestamp=event.timestamp,
                price_context=context or None,
            ).total_price  # fmt: skip
        except (LookupError, ValueError):
            expected = None
        try:
            with localcontext(MONEY_CONTEXT):
                ours: Decimal | None = charges[provider].price_event(event, "USD").amount  # type: ignore[attr-defined]
        except EventError:
            ours = None
        with_provider = event.model_copy(update={"properties": event.properties | {"provider": provider}})
        try:
            with localcontext(MONEY_CONTEXT):
                combined: Decimal | None = together.price_event(with_provider, "USD").amount  # type: ignore[attr-defined]
        except EventError:
            combined = None
        assert combined == ours, f"request {number}: one catalogue of all providers prices {provider} {name} apart"
        assert ours == expected, f"request {number}: {provider} {name} at {event.timestamp} {usage} {context}"
        compared += expected is not None
        refused += expected is None
    assert compared >= 1_900 and refused == 2_000 - compared
