"""Webhooks out: endpoints, and delivery of the outbox (:mod:`rating.outbox`) signed per Standard Webhooks.

- **Endpoints** (:func:`add_endpoint`, :func:`remove_endpoint`, :func:`endpoints`) are versioned rows: a URL,
  the secrets that sign (``whsec_...``; several at once during a rotation: every delivery carries one
  signature per secret, so a receiver holding either verifies it) and the event types it wants (none: all).
  An endpoint receives the messages written after it was added.
- **Delivery** (:func:`deliver`) is at least once: each pending (message, endpoint) pair is first *claimed*
  in the delivery log under the storage's global write scope, with a lease, so several servers delivering
  side by side never send the same pair at the same time. A worker that dies leaves its lease to run out;
  one on this host whose process is gone (``kill -9``, a crash: its claims name it ``host:pid``) is known
  dead at once, so a server restarted on the same host sends what its predecessor had claimed at its first
  pass instead of after :data:`LEASE`;
  then sent outside any write (an HTTP call never holds the ledger's lock), and its outcome appended:
  ``delivered`` on a 2xx, else ``failed`` with the time of the next attempt (exponential backoff), and
  ``gave_up`` after :data:`MAX_ATTEMPTS`. :func:`replay` appends ``replayed``: the pair is sent again, its
  attempts counted afresh. The log is append-only: a pair's state is its lines read in order.
- **Signing** uses the ``standardwebhooks`` library (the ``server`` extra): headers ``webhook-id`` (the
  outbox id, the same on every attempt and replay: receivers deduplicate by it), ``webhook-timestamp`` (when
  sent) and ``webhook-signature``; the body is the stored payload, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets as random
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rating.distribution import install_hint
from rating.errors import RatingError, WebhookError
from rating.outbox import EVENT_TYPES
from rating.records import DeliveryRecord, OutboxMessage, WebhookEndpoint
from rating.refusals import WebhookRefusal
from rating.storage import Storage

#: Attempts of one message to one endpoint before the log says ``gave_up`` (a replay starts again).
MAX_ATTEMPTS = 8
#: The wait after the first failed attempt; doubled after each further one, up to :data:`MAX_BACKOFF`.
FIRST_BACKOFF = dt.timedelta(seconds=10)
MAX_BACKOFF = dt.timedelta(hours=1)
#: How long a claim holds a pair: longer than one send may take (its timeout), so no two workers overlap.
LEASE = dt.timedelta(seconds=60)
#: Seconds between two background delivery passes of a server (``rating serve --webhook-interval``).
INTERVAL = 5.0
#: How long one HTTP send may take.
TIMEOUT = 10.0

#: Sends one delivery: (url, headers, body) to the HTTP status, or raises OSError when nothing answered.
Sender = Callable[[str, dict[str, str], bytes], int]


def _webhook_class() -> type:
    try:
        from standardwebhooks import Webhook
    except ImportError:  # pragma: no cover - the server extra brings it
        raise RatingError(f"webhooks need the server extra: {install_hint('server')}") from None
    return Webhook


def check_secret(secret: str) -> None:
    """Refuse a secret Standard Webhooks cannot sign with (``whsec_`` and base64, at least 24 bytes)."""
    try:
        key = _webhook_class()(secret)._whsecret
    except Exception as error:  # the library raises several kinds (binascii.Error, its own)
        raise WebhookError(
            WebhookRefusal.INVALID_SECRET, f"not a webhook secret (whsec_ and base64): {error}"
        ) from None
    if len(key) < 24:
        raise WebhookError(
            WebhookRefusal.INVALID_SECRET, f"a webhook secret needs at least 24 random bytes, this one has {len(key)}"
        )


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and 32 random bytes in base64."""
    import base64

    return "whsec_" + base64.b64encode(random.token_bytes(32)).decode()


