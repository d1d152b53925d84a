"""Built-in storage adapters: ``memory`` and ``sqlite``."""

from __future__ import annotations

from collections.abc import Callable

from rating.hookspecs import hookimpl
from rating.storage.base import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage


def open_sqlite(url: str) -> Storage:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` or a plain path."""
    path = url.split("://", 1)[1].removeprefix("/") if "://" in url else url
    return SQLiteStorage(path)


@hookimpl
def rating_storage_adapters() -> dict[str, Callable[[str], Storage]]:
    return {"memory": MemoryStorage, "sqlite": open_sqlite}
