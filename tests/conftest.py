"""Shared fixtures: a plugin registry, storages of every kind, pricebooks and events."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from rating.engine import Engine
from rating.pricebook import Pricebook, parse_pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage
from tests.helpers import SIMPLE_PRICEBOOK

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
def book(registry: Registry) -> Callable[[str], Pricebook]:
    """Parse pricebook text with the installed plugins."""
    return lambda text: parse_pricebook(text, registry, "test.yaml")


STORAGE_KINDS = ["memory", "sqlite"]


def open_kind(kind: str, directory: Path) -> Storage:
    if kind == "memory":
        return MemoryStorage()
    return SQLiteStorage(directory / "rating.db")


@pytest.fixture(params=STORAGE_KINDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each storage adapter in turn: the contract holds for all of them."""
    store = open_kind(request.param, tmp_path)
    yield store
    store.close()


@pytest.fixture
def engine(book: Callable[[str], Pricebook], registry: Registry) -> Engine:
    return Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry)
