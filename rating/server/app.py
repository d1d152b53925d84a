"""The ASGI application of ``rating serve``: :func:`create_app` builds it over one ledger.

Everything a request needs lives on the app (``app.state.ledger``, the API keys in the
route guards), never in module globals: an embedder may mount several apps, each over its
own ledger, inside its own ASGI application.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, get_args

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rating import fastread
from rating.accounts import receivable_account
from rating.apikeys import ApiKeys, allows
from rating.billing.payments import (
    MAX_PAYLOAD_BYTES,
    PaymentRejected,
    PaymentResult,
    apply_payment,
    confirm_payment,
    secrets_from_environment,
)
from rating.billing.stripe import stripe_payment, verify_stripe
from rating.engine.reports import BatchReport
from rating.errors import (
    EventConflict,
    EventError,
    InvalidAmount,
    InvoiceError,
    RatingError,
    ReservationError,
    StorageError,
    TransactionConflict,
    WebhookError,
)
from rating.events import Sourced, UsageEvent, parse_event, parse_json, read_jsonl
from rating.invoices.issue import invoices
from rating.invoices.profiles import Billing, load_billing
from rating.invoices.settle import invoice_status
from rating.money import ZERO, to_decimal
from rating.outbox import EVENT_REJECTED, message
from rating.periods import zone
from rating.pricebook.catalog import Catalog
from rating.refusals import InvoiceRefusal, PaymentRefusal, Refusal, WebhookRefusal
from rating.registry import Registry
from rating.reports.usage import usage_report, window
from rating.server import cloudevents, documents, endpoints, idempotency, logs, metrics, openapi, views
from rating.server.auth import ApiKey, digest, find_key, load_keys
from rating.server.ledger import FUTURE_TOLERANCE, Ledger
from rating.server.outbox import DeliveryWorker
from rating.storage.migrations import SCHEMA_VERSION
from rating.wallet.balances import CustomerBalance, reservation_used
from rating.wallet.wallets import GrantKind, Wallets
from rating.webhooks import INTERVAL

LOG = logging.getLogger("rating.server")
#: The most events one batch request may carry.
MAX_BATCH = 1_000

#: The most bytes a request body may have (a batch of 1,000 events of 16 KiB each).
MAX_BODY = 16 * 1024 * 1024
#: The most bytes a single event's body may have (a JSON Lines record's limit).
MAX_EVENT_BODY = 1024 * 1024


class ApiError(Exception):
    """An answer other than success: HTTP ``status``, a stable ``code`` and a message for people."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """The one shape of every error: ``{"error": {"code": ..., "message": ...}}`` (and what ``extra`` adds)."""
    return JSONResponse({"error": {"code": code, "message": message}, **extra}, status_code=status)


def _refusal_status(error: RatingError) -> tuple[int, str]:
    """The HTTP status and code of a library refusal."""
    if isinstance(error, EventConflict):
        return 409, str(error.code)
    if isinstance(error, EventError):
        return 422, str(error.code)
    if isinstance(error, ReservationError):  # the library gives these no code of their own (see the README)
        return 409, "reservation_refused"
    if isinstance(error, InvoiceError):
        return (404 if error.code == InvoiceRefusal.UNKNOWN_INVOICE else 422), str(error.code)
    if isinstance(error, WebhookError):
        return (404 if error.code == WebhookRefusal.UNKNOWN_ENDPOINT else 422), str(error.code)
    if isinstance(error, StorageError):
        return 503, error.code or "storage_unavailable"
    code = getattr(error, "code", None)
    return 422, str(code) if code else "refused"


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, the library's refusals included, answered in the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, str(error), **error.extra)

    @app.exception_handler(idempotency.Refused)
    async def not_run(_: Request, error: idempotency.Refused) -> JSONResponse:
        return error_response(error.status, error.code, str(error))

    @app.exception_handler(idempotency.Replay)
    async def replay(_: Request, answered: idempotency.Replay) -> Response:
        stored = answered.stored
        return Response(
            stored.body, status_code=stored.status or 200, media_type=stored.media_type,
            headers={idempotency.REPLAYED: "true"},
        )  # fmt: skip

    @app.exception_handler(RatingError)
    async def refused(_: Request, error: RatingError) -> JSONResponse:
        status, code = _refusal_status(error)
        return error_response(status, code, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(error.status_code, codes.get(error.status_code, "http_error"), str(error.detail))

    @app.exception_handler(Exception)
    async def internal(_: Request, error: Exception) -> JSONResponse:
        return error_response(500, "internal", f"internal error: {type(error).__name__}")


def _guard(
    keys: list[ApiKey] | None, ledger: Ledger, database: bool
) -> Callable[[str], Callable[[Request], Awaitable[None]]]:
    """Route guards by scope: ``Authorization: Bearer KEY`` must name a key holding the scope: one of the key
    file's (``keys``), or, with ``database``, a key stored in the ledger's database and not revoked (read at
    every request, so a key revoked by any process is refused at once). Neither: the embedder authenticates.
    The key found is kept as ``request.state.api_key`` (its SHA-256, hex: what idempotency keys are scoped by)."""

    def needs(scope: str) -> Callable[[Request], Awaitable[None]]:
        async def check(request: Request) -> None:
            owner = ""  # no keys: one client (the embedder's), whose idempotency keys share one scope
            if keys is not None or database:
                owner = await authenticate(request, scope)
            if request.method == "POST" and idempotency.HEADER in request.headers:
                body = await _body(request, MAX_BODY)
                request._body = body  # read once here; the route reads it again (Starlette replays a read body)
                await idempotency.begin(request, body, ledger, owner)

        return check

    async def authenticate(request: Request, scope: str) -> str:
        """The SHA-256 (hex) of the request's key, which holds ``scope``; else 401 or 403."""
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(401, "unauthenticated", "send an API key: Authorization: Bearer KEY")
        name, scopes = await _key_of(presented, keys, ledger, database)
        if scopes is None:
            raise ApiError(401, "unauthenticated", "the API key is not known (or was revoked)")
        if not allows(scopes, scope):
            raise ApiError(403, "forbidden", f"the API key {name!r} lacks the {scope!r} scope")
        request.state.api_key = digest(presented).hex()
        return str(request.state.api_key)

    return needs


