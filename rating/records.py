"""What storage keeps: plain records of Decimal, str, tuple and datetime, never a pricing type.

Storage adapters read and write only these (and ledger transactions): a rated
event's record (:class:`EventRecord`) with its meter readings (:class:`Usage`)
and its charge records (:class:`ChargeRecord`), corrections
(:class:`CorrectionRecord`) and period state (:class:`PeriodState`). The core
builds them from what it priced (:func:`rating.core.charges.event_record`) before it
calls storage, so no plugin code ever runs inside a storage write.

A charge's explanation is kept as data: its identity (plan, meter, group, the
pricebook version and running-total key that priced it), quantities before and
after, amount and uncapped amount. The pricing layer renders the text when
someone reads it (:func:`rating.core.charges.explanation_of`); the record carries the
text itself only where the storage keeps text or the model described itself
when it priced (per-event models, carried-over allowances).

Immutable named tuples (:class:`PeriodState` excepted: it is the working state
a meter advances in place): several are built per event on the hot path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from rating.ledger import Transaction
from rating.statekeys import StateKey

if TYPE_CHECKING:  # events sit above the foundations; a record only holds one
    from rating.events import UsageEvent


@dataclass(slots=True)
class PeriodState:
    """The aggregate of one meter for one customer, group and period.

    ``members`` holds the values seen so far, for unique-count meters only.
    """

    quantity: Decimal
    members: set[str] | None = None


class Usage(NamedTuple):
    """One meter's reading of one event and the period aggregate before and after it."""

    meter: str
    group: tuple[str, ...]
    period: str
    reading: Decimal | str
    before: Decimal
    after: Decimal

    def key(self, customer: str) -> StateKey:
        """The period state this reading advanced."""
        # A plain tuple of StateKey's shape, equal and hashing alike: constructing the NamedTuple costs
        # seven times as much, once per meter reading on the hot path.
        return (customer, self.meter, self.group, self.period)  # type: ignore[return-value]


class ChargeRecord(NamedTuple):
    """One priced line as storage keeps it: the charge's fields and its explanation as data.

    ``explanation`` is the text when it was made before storing (None: the pricing
    layer renders it on read from ``version`` and ``key``, see
    :func:`rating.core.charges.explanation_of`); ``unit_price`` is the price per unit
    when a single one applies.
    """

    plan: str
    meter: str
    group: tuple[str, ...]
    period: str
    model: str
    before: Decimal
    after: Decimal
    amount: Decimal
    asset: str
    unit: str
    unit_price: Decimal | None = None
    explanation: str | None = None
    #: The amount before caps and discounts, when they changed it (the explanation names both).
    uncapped: Decimal | None = None
    #: The label of the pricebook version that priced the charge, and the charge's running-total key in it.
    version: str | None = None
    key: str | None = None

    @property
    def quantity(self) -> Decimal:
        """How much this event moved the meter."""
        return self.after - self.before


class EventRecord(NamedTuple):
    """A rated event as storage keeps it: the event, its billing period, readings, charges and transaction."""

    event: UsageEvent
    period: str
    usage: tuple[Usage, ...]
    charges: tuple[ChargeRecord, ...]
    transaction: Transaction


class CorrectionRecord(NamedTuple):
    """A re-rating of one event as storage keeps it: the charge records it adds and the transaction
    (``rerate:EVENT:N``) that posts the difference. Nothing stored before is edited."""

    event_id: str
    customer: str
    charges: tuple[ChargeRecord, ...]
    transaction: Transaction


class CustomerVersion(NamedTuple):
    """One version of a customer kept as data (:mod:`rating.customers`): the whole spec as canonical JSON text.

    Versions are appended, never edited: ``sequence`` counts a customer's versions from 1, ``effective`` is
    the instant the change takes effect, ``recorded_at`` when it was stored (not part of its content).
    """

    customer: str
    sequence: int
    effective: dt.datetime
    spec: str
    recorded_at: dt.datetime

    def same_content(self, other: CustomerVersion) -> bool:
        """Whether ``other`` is this version again (a replay), whenever it was recorded."""
        return (self.customer, self.sequence, self.effective, self.spec) == (
            other.customer,
            other.sequence,
            other.effective,
            other.spec,
        )


class ApiKeyRecord(NamedTuple):
    """One API key kept in the database (:mod:`rating.apikeys`): never the key, only its SHA-256 (hex).

    ``scopes`` are the scope names (``read``, ``write``, ``admin``); ``revoked_at`` is None while the key is
    valid and the instant it was revoked after.
    """

    name: str
    sha256: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class IdempotentRequest(NamedTuple):
    """A POST made under an ``Idempotency-Key`` (:mod:`rating.server.idempotency`), and its first answer.

    ``owner`` scopes the key (the SHA-256 of the API key that made the request); ``fingerprint`` is the hash
    of the request (method, path, query, body) a retry must repeat. ``status`` and ``body`` are None while the
    first request is still being answered (since ``started_at``).
    """

    owner: str
    key: str
    fingerprint: str
    started_at: dt.datetime
    status: int | None = None
    media_type: str | None = None
    body: str | None = None


class OutboxMessage(NamedTuple):
    """A webhook message announcing a change (:mod:`rating.outbox`), written in the same storage write as the change.

    ``id`` is the message's ``webhook-id`` (one per change: the same change announced again is skipped),
    ``payload`` the JSON body exactly as it is sent (``type``, ``timestamp``, ``data``).
    """

    id: str
    type: str
    payload: str
    created: dt.datetime


class DeliveryRecord(NamedTuple):
    """One line of the append-only delivery log: a claim, an attempt's outcome or a replay of one message to one
    webhook endpoint (:mod:`rating.webhooks`). A pair's state is its log read in order; nothing is updated."""

    message: str
    endpoint: str
    #: ``claimed`` (a worker holds the pair until ``until``), ``delivered``, ``failed`` (retry from ``until``),
    #: ``gave_up`` (attempts exhausted) or ``replayed`` (deliver again, attempts counted afresh).
    state: str
    attempt: int
    at: dt.datetime
    until: dt.datetime | None
    #: The HTTP status or the error, for the log.
    detail: str
    worker: str


class WebhookEndpoint(NamedTuple):
    """One version of a webhook endpoint: where to send, the secrets that sign (several during a rotation), which
    event types (empty: all). Versions are appended; removing an endpoint appends an inactive version."""

    id: str
    version: int
    url: str
    secrets: tuple[str, ...]
    events: tuple[str, ...]
    active: bool
    recorded_at: dt.datetime
