"""Webhook messages as the library writes them: one per change, in the storage write of that change.

The writers of the changes (:mod:`rating.invoices.issue`, :mod:`rating.invoices.settle`, the engine's
notifications) call ``storage.announce([message(...)])`` inside the :meth:`~rating.storage.Storage.writing` scope
that stores the change, so an outbox row exists if and only if the change committed, whoever wrote it (the
server, the command line or an embedding program). :mod:`rating.webhooks` delivers them.

The body follows the Standard Webhooks payload shape: ``{"type", "timestamp", "data"}``; amounts in ``data`` are
decimal strings. The message id (the ``webhook-id`` header) names the change (``invoice.issued:INV-2026-000001``):
the same change announced again is the same message, stored once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rating.records import OutboxMessage

INVOICE_ISSUED = "invoice.issued"
INVOICE_PAID = "invoice.paid"
CREDIT_NOTE_ISSUED = "credit_note.issued"
SPEND_ALERT_CROSSED = "spend.alert_crossed"
WALLET_TOP_UP_NEEDED = "wallet.top_up_needed"
GRANT_EXPIRED = "grant.expired"
RESERVATION_EXPIRED = "reservation.expired"
#: Best effort: a refusal has no write of its own to ride with (the service announces what it refused).
EVENT_REJECTED = "event.rejected"

#: The event types the library announces (an endpoint subscribes to some, or to all).
EVENT_TYPES = (
    INVOICE_ISSUED,
    INVOICE_PAID,
    CREDIT_NOTE_ISSUED,
    SPEND_ALERT_CROSSED,
    WALLET_TOP_UP_NEEDED,
    GRANT_EXPIRED,
    RESERVATION_EXPIRED,
    EVENT_REJECTED,
)


def _plain(value: Any) -> Any:
    """JSON for ``value``: Decimals as strings (money is never a JSON number), dates as ISO text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def message(type: str, subject: str, data: Mapping[str, Any], at: dt.datetime | None = None) -> OutboxMessage:
    """The outbox message announcing ``type`` of ``subject`` (a document number, a customer and period...)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    created = at or dt.datetime.now(dt.UTC)
    body = {"type": type, "timestamp": created.isoformat(), "data": dict(data)}
    return OutboxMessage(f"{type}:{subject}", type, json.dumps(body, default=_plain, sort_keys=True), created)
