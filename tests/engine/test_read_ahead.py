"""What the engine reads ahead of a chunk, on storage where each read is a round trip (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from rating.core.policies import EPOCH
from rating.engine import Engine
from rating.periods import ONE_TICK
from rating.pricebook.meters import PeriodState
from rating.pricebook.model import parse_pricebook
from rating.statekeys import LATEST, StateKey
from rating.storage.memory import MemoryStorage
from tests.helpers import NOV, SIMPLE_PRICEBOOK, event
from tests.test_telescoping import REGISTRY


class CountingStorage(MemoryStorage):
    """Memory storage that reads ahead as PostgreSQL does and keeps every key read one query at a time."""

    reads_ahead = True

    def __init__(self) -> None:
        super().__init__()
        self.one_by_one: list[StateKey] = []
        self.reading_ahead = False

    def read_ahead(self, ids, keys, periods):  # type: ignore[no-untyped-def]
        self.reading_ahead = True
        try:
            return super().read_ahead(ids, keys, periods)
        finally:
            self.reading_ahead = False

    def period_states(self, keys: Iterable[StateKey]) -> dict[StateKey, PeriodState]:
        keys = list(keys)
        if not self.reading_ahead:
            self.one_by_one.extend(keys)
        return super().period_states(keys)


def test_the_periods_latest_event_time_is_read_ahead_not_one_query_per_event() -> None:
    storage = CountingStorage()
    engine = Engine(parse_pricebook(SIMPLE_PRICEBOOK, REGISTRY, "test"), storage, REGISTRY)
    two = NOV + dt.timedelta(hours=2)
    engine.rate(event("e1", tokens=10, model="m", at=two))
    engine.rate_batch([event(f"e{n}", f"c{n % 3}", tokens=10, model="m") for n in range(2, 8)])
    assert [key for key in storage.one_by_one if key[1] == LATEST] == []  # before: one query per event
    # What is read ahead is what is stored: an earlier event, in a chunk of its own, leaves the latest time be.
    engine.rate(event("earlier", tokens=1, model="m", at=NOV + dt.timedelta(hours=1)))
    [latest] = storage.period_states([StateKey("acme", LATEST, (), "2026-11")]).values()
    assert latest.quantity == Decimal((two - EPOCH) // ONE_TICK)
