"""Built-in storage adapters: ``memory``, ``sqlite`` and ``postgresql``."""

from __future__ import annotations

from collections.abc import Callable

from rating.hookspecs import hookimpl
from rating.storage.base import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage


def open_memory(url: str, *, read_only: bool = False) -> Storage:
    """``memory:`` (read_only changes nothing: a new memory storage is empty)."""
    return MemoryStorage(url)


def open_sqlite(url: str, *, read_only: bool = False) -> Storage:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` or a plain path."""
    path = url.split("://", 1)[1].removeprefix("/") if "://" in url else url
    return SQLiteStorage(path, read_only=read_only)


def open_postgres(url: str, *, read_only: bool = False) -> Storage:
    """``postgresql://user@host:port/database`` (needs the ``postgres`` extra)."""
    from rating.storage.postgres import PostgresStorage  # imported on use: psycopg is an optional extra

    return PostgresStorage(url, read_only=read_only)


@hookimpl
def rating_storage_adapters() -> dict[str, Callable[..., Storage]]:
    return {"memory": open_memory, "sqlite": open_sqlite, "postgresql": open_postgres, "postgres": open_postgres}
