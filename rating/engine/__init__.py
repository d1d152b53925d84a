"""The rating engine: events in, charges and balanced ledger transactions out.

- :meth:`Engine.quote` prices an event against stored state and writes nothing.
- :meth:`Engine.rate` prices and posts one event, idempotently.
- :meth:`Engine.rate_batch` does the same for a stream, in atomic chunks.
- :meth:`Engine.authorize` and :meth:`Engine.rate_reserved`: a metered request's two phases.

One module per job: :mod:`~rating.engine.api` (the public API and the composition
of chunks through :mod:`rating.pipeline`), :mod:`~rating.engine.writer` (the batch
writer and its concurrency strategy), :mod:`~rating.engine.metered` (metered
requests), :mod:`~rating.engine.notifications` (what plugins are told),
:mod:`~rating.engine.legacy` (a migration step, never run by the engine itself).
"""

from __future__ import annotations

from rating.engine.api import Engine
from rating.engine.legacy import LEGACY_TOTAL, adopt_legacy_totals
from rating.engine.reports import BatchReport, Rejection
from rating.engine.writer import cyclic_gc_paused
from rating.errors import RatingError

__all__ = [
    "LEGACY_TOTAL",
    "BatchReport",
    "Engine",
    "RatingError",
    "Rejection",
    "adopt_legacy_totals",
    "cyclic_gc_paused",
]
