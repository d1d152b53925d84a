"""The one ledger a server process serves: its engine, opened lazily on one worker thread.

Every storage call of the process runs on a single thread: SQLite connections belong to the
thread that opened them, and the storages' write scopes are not shared between threads.
Concurrency comes from processes (``rating serve --workers N``, or several servers on one
PostgreSQL), which the storages already order among themselves. The engine is opened on first
use, not at start-up, so that an app mounted inside another one (whose lifespan Starlette does
not run) works all the same.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from rating.engine import Engine, adopt_legacy_totals
from rating.pricebook.catalog import Catalog, load_catalog
from rating.registry import Registry
from rating.storage import Storage

T = TypeVar("T")

#: Events stamped further ahead than this are refused (``future_timestamp``), as ``rating rate`` does by default.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


class Ledger:
    """The engine over ``db`` and ``pricebooks``, reached through :meth:`run` (on the ledger's own thread)."""

    def __init__(
        self,
        db: str,
        pricebooks: Sequence[str | Path] | Catalog,
        registry: Registry | None = None,
        *,
        create: bool = False,
        future_tolerance: dt.timedelta | None = FUTURE_TOLERANCE,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.db = db
        self.registry = registry or Registry.load()
        # Loaded now: a bad pricebook stops the server at start-up, not at its first request.
        self.catalog = pricebooks if isinstance(pricebooks, Catalog) else load_catalog(pricebooks, self.registry)
        self.create = create
        self.future_tolerance = future_tolerance
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rating-ledger")
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine (opening the storage on first use); only to be used on the ledger's thread."""
        with self._lock:
            if self._engine is None:
                opened = self.registry.open_storage(self.db, existing=not self.create)
                adopt_legacy_totals(opened, self.catalog)  # as every CLI writer does before rating
                self._engine = Engine(
                    self.catalog, opened, self.registry, future_tolerance=self.future_tolerance, clock=self.clock
                )
            return self._engine

    @property
    def storage(self) -> Storage:
        """The storage of the engine (on the ledger's thread)."""
        return self.engine.storage

    async def run(self, work: Callable[[Ledger], T]) -> T:
        """Run ``work`` on the ledger's thread and await its result (its exception, raised here)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self)

    def close(self) -> None:
        """Close the storage (on the ledger's thread) and stop the thread."""

        def shut() -> None:
            with self._lock:
                if self._engine is not None:
                    self._engine.storage.close()
                    self._engine = None

        self._executor.submit(shut).result()
        self._executor.shutdown()