async def _key_of(
    presented: str, keys: list[ApiKey] | None, ledger: Ledger, database: bool
) -> tuple[str, frozenset[str] | None]:
    """The name and scopes of the key ``presented`` (the key file's first, then the database's), or no scopes."""
    found = find_key(keys, presented) if keys else None
    if found is not None:
        return found.name, found.scopes
    if database:
        stored = await ledger.run(lambda led: ApiKeys(led.storage).find(presented))
        if stored is not None:
            return stored.name, frozenset(stored.scopes)
    return "", None


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body is larger than {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body is larger than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _event(request: Request) -> UsageEvent:
    """The one event of a request body, decoded as a JSON Lines record is (the same checks and refusal codes)."""
    body = await _body(request, MAX_EVENT_BODY)
    if cloudevents.media_type(request.headers.get("content-type", "")) == cloudevents.SINGLE:
        return cloudevents.read_single(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError(Refusal.INVALID_RECORD, "the body is not UTF-8") from None
    return fastread.parse_line(text)


def _batch_records(body: bytes, content_type: str) -> list[Sourced]:
    """The records of a batch body: a JSON array of events (``application/json``) or JSON Lines (anything else),
    each located by its index in the batch; or a JSON array of CloudEvents (``application/cloudevents-batch+json``)."""
    kind = cloudevents.media_type(content_type)
    if kind in ("application/json", cloudevents.BATCH):
        items = parse_json(body)  # not JSON: EventError, invalid_record
        if not isinstance(items, list):
            raise ApiError(422, "invalid_request", "a batch is a JSON array of events (or JSON Lines)")
        records = []
        for item in items:
            if kind == cloudevents.BATCH:
                records.append(cloudevents.record(item))
                continue
            try:
                records.append(Sourced("", event=parse_event(item)))
            except EventError as error:
                records.append(Sourced("", error=str(error)))
    else:
        records = list(read_jsonl(io.BytesIO(body), "batch"))
    return [Sourced(str(index), record.event, record.error, record.size) for index, record in enumerate(records)]


def _batch_results(records: list[Sourced], report: BatchReport, before: dict[str, UsageEvent]) -> list[dict[str, Any]]:
    """Each record's status: accepted, duplicate (its id already rated with the same content, before or earlier
    in the batch) or rejected with its code and reason."""
    rejected = {rejection.location: rejection for rejection in report.rejected}
    seen = dict(before)
    results = []
    for record in records:
        refusal = rejected.get(record.location)
        result: dict[str, Any] = {"index": int(record.location), "id": record.event.id if record.event else None}
        if refusal is not None:
            result.update(status="rejected", code=str(refusal.code), reason=refusal.reason)
        else:
            assert record.event is not None  # only events are posted or found again
            earlier = seen.get(record.event.id)
            result["status"] = "duplicate" if earlier is not None else "accepted"
            seen[record.event.id] = record.event
        results.append(result)
    return results


def _announce_rejected(ledger: Ledger, refused: Sequence[tuple[str | None, str, str]]) -> None:
    """``event.rejected`` for each refused event (id or None, code, reason): best effort, in a write of its own (a
    refusal writes nothing else to ride with); the same event refused again for the same reason is announced once."""
    at = ledger.clock()
    messages = [
        message(EVENT_REJECTED, f"{id}:{code}" if id else f"{code}:{at.isoformat()}:{n}", {"id": id, "code": code,
                "reason": reason}, at)
        for n, (id, code, reason) in enumerate(refused)
    ]  # fmt: skip
    try:
        with ledger.storage.writing():
            ledger.storage.announce(messages)
    except (RatingError, NotImplementedError) as error:  # best effort: the answer to the caller stands
        LOG.warning("event.rejected not announced: %s", error)


def _customer_balances(ledger: Ledger, wallets: Wallets, customer: str) -> list[CustomerBalance]:
    """:func:`rating.wallet.balances.customer_balances` by the ledger's clock (that function reads grants in force
    by the wall clock; it takes no clock of its own)."""
    funds = wallets.balance(customer)
    owed = {asset: amount for (_, asset), amount in ledger.storage.balances([receivable_account(customer)]).items()}
    rows = []
    for asset in sorted(set(funds) | set(owed)):
        wallet = funds.get(asset)
        held = (wallet.available, wallet.reserved, wallet.posted) if wallet else (ZERO, ZERO, ZERO)
        rows.append(CustomerBalance(asset, *held, owed=owed.get(asset, ZERO)))
    return rows


def create_app(
    db: str,
    pricebooks: Sequence[str | Path] | Catalog,
    *,
    api_keys: list[ApiKey] | str | Path | None = None,
    database_keys: bool = False,
    registry: Registry | None = None,
    create: bool = False,
    future_tolerance: dt.timedelta | None = FUTURE_TOLERANCE,
    clock: Callable[[], dt.datetime] | None = None,
    payment_secrets: Sequence[bytes] = (),
    stripe_secrets: Sequence[str] = (),
    webhook_interval: float | None = None,
    billing: Billing | str | Path | None = None,
) -> FastAPI:
    """The service over the ledger at ``db`` rated by ``pricebooks`` (files or directories of versions, or a
    :class:`~rating.pricebook.catalog.Catalog`).

    ``api_keys``: the keys (or the path of their file, see :mod:`rating.server.auth`) every route but the
    health checks requires; ``database_keys``: the keys stored in the database (``rating apikey create``) are
    accepted too, as ``rating serve`` does; neither leaves authentication to the embedder. ``create``: create
    (and migrate) a missing database; by default only an existing one is opened, so a typo never starts a fresh ledger.
    Events stamped more than ``future_tolerance`` ahead are refused. The pricebooks are loaded now (a bad
    one raises here); the database is opened at the first request that needs it. ``payment_secrets`` verify
    the signed confirmations of ``POST /v1/payments`` and ``stripe_secrets`` (``whsec_...``) the webhooks of
    ``POST /v1/webhooks/stripe``; several while one is rotated, none: those routes refuse (``no_secret``).
    ``webhook_interval``: deliver the outbox's webhooks every so many seconds in the background while the app
    runs (its lifespan; :mod:`rating.server.outbox`); None: left to ``rating webhooks deliver`` or another server.
    ``billing``: the billing file (or its path, loaded now: a bad one raises here), as ``rating invoice --billing``
    takes it; kept as ``app.state.billing``. The documents rendered (invoice and statement PDFs) draw with the font
    files it names (``fonts:``); without it, with the shipped DejaVu Sans alone.
    """
    keys = load_keys(api_keys) if isinstance(api_keys, str | Path) else api_keys
    billed = load_billing(billing) if isinstance(billing, str | Path) else billing
    ledger = Ledger(
        db,
        pricebooks,
        registry,
        create=create,
        future_tolerance=future_tolerance,
        **({"clock": clock} if clock is not None else {}),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = None
        if webhook_interval is not None:
            worker = DeliveryWorker(db, ledger.registry, webhook_interval)
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        ledger.close()

    app = FastAPI(
        title="rating",
        summary="Rate metered usage into exact ledger postings, over HTTP.",
        version="1",
        lifespan=lifespan,
    )
    app.state.ledger = ledger
    app.state.billing = billed
    _install_error_handlers(app)
    needs = _guard(keys, ledger, database_keys)
    _health_routes(app, ledger)
    _event_routes(app, ledger, needs)
    _request_routes(app, ledger, needs)
    _reading_routes(app, ledger, needs)
    _payment_routes(app, ledger, needs, list(payment_secrets), list(stripe_secrets))
    _customer_routes(app, ledger, needs)
    _grant_routes(app, ledger, needs)
    documents.install(app, ledger, needs)
    endpoints.install(app, ledger, needs, _json_object)
    logs.install(app)
    metrics.install(app, needs)
    app.add_middleware(idempotency.IdempotencyMiddleware)  # around the metrics: they see a replay as answered
    openapi.describe(app)  # last: it documents the routes added above
    return app


Guard = Callable[[str], Callable[[Request], Awaitable[None]]]


def _health_routes(app: FastAPI, ledger: Ledger) -> None:
    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The database is reachable and its schema is the one this server reads")
    async def readyz() -> JSONResponse:
        try:
            version = await ledger.run(_schema_version)
        except Exception as error:  # any failure to reach the database means not ready, never a 500
            code = getattr(error, "code", None) or "not_ready"
            return error_response(503, str(code), f"the database is not ready: {error}")
        if version is not None and version != SCHEMA_VERSION:  # migrated by another rating since this one opened it
            code = "schema_outdated" if version < SCHEMA_VERSION else "schema_newer"
            message = f"the database's schema is at version {version}, this server reads {SCHEMA_VERSION}"
            return error_response(503, code, f"{message}: run rating db migrate, or upgrade rating")
        return JSONResponse({"status": "ready"})


def _schema_version(ledger: Ledger) -> int | None:
    """The schema version the database says it is at, read now (None for a storage without one, such as
    memory); reaching the database at all is part of the check."""
    storage = ledger.storage
    storage.closed_periods([("readyz", "probe")])
    version = getattr(storage, "schema_version", None)
    return int(version()) if callable(version) else None


def _event_routes(app: FastAPI, ledger: Ledger, needs: Guard) -> None:
    write = [Depends(needs("write"))]

    @app.post("/v1/events", dependencies=write, summary="Rate and post one event", status_code=201)
    async def post_event(request: Request) -> JSONResponse:
        event = await _event(request)
        try:
            rating = await ledger.run(lambda led: led.engine.rate(event))
        except EventError as refused:
            said = [(event.id, str(refused.code), str(refused))]
            await ledger.run(lambda led: _announce_rejected(led, said))
            raise
        if rating is None:  # already posted with the same content: a replay
            return JSONResponse({"id": event.id, "status": "duplicate"}, status_code=200)
        return JSONResponse(views.rated(rating, "accepted"), status_code=201)

    @app.post("/v1/events/batch", dependencies=write, summary="Rate and post up to 1,000 events")
    async def post_batch(request: Request, strict: bool = False) -> JSONResponse:
        records = _batch_records(await _body(request, MAX_BODY), request.headers.get("content-type", ""))
        if len(records) > MAX_BATCH:
            raise ApiError(413, "batch_too_large", f"a batch holds at most {MAX_BATCH:,} events, got {len(records):,}")

        def post(led: Ledger) -> tuple[BatchReport, dict[str, UsageEvent]]:
            ids = [record.event.id for record in records if record.event is not None]
            before = led.storage.rated_events(ids) if ids else {}
            return led.engine.rate_batch(records, strict=strict), before

        report, before = await ledger.run(post)
        results = _batch_results(records, report, before)
        rejected = [(r.get("id"), r["code"], r["reason"]) for r in results if r["status"] == "rejected"]
        if rejected:
            await ledger.run(lambda led: _announce_rejected(led, rejected))
        counts = {
            status: sum(result["status"] == status for result in results)
            for status in ("accepted", "duplicate", "rejected")
        }
        if strict and report.rejected:
            for result in results:
                if result["status"] != "rejected":
                    result["status"] = "not_posted"
            first = report.rejected[0]
            message = f"strict: nothing posted; {len(report.rejected):,} rejected, the first (index {first.location})"
            raise ApiError(422, str(first.code), f"{message}: {first.reason}", results=results)
        return JSONResponse({**counts, "results": results})

    @app.post("/v1/quote", dependencies=write, summary="Price one event without posting it")
    async def quote(request: Request) -> JSONResponse:
        event = await _event(request)
        rating = await ledger.run(lambda led: led.engine.quote(event))
        return JSONResponse(views.rated(rating, "quoted"))


def _request_routes(app: FastAPI, ledger: Ledger, needs: Guard) -> None:
    write = [Depends(needs("write"))]

    @app.post("/v1/requests/{reservation}/authorize", dependencies=write, status_code=201)
    async def authorize(
        reservation: str, request: Request, timeout_seconds: Annotated[int, Query(ge=1, le=7 * 86_400)] = 300
    ) -> JSONResponse:
        """Hold the quoted price of the request as expected (the body: the estimate event) before the work runs."""
        event = await _event(request)
        timeout = dt.timedelta(seconds=timeout_seconds)
        held = await ledger.run(lambda led: led.engine.authorize(event, reservation, timeout))
        return JSONResponse(views.reservation(held), status_code=201)

    @app.post("/v1/requests/{reservation}/complete", dependencies=write)
    async def complete(reservation: str, request: Request) -> JSONResponse:
        """Rate the request as it ran (the body) and pay it from its hold, in one commit."""
        event = await _event(request)

        def settle(led: Ledger) -> JSONResponse:
            held = Wallets(led.storage, led.clock).reservation(reservation)
            rating = led.engine.rate_reserved(event, reservation)
            if rating is None:
                return JSONResponse({"id": event.id, "status": "duplicate", "reservation": reservation})
            shown = views.rated(rating, "accepted")
            if held is not None:  # it was: rate_reserved refuses a reservation that is not open
                used = reservation_used(held, rating.transaction)
                shown["reservation"] = {
                    "reservation": held.id,
                    "asset": held.asset,
                    "held": views.money(held.amount),
                    "used": views.money(used),
                    "released": views.money(held.amount - used),
                }
            return JSONResponse(shown)

        return await ledger.run(settle)

    @app.post("/v1/requests/{reservation}/void", dependencies=write)
    async def void(reservation: str, reason: str = "voided") -> JSONResponse:
        """Release all of the hold: the work did not run."""

        def release(led: Ledger) -> JSONResponse:
            wallets = Wallets(led.storage, led.clock)
            held = wallets.reservation(reservation)
            wallets.void(reservation, reason)
            assert held is not None  # void refuses a reservation that is not open
            return JSONResponse(
                {"reservation": held.id, "asset": held.asset, "released": views.money(held.amount), "reason": reason}
            )

        return await ledger.run(release)


def _reading_routes(app: FastAPI, ledger: Ledger, needs: Guard) -> None:
    read = [Depends(needs("read"))]

    @app.get("/v1/customers/{customer}/balance", dependencies=read)
    async def balance(customer: str) -> JSONResponse:
        """Per asset: posted, reserved, available and owed; the grants given, with what is left and their expiry."""

        def read_balance(led: Ledger) -> dict[str, Any]:
            wallets = Wallets(led.storage, led.clock)
            grants = wallets.grants(customer)
            left = led.storage.balances([grant.account for grant in grants]) if grants else {}
            # A grant account holds a credit balance (negative): what is left to spend is its opposite.
            remaining = [(grant, -left.get((grant.account, grant.asset), ZERO)) for grant in grants]
            return views.balance(customer, _customer_balances(led, wallets, customer), remaining, led.clock())

        return JSONResponse(await ledger.run(read_balance))

    @app.get("/v1/customers/{customer}/usage", dependencies=read)
    async def usage(
        customer: str, period: str = "30d", group_by: str = "agent", until: dt.datetime | None = None
    ) -> JSONResponse:
        """The usage report of the customer: events, quantities and cost per group over a window."""
        if until is not None and until.tzinfo is None:
            raise ApiError(422, "invalid_request", "until must be ISO 8601 with an offset")

        def report(led: Ledger) -> dict[str, Any]:
            book = led.catalog.latest
            since, end = window(period, zone(book.timezone), until or led.clock())
            rows = usage_report(led.storage, book, since, end, group_by, customer)
            return {
                "customer": customer,
                "since": since.isoformat(),
                "until": end.isoformat(),
                "group_by": group_by,
                "rows": views.usage(rows),
            }

        return JSONResponse(await ledger.run(report))

    @app.get("/v1/invoices", dependencies=read)
    async def list_invoices(customer: str | None = None) -> JSONResponse:
        """Every issued invoice (of one customer if asked), with where each stands."""

        def listed(led: Ledger) -> list[dict[str, Any]]:
            today = led.clock().date()
            found = invoices(led.storage, None, customer)
            return [views.invoice(item, invoice_status(led.storage, item, today)) for item in found]

        return JSONResponse({"invoices": await ledger.run(listed)})

    @app.get("/v1/invoices/{number}", dependencies=read, response_model=None)
    async def show_invoice(number: str) -> Response:
        """One invoice as JSON; ``NUMBER.pdf`` and ``NUMBER.html`` render it as ``rating invoice`` does."""
        stem, _, suffix = number.rpartition(".") if number.endswith((".pdf", ".html")) else (number, "", "")

        def shown(led: Ledger) -> Response:
            found = invoices(led.storage, stem)
            if not found:
                raise InvoiceError(InvoiceRefusal.UNKNOWN_INVOICE, f"no invoice {stem}")
            item = found[0]
            if suffix == "pdf":
                from rating.invoices.render import invoice_pdf

                return Response(invoice_pdf(item, documents.document_fonts(app)), media_type="application/pdf")
            if suffix == "html":
                from rating.invoices.render import invoice_html

                return HTMLResponse(invoice_html(item))
            return JSONResponse(views.invoice(item, invoice_status(led.storage, item, led.clock().date())))

        return await ledger.run(shown)


def _payment_routes(
    app: FastAPI, ledger: Ledger, needs: Guard, payment_secrets: list[bytes], stripe_secrets: list[str]
) -> None:
    write = [Depends(needs("write"))]

    @app.post("/v1/payments", dependencies=write)
    async def payment(request: Request) -> JSONResponse:
        """Book a payment confirmation signed by the processor (``X-Rating-Signature``: hex HMAC-SHA256 of the
        body): a top-up, an invoice payment, or a refund; once per payment id."""
        body = await _body(request, MAX_PAYLOAD_BYTES)
        signature = request.headers.get("x-rating-signature")

        def book(led: Ledger) -> PaymentResult:
            wallets = Wallets(led.storage, led.clock)
            return confirm_payment(wallets, body, signature, payment_secrets, led.catalog.latest, clock=led.clock)

        try:
            result = await ledger.run(book)
        except PaymentRejected as refused:
            raise ApiError(_payment_status(refused.code), str(refused.code), str(refused)) from None
        return JSONResponse({"status": result.value}, status_code=201 if result is PaymentResult.CREDITED else 200)

    @app.post("/v1/webhooks/stripe")
    async def stripe_webhook(request: Request) -> JSONResponse:
        """Stripe's webhooks, authenticated by their ``Stripe-Signature`` (no API key): a succeeded payment
        intent tops up ``metadata.customer``'s wallet or pays ``metadata.invoice``. A signature that does not
        verify is answered 400; a verified payment that cannot be booked (an overpayment, a reused id) is
        answered 200 with ``"status": "refused"`` and its code, and logged, so Stripe stops retrying it."""
        body = await _body(request, MAX_PAYLOAD_BYTES)
        header = request.headers.get("stripe-signature")
        try:
            event = verify_stripe(body, header, stripe_secrets, now=ledger.clock())
        except PaymentRejected as refused:
            raise ApiError(400, str(refused.code), str(refused)) from None

        def book(led: Ledger) -> PaymentResult | None:
            found = stripe_payment(event, led.catalog.latest)
            return None if found is None else apply_payment(Wallets(led.storage, led.clock), found)

        try:
            result = await ledger.run(book)
        except PaymentRejected as refused:
            LOG.warning("payment.refused: Stripe event %s: %s", event.get("id"), refused)
            return JSONResponse({"status": "refused", "code": str(refused.code), "message": str(refused)})
        return JSONResponse({"status": "ignored" if result is None else result.value})


def _customer_routes(app: FastAPI, ledger: Ledger, needs: Guard) -> None:
    """Customers and subscriptions as data (:mod:`rating.customers`): admin keys write and read them.

    A customer's body is its pricebook entry as JSON (every field of a ``customers:`` entry, amounts as decimal
    strings) with its ``id`` and, optionally, the ``effective`` time of the change (default now). Engines on
    the same database, in this process or another, rate by a change from their next request or chunk.
    """
    import json

    from rating.customers import Customers, spec_of
    from rating.errors import CustomerError
    from rating.pricebook.model import CustomerSpec
    from rating.records import CustomerVersion
    from rating.refusals import CustomerRefusal

    admin = [Depends(needs("admin"))]
    statuses = {CustomerRefusal.UNKNOWN_CUSTOMER: 404, CustomerRefusal.CONFLICT: 409}

    def customers_of(led: Ledger) -> Customers:
        return Customers(led.storage, led.catalog, led.clock)

    def view(customer: str, spec: CustomerSpec, version: CustomerVersion | None) -> dict[str, Any]:
        return {
            "id": customer,
            "source": "database" if version is not None else "pricebook",
            "version": version.sequence if version is not None else None,
            "effective": version.effective.isoformat() if version is not None else None,
            "spec": views.as_json(spec, exclude_defaults=True),
        }

    async def change(work: Callable[[Customers], tuple[CustomerVersion, bool]]) -> JSONResponse:
        try:
            version, new = await ledger.run(lambda led: work(customers_of(led)))
        except CustomerError as error:
            raise ApiError(statuses.get(error.code, 422), str(error.code), str(error)) from None
        return JSONResponse(view(version.customer, spec_of(version), version), status_code=201 if new else 200)

    @app.post("/v1/customers", dependencies=admin, summary="Add a customer, or replace its spec from a time on")
    async def put_customer(request: Request) -> JSONResponse:
        body = await _json_object(request)
        customer, effective = body.pop("id", None), body.pop("effective", None)
        if not isinstance(customer, str):
            raise ApiError(422, "invalid_request", "id: a customer id is required")
        at = None
        if effective is not None:
            try:
                at = dt.datetime.fromisoformat(str(effective))
            except ValueError:
                at = None
            if at is None or at.tzinfo is None:
                raise ApiError(422, "invalid_request", "effective: an ISO 8601 time with its offset")
        return await change(lambda customers: customers.put(customer, body, at))

    @app.post(
        "/v1/customers/{customer}/subscriptions", dependencies=admin, summary="Put a customer on a plan from a date"
    )
    async def subscribe(customer: str, request: Request) -> JSONResponse:
        body = await _json_object(request)
        plan, on = body.get("plan"), body.get("from")
        try:
            day = dt.date.fromisoformat(on) if isinstance(on, str) else None
        except ValueError:
            day = None
        if not isinstance(plan, str) or day is None:
            raise ApiError(422, "invalid_request", 'a subscription is {"plan": PLAN, "from": "YYYY-MM-DD"}')
        return await change(lambda customers: customers.subscribe(customer, plan, day))

    @app.get("/v1/customers", dependencies=admin, summary="Every customer: the stored ones over the pricebook's")
    async def list_customers() -> JSONResponse:
        def listed(led: Ledger) -> list[dict[str, Any]]:
            customers = customers_of(led)
            stored = led.storage.latest_customers()
            return [view(name, spec, stored.get(name)) for name, spec in sorted(customers.all().items())]

        return JSONResponse({"customers": await ledger.run(listed)})

    @app.get("/v1/customers/{customer}", dependencies=admin, summary="A customer's spec and its stored versions")
    async def show_customer(customer: str) -> JSONResponse:
        def shown(led: Ledger) -> dict[str, Any] | None:
            customers = customers_of(led)
            spec, versions = customers.get(customer), customers.history(customer)
            if spec is None:
                return None
            history = [
                {"version": v.sequence, "effective": v.effective.isoformat(), "spec": json.loads(v.spec)}
                for v in versions
            ]
            return {**view(customer, spec, versions[-1] if versions else None), "versions": history}

        found = await ledger.run(shown)
        if found is None:
            raise ApiError(404, "unknown_customer", f"no customer {customer!r}")
        return JSONResponse(found)


#: The fields of a grant's body (``POST /v1/customers/{id}/grants``), as ``rating wallet grant`` takes them.
_GRANT_FIELDS = frozenset({"id", "asset", "amount", "kind", "priority", "starts", "expires"})


def _grant_routes(app: FastAPI, ledger: Ledger, needs: Guard) -> None:
    """Grants given over HTTP as ``rating wallet grant`` gives them (:meth:`Wallets.grant`): admin keys only."""
    admin = [Depends(needs("admin"))]

    @app.post("/v1/customers/{customer}/grants", dependencies=admin, summary="Give a customer a grant, once per id")
    async def grant(customer: str, request: Request) -> JSONResponse:
        """A grant spent before purchased funds: ``{"id", "asset", "amount": "5.00"}`` and optionally ``kind``
        (promotional, purchased, rollover), ``priority``, ``starts`` and ``expires`` (ISO 8601 with offsets).
        Once per grant id: the same grant again is answered 200 ``already_granted``; another grant under a
        given id is 409 ``grant_conflict``."""
        body = await _json_object(request)
        unknown = sorted(set(body) - _GRANT_FIELDS)
        if unknown:
            raise ApiError(422, "invalid_request", f"unknown fields: {', '.join(unknown)}")
        grant_id, asset, amount = body.get("id"), body.get("asset"), body.get("amount")
        if not isinstance(grant_id, str) or not isinstance(asset, str) or not asset:
            raise ApiError(422, "invalid_request", "a grant needs its id and asset (strings)")
        if not isinstance(amount, str):  # money is a decimal string, never a JSON number (a float to many clients)
            raise ApiError(422, "invalid_amount", 'amount: a decimal string such as "5.00"')
        kind, priority = body.get("kind", "promotional"), body.get("priority", 0)
        if kind not in get_args(GrantKind):
            raise ApiError(422, "invalid_request", f"kind: one of {', '.join(get_args(GrantKind))}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ApiError(422, "invalid_request", "priority: an integer")
        starts, expires = _instant(body, "starts"), _instant(body, "expires")

        def give(led: Ledger) -> bool:
            wallets = Wallets(led.storage, led.clock)
            value = _grant_amount(amount)
            return wallets.grant(
                customer, asset, value, grant_id, kind=kind, priority=priority, starts=starts, expires=expires
            )

        try:
            new = await ledger.run(give)
        except TransactionConflict:
            raise ApiError(409, "grant_conflict", f"grant {grant_id!r} was given with other content") from None
        except InvalidAmount as error:  # not a decimal, not positive, or expiring before it starts
            raise ApiError(422, "invalid_amount", str(error)) from None
        return JSONResponse(
            {"grant": grant_id, "customer": customer, "asset": asset, "amount": amount,
             "status": "granted" if new else "already_granted"},
            status_code=201 if new else 200,
        )  # fmt: skip


def _grant_amount(text: str) -> Decimal:
    """A grant's amount: decimal text of at most 15 digits before the point and 18 after, as the command line's
    ``--amount`` takes (``1e999999`` is a decimal, but no grant anyone means)."""
    value = to_decimal(text, "amount")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite Decimal's exponent is an int
    if value.adjusted() >= 15 or -exponent > 18:
        raise InvalidAmount(f"amount {text!r}: at most 15 digits before the point and 18 after")
    return value


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (a small one: at most an event's size)."""
    try:
        body = json.loads(await _body(request, MAX_EVENT_BODY))
    except ValueError:
        raise ApiError(422, "invalid_request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    return body


def _instant(body: dict[str, Any], field: str) -> dt.datetime | None:
    """The ISO 8601 time (with its offset) of ``body[field]``, or None when the field is absent."""
    raw = body.get(field)
    if raw is None:
        return None
    try:
        at = dt.datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ApiError(422, "invalid_request", f"{field}: an ISO 8601 time with its offset")
    return at


def _payment_status(code: PaymentRefusal) -> int:
    """The HTTP status of a refused payment confirmation."""
    if code in (PaymentRefusal.UNSIGNED, PaymentRefusal.BAD_SIGNATURE, PaymentRefusal.NO_SECRET):
        return 401
    return 409 if code == PaymentRefusal.CONFLICT else 422


def from_environment() -> FastAPI:
    """The app of one worker process of ``rating serve --workers N`` (uvicorn builds it from this import string)
    from the variables the command set: the database, the pricebooks, the API key file ("" for none), whether
    to check the database's keys (all but ``--no-auth``) and the billing file ("" for none)."""
    keys = os.environ.get("RATING_SERVE_KEYS") or None
    database_keys = os.environ.get("RATING_SERVE_NO_AUTH") != "1"
    pricebooks = os.environ["RATING_SERVE_PRICEBOOKS"].split(os.pathsep)
    payments, stripe = secrets_from_environment()
    interval = os.environ.get("RATING_SERVE_WEBHOOK_INTERVAL", str(INTERVAL))
    billing = os.environ.get("RATING_SERVE_BILLING") or None
    return create_app(
        os.environ["RATING_SERVE_DB"],
        pricebooks,
        api_keys=keys,
        database_keys=database_keys,
        payment_secrets=payments,
        stripe_secrets=stripe,
        webhook_interval=float(interval) if float(interval) > 0 else None,
        billing=billing,
    )
