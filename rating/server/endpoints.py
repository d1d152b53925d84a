"""``/v1/webhook-endpoints``: the webhook endpoints of :mod:`rating.webhooks`, managed over HTTP (scope ``admin``).

The same operations as ``rating webhooks add|list|remove``. A secret is shown once, in the answer that created it
(when the request gave none, one is made); listing never shows a secret, only how many an endpoint has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from rating.errors import WebhookError
from rating.records import WebhookEndpoint
from rating.refusals import WebhookRefusal
from rating.server.ledger import Ledger
from rating.webhooks import add_endpoint, endpoints, new_secret, remove_endpoint

Guard = Callable[[str], Callable[[Request], Awaitable[None]]]
JsonBody = Callable[[Request], Awaitable[dict[str, Any]]]


def shown(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secrets."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "secrets": len(endpoint.secrets),
        "version": endpoint.version,
        "active": endpoint.active,
    }


def install(app: FastAPI, ledger: Ledger, needs: Guard, body_of: JsonBody) -> None:
    """Add the webhook endpoint routes (scope ``admin``) to ``app``."""
    admin = [Depends(needs("admin"))]

    @app.post("/v1/webhook-endpoints", dependencies=admin, status_code=201)
    async def add(request: Request) -> JSONResponse:
        """Add an endpoint: ``{"url", "events": [...] (none: all), "secrets": [...] (none: one is made), "id"
        (an existing one's: replace its URL, secrets and events, as a rotation does)}``."""
        body = await body_of(request)
        url, events, secrets, id = body.get("url"), body.get("events", []), body.get("secrets") or [], body.get("id")
        made = not secrets
        if not isinstance(url, str) or not _strings(events) or not (made or _strings(secrets)):
            raise WebhookError(
                WebhookRefusal.INVALID_ENDPOINT, "give url (text), and events and secrets as lists of text"
            )
        given = [new_secret()] if made else list(secrets)
        endpoint = await ledger.run(
            lambda led: add_endpoint(led.storage, url, given, events, id=id if isinstance(id, str) else None)
        )
        answer = shown(endpoint) | ({"secret": given[0]} if made else {})  # the made secret, this once
        return JSONResponse(answer, status_code=201)

    @app.get("/v1/webhook-endpoints", dependencies=admin)
    async def listed() -> JSONResponse:
        """Every active endpoint, without its secrets."""
        found = await ledger.run(lambda led: endpoints(led.storage))
        return JSONResponse({"webhook_endpoints": [shown(endpoint) for endpoint in found]})

    @app.delete("/v1/webhook-endpoints/{id}", dependencies=admin)
    async def remove(id: str) -> JSONResponse:
        """Remove an endpoint (its delivery log stays)."""
        return JSONResponse(shown(await ledger.run(lambda led: remove_endpoint(led.storage, id))))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
