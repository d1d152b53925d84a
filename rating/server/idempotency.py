"""``Idempotency-Key`` on every POST: a retry with the same key and the same request gets the first answer.

The first request under a key claims it in the database (:meth:`~rating.storage.Storage.claim_idempotent`)
before it runs, and its answer (status, media type, body) is stored before it is sent: a retry that reaches
any server process on the same database is answered with it, marked ``Idempotent-Replayed: true``, and
nothing runs again. Keys are scoped per API key (by the SHA-256 of the key that made the request), so two
clients never see each other's answers. The same key with another request (method, path, query or body) is
422 ``idempotency_conflict``; a retry while the first request still runs is 409 ``idempotency_in_progress``
(a claim unanswered for :data:`STALE_AFTER` is taken as its process gone, and the retry runs). Answers of
5xx (the database unavailable, a crash) are not kept: their retry runs again, safely, since every write of
the library is idempotent by its id. Keys are kept :data:`RETENTION` (24 hours) from their first request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rating.records import IdempotentRequest
from rating.server.ledger import Ledger

LOG = logging.getLogger("rating.server")
#: The request header, and the response header a replayed answer carries.
HEADER, REPLAYED = "idempotency-key", "idempotent-replayed"
#: How long a claimed key waits for its first request's answer before a retry may run instead.
STALE_AFTER = dt.timedelta(minutes=5)
#: How long a key and its answer are kept: the server's background pass drops older ones
#: (:func:`rating.server.outbox.purge`), after which the same key runs afresh (safely: every write of the
#: library is idempotent by its id, so a late retry of a posted event is still answered ``duplicate``).
RETENTION = dt.timedelta(hours=24)
#: What a key may be: visible ASCII, 1 to 255 characters (UUIDs, ULIDs, a client's own ids).
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: Where a claimed request waits for its answer to be kept (in the request's ASGI state).
_CLAIM = "rating.idempotency"


class Replay(Exception):
    """The request was answered before: answer it again with ``stored``."""

    def __init__(self, stored: IdempotentRequest) -> None:
        super().__init__(stored.key)
        self.stored = stored


class Refused(Exception):
    """The request cannot run under its key: HTTP ``status`` with ``code`` (raised as the app's ApiError)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def fingerprint(request: Request, body: bytes) -> str:
    """The hash of what a retry must repeat: the method, the path, the query and the body."""
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode("utf-8") + b"\n")
    digest.update(body)
    return digest.hexdigest()


async def begin(request: Request, body: bytes, ledger: Ledger, owner: str) -> None:
    """Claim the request's ``Idempotency-Key`` (if it has one) for ``owner`` before the route runs: raise
    :class:`Replay` for an answered retry, :class:`Refused` for a conflict or a retry too early."""
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST":
        return
    if not _KEY.fullmatch(key):
        raise Refused(422, "invalid_request", "Idempotency-Key: 1 to 255 visible ASCII characters")
    now = dt.datetime.now(dt.UTC)  # the wall clock: a claim's age is about processes, not about rating time
    claim = IdempotentRequest(owner, key, fingerprint(request, body), now)
    stored = await ledger.run(lambda led: led.storage.claim_idempotent(claim, stale_before=now - STALE_AFTER))
    if stored is None:
        request.scope.setdefault("state", {})[_CLAIM] = (ledger, claim)
        return
    if stored.fingerprint != claim.fingerprint:
        raise Refused(422, "idempotency_conflict", f"Idempotency-Key {key!r} was used for another request")
    if stored.status is None:
        raise Refused(409, "idempotency_in_progress", f"the request of Idempotency-Key {key!r} is still running")
    raise Replay(stored)


class IdempotencyMiddleware:
    """Keeps the answer of every request that claimed its key (:func:`begin`) before sending it; drops the
    claim of a request answered 5xx or failing, so that its retry runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        start: Message | None = None
        chunks: list[bytes] = []

        async def sending(message: Message) -> None:
            nonlocal start
            if _CLAIM not in state:
                await send(message)
            elif message["type"] == "http.response.start":
                start = message  # held back with the body until the answer is kept
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    assert start is not None  # ASGI sends the start first
                    try:
                        await _keep(state.pop(_CLAIM), start, b"".join(chunks))
                    except Exception:  # the work is done: answer it; the claim goes stale and a retry runs again
                        LOG.exception("the answer of an idempotent request was not kept")
                    await send(start)
                    await send({"type": "http.response.body", "body": b"".join(chunks)})

        try:
            await self.app(scope, receive, sending)
        finally:
            claimed = state.pop(_CLAIM, None)
            if claimed is not None:  # the app failed before answering in full: a retry must run
                ledger, claim = claimed
                await ledger.run(lambda led: led.storage.release_idempotent(claim.owner, claim.key))


async def _keep(claimed: tuple[Ledger, IdempotentRequest], start: Message, body: bytes) -> None:
    """Store the answer of a claimed request (or drop the claim of a 5xx answer, or of a body that is not text)."""
    ledger, claim = claimed
    status = int(start["status"])
    media_type = next((v.decode("latin-1") for k, v in start.get("headers", []) if k.lower() == b"content-type"), None)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if status >= 500 or text is None:
        await ledger.run(lambda led: led.storage.release_idempotent(claim.owner, claim.key))
        return
    answered = claim._replace(status=status, media_type=media_type, body=text)
    await ledger.run(lambda led: led.storage.answer_idempotent(answered))
