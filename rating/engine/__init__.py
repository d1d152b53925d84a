"""The rating engine: events in, charges and balanced ledger transactions out.

- :meth:`Engine.quote` prices an event against stored state and writes nothing.
- :meth:`Engine.rate` prices and posts one event, idempotently.
- :meth:`Engine.rate_batch` does the same for a stream, in atomic chunks.
- :meth:`Engine.authorize` and :meth:`Engine.rate_reserved`: a metered request's two phases.

One module per job: :mod:`~rating.engine.api` (the public API and the composition
of chunks through :mod:`rating.core.pipeline`), :mod:`~rating.engine.writer` (the batch
writer and its concurrency strategy), :mod:`~rating.engine.metered` (metered
requests), :mod:`~rating.engine.notifications` (what plugins are told),
:mod:`~rating.engine.legacy` (a migration step, never run by the engine itself).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from rating.engine.api import Engine
from rating.engine.legacy import LEGACY_TOTAL, adopt_legacy_totals
from rating.engine.reports import BatchReport, Rejection
from rating.engine.writer import cyclic_gc_paused
from rating.errors import RatingError

if TYPE_CHECKING:
    from rating.pricebook.catalog import Catalog
    from rating.registry import Registry
    from rating.storage.base import Storage


def reprice_in_place(
    storage: Storage,
    catalog: Catalog,
    registry: Registry,
    since: dt.datetime,
    until: dt.datetime,
    only: set[tuple[str, str]],
    clock: Callable[[], dt.datetime],
) -> list[Rejection]:
    """Re-price the customer periods ``only`` for the order of arrival (an open-period rerate, in place); what it
    could not re-price (a wallet that cannot fund a correction, say), with their codes.

    Rerate is a wing over the engine: this is the engine's one upward import, made when a late event
    needs it, and kept in this module, where the import contracts name it.
    """
    from rating.billing.rerate import rerate

    return rerate(storage, catalog, registry, since, until, clock=clock, only=only, arrival=True).refused


__all__ = [
    "LEGACY_TOTAL",
    "BatchReport",
    "Engine",
    "RatingError",
    "Rejection",
    "adopt_legacy_totals",
    "cyclic_gc_paused",
]
