"""An embedded engine has no global side effect unless asked: the GC pause is opt-in."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from rating.engine import BatchReport, Engine, Rejection, adopt_legacy_totals, cyclic_gc_paused
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.storage.memory import MemoryStorage
from tests.helpers import SIMPLE_PRICEBOOK, event


def collector_while_pricing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    seen: list[bool] = []
    price = engine.pricer.price

    def spying(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return price(*args, **kwargs)

    monkeypatch.setattr(engine.pricer, "price", spying)
    return seen


@pytest.mark.parametrize("pause_gc", [False, True])
def test_the_collector_is_paused_only_when_the_engine_is_told_to(
    pause_gc: bool, book: Callable[[str], Pricebook], registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gc.isenabled()
    engine = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry, pause_gc=pause_gc)
    seen = collector_while_pricing(engine, monkeypatch)
    engine.rate(event("e1", tokens=5, model="m"))
    report = engine.rate_batch([event("e2", tokens=5, model="m"), event("e3", tokens=5, model="m")])
    assert report.posted == 2 and seen == [not pause_gc] * 3
    assert gc.isenabled()  # and on again after


def test_the_public_names_stay_importable() -> None:
    assert BatchReport().posted == 0 and Rejection.__name__ == "Rejection"
    assert callable(adopt_legacy_totals) and callable(cyclic_gc_paused)
