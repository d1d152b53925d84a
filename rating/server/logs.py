"""Structured request logs: one JSON line per request on the ``rating.server`` logger, with a request id.

The id is the caller's ``X-Request-Id`` when it sends a sensible one (up to 128 characters of letters, digits and
``-_.:``), else a new one; it is answered in the ``X-Request-Id`` header, so a client and the log can be matched.
The line names the route template (never the raw path, which holds customer ids), the status and the time taken.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG = logging.getLogger("rating.server")
_SENSIBLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestLogMiddleware:
    """Gives every request an id, answers it in ``X-Request-Id`` and logs the request as one JSON line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SENSIBLE.fullmatch(given) else uuid.uuid4().hex
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            line = {
                "request_id": request_id,
                "method": scope.get("method", ""),
                "route": getattr(scope.get("route"), "path", None) or "unmatched",
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            }
            LOG.info(json.dumps(line))


def install(app: FastAPI) -> None:
    """Add the request log middleware to ``app``."""
    app.add_middleware(RequestLogMiddleware)
