"""``GET /metrics``: the service's Prometheus metrics (``prometheus-client``, in the ``server`` extra).

Each app keeps its metrics in its own registry, never the library's global one: an embedder may
mount several apps in one process, and each counts only its own requests. A process counts its
own requests; with ``rating serve --workers N`` a scrape reaches one worker, so scrape each
process (or run one worker per container), as Prometheus expects of any multi-process server.

- ``rating_http_requests_total{method, route, status}``: requests by route template (never the raw
  path, whose ids would make a series per customer) and status;
- ``rating_http_request_duration_seconds{method, route}``: a latency histogram;
- ``rating_events_total{status, code}``: events sent to ``POST /v1/events`` and ``/v1/events/batch``
  by outcome (``accepted``, ``duplicate``, ``rejected``) and, when rejected, the refusal code;
- ``rating_webhook_outbox_depth{endpoint}``: per active webhook endpoint (its id, never its URL), the
  outbox messages not yet delivered to it (not sent, waiting to be retried, given up, or replayed since
  delivered; :func:`rating.webhooks.outbox_depth`). Read from the database at each scrape, one count
  query per endpoint, so every process reports the same figure (not a sum across workers). A database
  that cannot be read leaves the gauge out of that scrape rather than failing it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rating.webhooks import outbox_depth

LOG = logging.getLogger("rating.server")

Guard = Callable[[str], Callable[[Request], Awaitable[None]]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The routes whose answers say what became of each event sent.
EVENT_ROUTES = frozenset({"/v1/events", "/v1/events/batch"})
#: Latency buckets (seconds): one event takes milliseconds, a batch of 1,000 up to a second or so.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters and histogram of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rating_http_requests", "HTTP requests by route and status", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "rating_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.events = Counter(
            "rating_events", "Events sent to the event routes, by outcome and refusal code", ["status", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.outbox_depth = Gauge(
            "rating_webhook_outbox_depth", "Webhook messages not yet delivered, per endpoint", ["endpoint"],
            registry=self.registry,
        )  # fmt: skip

    def set_outbox_depth(self, depth: dict[str, int] | None) -> None:
        """Show ``depth`` (per endpoint id; None: unknown) and nothing of endpoints gone since the last scrape."""
        self.outbox_depth.clear()
        for endpoint, count in sorted((depth or {}).items()):
            self.outbox_depth.labels(endpoint).set(count)

    def count_events(self, route: str, status: int, body: bytes) -> None:
        """Count the events of one answer of an event route, from what it answered."""
        try:
            answer = json.loads(body)
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        if route == "/v1/events/batch" and isinstance(answer.get("results"), list):
            for result in answer["results"]:
                self.events.labels(result.get("status", ""), result.get("code") or "").inc()
        elif isinstance(answer.get("error"), dict):  # one event, or a batch refused whole
            self.events.labels("rejected", str(answer["error"].get("code", ""))).inc()
        elif route == "/v1/events" and status < 300:
            self.events.labels(str(answer.get("status", "")), "").inc()


class MetricsMiddleware:
    """Counts and times every request by its route template; reads the answers of the event routes."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, chunks, replayed = 500, [], False

        async def sending(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                # An answer replayed for an Idempotency-Key: its events were counted the first time.
                replayed = any(name.lower() == b"idempotent-replayed" for name, _ in message.get("headers", []))
            elif message["type"] == "http.response.body" and _route(scope) in EVENT_ROUTES:
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route(scope)
            method = scope.get("method", "")
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, route, str(status)).inc()
            if route in EVENT_ROUTES and method == "POST" and not replayed:
                self.metrics.count_events(route, status, b"".join(chunks))


def _route(scope: Scope) -> str:
    """The template of the route that answered (set in the scope by the router once it matched), or
    ``unmatched``: never the raw path."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


def install(app: FastAPI, needs: Guard) -> None:
    """Add the metrics middleware and ``GET /metrics`` (scope ``read``) to ``app``."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", dependencies=[Depends(needs("read"))], response_class=Response)
    async def exposition() -> Response:
        """The Prometheus text exposition of this process's metrics, and the outbox depth of the database's."""
        ledger = getattr(app.state, "ledger", None)
        depth = None
        if ledger is not None:
            try:
                depth = await ledger.run(lambda led: outbox_depth(led.storage))
            except Exception as error:  # any failure to read the database: the scrape answers, without the gauge
                LOG.warning("outbox depth not read: %s", error)
        metrics.set_outbox_depth(depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
