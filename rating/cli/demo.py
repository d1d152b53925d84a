"""Demo data: a reproducible month of LLM requests for the example AI gateway pricebook."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

#: (provider, model, typical input tokens, typical output tokens)
MODELS = [
    ("openai", "gpt-5", 2_400, 600),
    ("openai", "gpt-5-mini", 1_200, 300),
    ("anthropic", "claude-opus-4", 3_000, 800),
    ("anthropic", "claude-haiku-4", 900, 250),
    ("meta", "llama-4-8b", 700, 200),
]
CUSTOMERS = ["acme-labs", "globex", "initech", "umbrella", "hooli"]
AGENTS = ["agt_research", "agt_support", "agt_coder"]


def example_pricebook(name: str = "ai-gateway") -> Path:
    """Path of an example pricebook shipped with the package."""
    return Path(str(resources.files("rating.pricebooks").joinpath(f"{name}.yaml")))


def demo_events(count: int, seed: int = 7, month: tuple[int, int] = (2026, 11)) -> Iterator[dict[str, Any]]:
    """``count`` LLM request events spread over one month, the same for the same seed."""
    rng = random.Random(seed)
    start = dt.datetime(month[0], month[1], 1, tzinfo=dt.UTC)
    seconds = 28 * 24 * 3600
    for number in range(count):
        provider, model, typical_in, typical_out = rng.choice(MODELS)
        customer = CUSTOMERS[min(int(rng.paretovariate(1.2)) - 1, len(CUSTOMERS) - 1)]
        at = start + dt.timedelta(seconds=seconds * number // count + rng.randrange(60))
        yield {
            "id": f"req_{seed}_{number:07d}",
            "customer": customer,
            "type": "llm.request",
            "timestamp": at.isoformat(),
            "properties": {
                "provider": provider,
                "model": model,
                "input_tokens": rng.randint(typical_in // 4, typical_in * 4),
                "output_tokens": rng.randint(typical_out // 4, typical_out * 4),
            },
            "attribution": {"agent": rng.choice(AGENTS), "session": f"ses_{rng.randrange(200):03d}"},
            "billing_source": "platform",
        }


def write_demo_events(path: Path, count: int, seed: int = 7) -> Path:
    """Write :func:`demo_events` as JSON Lines to ``path``."""
    with path.open("w", encoding="utf-8") as stream:
        for event in demo_events(count, seed):
            stream.write(json.dumps(event) + "\n")
    return path
