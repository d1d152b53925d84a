"""The server's background delivery of the outbox (:mod:`rating.webhooks`): a thread of its own, on a storage
connection of its own, running a delivery pass every few seconds.

Idempotent across processes: every server (and ``rating webhooks deliver``) may run it over one database; a
pair is claimed in the delivery log, under the storage's global write scope, before it is sent. Its HTTP calls
never run on the ledger's thread, so a slow endpoint never delays a request.
"""

from __future__ import annotations

import logging
import threading

from rating.registry import Registry
from rating.storage import Storage
from rating.webhooks import deliver

log = logging.getLogger("rating.webhooks")


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
        try:
            while not self._stop.is_set():
                try:
                    # Opened here: a SQLite connection belongs to the thread that opened it.
                    storage = storage or self.registry.open_storage(self.db, existing=True)
                    report = deliver(storage)
                    for message, endpoint, detail in report.failed:
                        log.warning("webhook %s to %s failed (%s); retried later", message, endpoint, detail)
                except Exception:  # never let one bad pass end delivery: log it and try again next time
                    log.exception("webhook delivery pass failed")
                self._stop.wait(self.interval)
        finally:
            if storage is not None:
                storage.close()