def sign(message: OutboxMessage, secrets: Sequence[str], at: dt.datetime) -> dict[str, str]:
    """The headers of one delivery of ``message`` sent at ``at``: one ``v1`` signature per secret."""
    webhook = _webhook_class()
    signatures = " ".join(webhook(s).sign(message.id, at, message.payload) for s in secrets)
    return {
        "content-type": "application/json",
        "webhook-id": message.id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


# -- endpoints -----------------------------------------------------------------------------------------------


def endpoints(storage: Storage, *, removed: bool = False) -> list[WebhookEndpoint]:
    """The latest version of every endpoint (removed ones too with ``removed``), by id."""
    latest: dict[str, WebhookEndpoint] = {}
    for version in storage.webhook_endpoint_versions():
        latest[version.id] = version
    return [e for _, e in sorted(latest.items()) if removed or e.active]


def _first_added(storage: Storage) -> dict[str, dt.datetime]:
    """When each endpoint was first added: it receives the messages written from then on."""
    first: dict[str, dt.datetime] = {}
    for version in storage.webhook_endpoint_versions():
        first.setdefault(version.id, version.recorded_at)
    return first


def add_endpoint(
    storage: Storage,
    url: str,
    secrets: Sequence[str],
    events: Iterable[str] = (),
    *,
    id: str | None = None,
    at: dt.datetime | None = None,
) -> WebhookEndpoint:
    """Add an endpoint (or, with the ``id`` of one, replace its URL, secrets and events: a secret rotation is
    the new secret and the old one together, then the new one alone)."""
    if not url.startswith(("https://", "http://")):
        raise WebhookError(WebhookRefusal.INVALID_ENDPOINT, f"a webhook URL is http:// or https://, not {url!r}")
    if not secrets:
        raise WebhookError(WebhookRefusal.INVALID_SECRET, "a webhook endpoint needs at least one secret")
    for secret in secrets:
        check_secret(secret)
    wanted = tuple(dict.fromkeys(events))
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if unknown:
        raise WebhookError(
            WebhookRefusal.INVALID_ENDPOINT, f"unknown event types {unknown}: choose among {list(EVENT_TYPES)}"
        )
    with storage.writing():
        known = {e.id: e for e in endpoints(storage, removed=True)}
        if id is not None and id not in known:
            raise WebhookError(WebhookRefusal.UNKNOWN_ENDPOINT, f"no webhook endpoint {id!r}")
        endpoint_id = id or f"ep_{random.token_hex(8)}"
        version = known[endpoint_id].version + 1 if endpoint_id in known else 1
        endpoint = WebhookEndpoint(
            endpoint_id, version, url, tuple(secrets), wanted, True, at or dt.datetime.now(dt.UTC)
        )
        storage.append_webhook_endpoint(endpoint)
    return endpoint


def remove_endpoint(storage: Storage, id: str, at: dt.datetime | None = None) -> WebhookEndpoint:
    """Remove endpoint ``id`` (an inactive version: its delivery log stays)."""
    with storage.writing():
        known = {e.id: e for e in endpoints(storage)}
        if id not in known:
            raise WebhookError(WebhookRefusal.UNKNOWN_ENDPOINT, f"no webhook endpoint {id!r}")
        gone = known[id]._replace(version=known[id].version + 1, active=False, recorded_at=at or _now())
        storage.append_webhook_endpoint(gone)
    return gone


# -- delivery ------------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff(attempt: int) -> dt.timedelta:
    """The wait after failed attempt number ``attempt`` (from 1)."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class PairState:
    """Where one message stands with one endpoint, read from its delivery log."""

    done: bool
    #: Attempts since the last replay.
    attempts: int
    #: Not before this instant (a lease held by a worker, or the backoff after a failure); None: now.
    not_before: dt.datetime | None
    #: The worker whose claim holds the pair (its lease in ``not_before``); "" when no claim holds it.
    holder: str = ""


def pair_state(log: Sequence[DeliveryRecord]) -> PairState:
    """The state a pair's log lines (in order) leave."""
    done, attempts, not_before, holder = False, 0, None, ""
    for line in log:
        if line.state == "replayed":
            done, attempts, not_before, holder = False, 0, None, ""
        elif line.state == "claimed":
            not_before, holder = line.until, line.worker
        elif line.state == "failed":
            attempts, not_before, holder = line.attempt, line.until, ""
        elif line.state in ("delivered", "gave_up"):
            done, attempts, not_before, holder = True, line.attempt, None, ""
    return PairState(done, attempts, not_before, holder)


def worker_id() -> str:
    """This process's name in the delivery log: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_gone(worker: str) -> bool:
    """Whether ``worker`` (``host:pid``) was a process on this host that no longer runs: its claims hold nothing.

    Only a worker of this host is known gone (another host's waits out its lease), never this process (two
    deliverers in one process share its name), and only where a process can be probed without harm (POSIX);
    a pid reused since is taken as alive, which only waits out the lease."""
    host, _, pid = worker.rpartition(":")
    if os.name != "posix" or host != socket.gethostname() or not pid.isdigit() or int(pid) in (0, os.getpid()):
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists under another user (PermissionError), or cannot be probed: alive
        return False
    return False


@dataclass
class DeliveryReport:
    """What one :func:`deliver` pass did, per (message, endpoint)."""

    delivered: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    gave_up: list[tuple[str, str]] = field(default_factory=list)


def _matches(endpoint: WebhookEndpoint, message: OutboxMessage, since: dt.datetime) -> bool:
    return message.created >= since and (not endpoint.events or message.type in endpoint.events)


def claim(
    storage: Storage, *, now: dt.datetime | None = None, worker: str = "", limit: int = 100
) -> list[tuple[OutboxMessage, WebhookEndpoint, int]]:
    """Claim up to ``limit`` due pairs for ``worker``, with a lease, in one global write: (message, endpoint,
    attempt). Another worker's claim in force (unless that worker :func:`is_gone`), a delivered pair and one
    waiting out its backoff are left."""
    at = now or _now()
    claimed = []
    with storage.writing():
        active = endpoints(storage)
        if not active:
            return []
        since = _first_added(storage)
        messages = storage.outbox()
        gone: dict[str, bool] = {}
        logs: dict[tuple[str, str], list[DeliveryRecord]] = {}
        for line in storage.deliveries(m.id for m in messages):
            logs.setdefault((line.message, line.endpoint), []).append(line)
        lines = []
        for message in messages:
            for endpoint in active:
                if not _matches(endpoint, message, since[endpoint.id]):
                    continue
                state = pair_state(logs.get((message.id, endpoint.id), []))
                waiting = state.not_before is not None and state.not_before > at
                if state.done or (waiting and not (state.holder and _gone(state.holder, gone))):
                    continue
                attempt = state.attempts + 1
                lines.append(DeliveryRecord(message.id, endpoint.id, "claimed", attempt, at, at + LEASE, "", worker))
                claimed.append((message, endpoint, attempt))
                if len(claimed) >= limit:
                    break
            if len(claimed) >= limit:
                break
        storage.log_deliveries(lines)
    return claimed


def _gone(worker: str, known: dict[str, bool]) -> bool:
    """:func:`is_gone`, probed once per worker and pass."""
    if worker not in known:
        known[worker] = is_gone(worker)
    return known[worker]


def send_http(url: str, headers: dict[str, str], body: bytes) -> int:
    """POST ``body`` to ``url``: the HTTP status (an error status too); OSError when nothing answered."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def deliver(
    storage: Storage,
    *,
    send: Sender = send_http,
    now: dt.datetime | None = None,
    worker: str | None = None,
    limit: int = 100,
) -> DeliveryReport:
    """One delivery pass: claim what is due (:func:`claim`), send each signed, log each outcome. Safe to run
    in several processes at once; a pair is sent again only after its lease ran out or its backoff passed."""
    who = worker or worker_id()
    at = now or _now()
    report = DeliveryReport()
    for message, endpoint, attempt in claim(storage, now=at, worker=who, limit=limit):
        try:
            status = send(endpoint.url, sign(message, endpoint.secrets, _now()), message.payload.encode())
            detail, ok = str(status), 200 <= status < 300
        except OSError as error:  # refused, unreachable, timed out: nothing answered
            detail, ok = f"{type(error).__name__}: {error}"[:500], False
        if ok:
            line = DeliveryRecord(message.id, endpoint.id, "delivered", attempt, _now(), None, detail, who)
            report.delivered.append((message.id, endpoint.id))
        elif attempt >= MAX_ATTEMPTS:
            line = DeliveryRecord(message.id, endpoint.id, "gave_up", attempt, _now(), None, detail, who)
            report.gave_up.append((message.id, endpoint.id))
        else:
            retry = at + backoff(attempt)
            line = DeliveryRecord(message.id, endpoint.id, "failed", attempt, _now(), retry, detail, who)
            report.failed.append((message.id, endpoint.id, detail))
        storage.log_deliveries([line])
    return report


