"""``python -m rating.bench --llm``: the per-request price path against genai-prices' ``calc_price``.

The same generated requests (models of four providers, cache reads and
writes, context tiers, time windows) are priced three ways in one run: by the
``llm`` model over an imported catalogue (``price_event``, and a full
``Engine.quote``), by ``calc_price``, and by a bare Decimal loop multiplying
input and output tokens by a price (the yardstick). Needs the ``[llm]`` extra.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from decimal import Decimal, localcontext

from rating.engine import Engine
from rating.events import UsageEvent
from rating.imports.genai_prices import import_genai_prices
from rating.money import MONEY_CONTEXT
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage

MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-5.4"),
    ("openai", "gpt-4o"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("deepseek", "deepseek-chat"),
]


def requests(count: int, seed: int = 7) -> list[tuple[str, UsageEvent]]:
    """``count`` requests as (provider, event), deterministic."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    made = []
    for number in range(count):
        provider, model = MODELS[number % len(MODELS)]
        input_tokens = rng.randint(100, 300_000)
        properties = {
            "model": model,
            "input_tokens": input_tokens,
            "cache_read_tokens": rng.randint(0, input_tokens // 2),
            "output_tokens": rng.randint(10, 8_000),
        }
        at = start + dt.timedelta(seconds=rng.randint(0, 29 * 86_400))
        made.append((provider, UsageEvent(id=f"r{number}", customer="c", type="llm.request", timestamp=at,
                                          properties=properties)))  # fmt: skip
    return made


def rate(seconds: float, count: int) -> float:
    return count / seconds if seconds else float("inf")


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(count: int) -> dict[str, float]:
    """Requests per second of each way of pricing, printed and returned."""
    from genai_prices import Usage, calc_price

    registry = Registry.load()
    providers = sorted({provider for provider, _ in MODELS})
    charges = {
        p: registry.pricing_models["llm"].model_validate(
            {
                "meter": "calls",
                "model": "llm",
                "models": import_genai_prices([p], [m for q, m in MODELS if q == p]).models,
            }
        )
        for p in providers
    }
    book = Pricebook.model_validate(
        {
            "pricebook": "bench-llm",
            "version": "2026-11-01",
            "currency": "USD",
            "meters": {"calls": {"event": "llm.request", "count": True}},
            "plans": {"p": {"charges": [charges["openai"]]}},
            "default_plan": "p",
        }
    )
    engine = Engine(Catalog([book]), MemoryStorage(), registry)
    made = requests(count)
    openai = [event for provider, event in made if provider == "openai"]

    def ours() -> None:
        with localcontext(MONEY_CONTEXT):
            for provider, event in made:
                charges[provider].price_event(event, "USD")  # type: ignore[attr-defined]

    def theirs() -> None:
        for provider, event in made:
            usage = Usage(**{k: v for k, v in event.properties.items() if k.endswith("_tokens")})
            calc_price(usage, event.properties["model"], provider_id=provider, genai_request_timestamp=event.timestamp)

    def quotes() -> None:
        for event in openai:
            engine.quote(event)

    def bare() -> None:
        price_in, price_out, million = Decimal("2.5"), Decimal("15"), Decimal(1_000_000)
        total = Decimal(0)
        for _, event in made:
            total += (
                event.properties["input_tokens"] * price_in + event.properties["output_tokens"] * price_out
            ) / million

    figures = {
        "llm price_event": rate(timed(ours), count),
        "genai-prices calc_price": rate(timed(theirs), count),
        "Engine.quote (llm charge)": rate(timed(quotes), len(openai)),
        "bare Decimal loop": rate(timed(bare), count),
    }
    for name, value in figures.items():
        print(f"{name:<28} {value:>12,.0f} requests/s")
    print(f"price_event vs calc_price: {figures['llm price_event'] / figures['genai-prices calc_price']:.1f}x faster")
    print(f"price_event vs bare loop: {figures['bare Decimal loop'] / figures['llm price_event']:.1f}x slower")
    return figures
