"""Built-in storage adapters: ``memory``, ``sqlite`` and ``postgresql``."""

from __future__ import annotations

from collections.abc import Callable

from rating.hookspecs import hookimpl
from rating.storage.base import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage


def open_memory(url: str, *, read_only: bool = False, existing: bool = False) -> Storage:
    """``memory:`` (read_only and existing change nothing: a memory storage is new, empty and of its process)."""
    return MemoryStorage(url)


def open_sqlite(url: str, *, read_only: bool = False, existing: bool = False) -> Storage:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:`` or a plain path."""
    path = url.split("://", 1)[1].removeprefix("/") if "://" in url else url
    return SQLiteStorage(path, read_only=read_only, existing=existing)


def open_postgres(url: str, *, read_only: bool = False, existing: bool = False) -> Storage:
    """``postgresql://user@host:port/database`` (needs the ``postgres`` extra)."""
    from rating.storage.postgres import PostgresStorage  # imported on use: psycopg is an optional extra

    return PostgresStorage(url, read_only=read_only, existing=existing)


@hookimpl
def rating_storage_adapters() -> dict[str, Callable[..., Storage]]:
    return {"memory": open_memory, "sqlite": open_sqlite, "postgresql": open_postgres, "postgres": open_postgres}