def outbox_depth(storage: Storage) -> dict[str, int]:
    """Per active endpoint (by id): the messages it should receive that are not delivered to it yet (not sent,
    waiting to be retried, given up, or replayed since delivered). One count query per endpoint on SQL storage."""
    since = _first_added(storage)
    return {e.id: storage.undelivered(e.id, since[e.id], e.events) for e in endpoints(storage)}


def replay(storage: Storage, message_id: str, endpoint: str | None = None, *, worker: str = "") -> list[str]:
    """Deliver ``message_id`` again (to ``endpoint``, or to every active endpoint it matches): the endpoints
    it will go to at the next :func:`deliver`, with the same ``webhook-id``."""
    with storage.writing():
        found = storage.outbox([message_id])
        if not found:
            raise WebhookError(WebhookRefusal.UNKNOWN_MESSAGE, f"no outbox message {message_id!r}")
        since = _first_added(storage)
        targets = [
            e
            for e in endpoints(storage)
            if (endpoint is None and _matches(e, found[0], since[e.id])) or e.id == endpoint
        ]
        if endpoint is not None and not targets:
            raise WebhookError(WebhookRefusal.UNKNOWN_ENDPOINT, f"no webhook endpoint {endpoint!r}")
        at = _now()
        storage.log_deliveries([DeliveryRecord(message_id, e.id, "replayed", 0, at, None, "", worker) for e in targets])
    return [e.id for e in targets]
