"""The server's background jobs: delivery of the outbox (:mod:`rating.webhooks`) and the time-driven expiry of
reservations and grants (each announced: ``reservation.expired``, ``grant.expired``), on a thread of its own and
a storage connection of its own, a pass every few seconds; and, every :data:`PURGE_EVERY`, the purge of the
idempotency keys older than :data:`~rating.server.idempotency.RETENTION` (:func:`purge`).

Expiry is idempotent too: a reservation another server released first is skipped (its release conflicts, nothing
of this pass's is written), and a grant is forfeited once by its forfeiture's id.

Idempotent across processes: every server (and ``rating webhooks deliver``) may run it over one database; a
pair is claimed in the delivery log, under the storage's global write scope, before it is sent. Its HTTP calls
never run on the ledger's thread, so a slow endpoint never delays a request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from rating.errors import ReservationError, TransactionConflict
from rating.registry import Registry
from rating.server.idempotency import RETENTION
from rating.storage import Storage
from rating.wallet.wallets import Wallets
from rating.webhooks import deliver

log = logging.getLogger("rating.webhooks")
#: How often (seconds) a server purges the idempotency keys past their retention: a delete of its own,
#: idempotent, so several servers may run it.
PURGE_EVERY = 600.0


def purge(storage: Storage, now: dt.datetime | None = None) -> int:
    """Drop the idempotency keys (and their kept answers) first used more than
    :data:`~rating.server.idempotency.RETENTION` ago; how many."""
    return storage.purge_idempotent((now or dt.datetime.now(dt.UTC)) - RETENTION)


def expire(storage: Storage) -> None:
    """Release the reservations and forfeit the grants whose time has passed (what another server did first is
    left to it)."""
    wallets = Wallets(storage)
    try:
        wallets.expire()
    except (ReservationError, TransactionConflict) as raced:  # another server released one first: next pass
        log.info("reservation expiry deferred: %s", raced)
    wallets.expire_grants()


class DeliveryWorker:
    """Runs :func:`rating.webhooks.deliver` over ``db`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, db: str, registry: Registry, interval: float) -> None:
        self.db, self.registry, self.interval = db, registry, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rating-webhooks", daemon=True)

    def start(self) -> None:
        """Start delivering in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Finish the pass under way, then stop."""
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        storage: Storage | None = None
        purged = float("-inf")  # monotonic time of the last purge: the first pass purges
        try:
            while not self._stop.is_set():
                try:
                    # Opened here: a SQLite connection belongs to the thread that opened it.
                    storage = storage or self.registry.open_storage(self.db, existing=True)
                    expire(storage)
                    if time.monotonic() - purged >= PURGE_EVERY:
                        purged = time.monotonic()
                        dropped = purge(storage)
                        if dropped:
                            log.info("purged %d idempotency keys older than %s", dropped, RETENTION)
                    report = deliver(storage)
                    for message, endpoint, detail in report.failed:
                        log.warning("webhook %s to %s failed (%s); retried later", message, endpoint, detail)
                except Exception:  # never let one bad pass end delivery: log it and try again next time
                    log.exception("webhook delivery pass failed")
                self._stop.wait(self.interval)
        finally:
            if storage is not None:
                storage.close()
