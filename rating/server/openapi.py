"""The request bodies and the answers of the routes, in the published OpenAPI document.

The event, quote, metered-request and payment routes read the raw body (the events through the
same reader as files; a payment confirmation exactly as signed), so FastAPI cannot infer their
schemas: they are declared here, with examples, on the routes already added to the app. Every route
answers a :class:`~fastapi.responses.JSONResponse` built by :mod:`rating.server.views`: its status codes
and bodies (:mod:`rating.server.schemas`) are declared here too, errors included (one shape for all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from rating.events import UsageEvent
from rating.server import schemas
from rating.server.cloudevents import BATCH, SINGLE
from rating.server.schemas import ref

#: An event as a client sends it (money and quantities may be JSON numbers: they are read as exact decimals).
EXAMPLE_EVENT = {
    "id": "req-1",
    "customer": "acme-labs",
    "type": "llm.request",
    "timestamp": "2026-12-01T10:00:00Z",
    "properties": {"model": "gpt-5", "provider": "openai", "input_tokens": 1200, "output_tokens": 300},
}
EXAMPLE_CLOUDEVENT = {
    "specversion": "1.0",
    "id": "req-1",
    "source": "/gateway/eu-1",
    "type": "llm.request",
    "time": "2026-12-01T10:00:00Z",
    "subject": "acme-labs",
    "datacontenttype": "application/json",
    "data": EXAMPLE_EVENT["properties"],
}
_TEXT = {"type": "string"}
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvent 1.0 (JSON format), mapped to an event (README: Service).",
    "required": ["specversion", "id", "source", "type", "time"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": _TEXT,
        "source": _TEXT,
        "type": _TEXT,
        "time": {"type": "string", "format": "date-time"},
        "subject": {**_TEXT, "description": "the customer (or the customer extension)"},
        "customer": _TEXT,
        "datacontenttype": _TEXT,
        "dataschema": _TEXT,
        "data": {"type": "object", "description": "the event's properties"},
        "agent": _TEXT,
        "session": _TEXT,
        "order": _TEXT,
        "billingsource": {"enum": ["platform", "byok"]},
    },
    "additionalProperties": True,
}
PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A payment confirmation, signed by the processor (X-Rating-Signature: hex HMAC-SHA256 of the body).",
    "required": ["payment_id", "customer", "asset", "amount", "status", "created"],
    "properties": {
        "payment_id": _TEXT,
        "customer": _TEXT,
        "asset": _TEXT,
        "amount": {"type": "string", "description": "a decimal string, never a number"},
        "status": {"const": "succeeded"},
        "created": {"type": "string", "format": "date-time"},
        "invoice": _TEXT,
        "type": {"enum": ["payment", "refund", "chargeback"]},
        "refunds": _TEXT,
    },
}


def _one_event() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": ref("UsageEvent"), "example": EXAMPLE_EVENT},
            SINGLE: {"schema": ref("CloudEvent"), "example": EXAMPLE_CLOUDEVENT},
        },
    }


def _batch() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": ref("UsageEvent"), "maxItems": 1000},
                "example": [EXAMPLE_EVENT],
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "JSON Lines, one event a line"}},
            BATCH: {
                "schema": {"type": "array", "items": ref("CloudEvent"), "maxItems": 1000},
                "example": [EXAMPLE_CLOUDEVENT],
            },
        },
    }


def _payment() -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("PaymentConfirmation")}}},
        "parameters": [{"name": "X-Rating-Signature", "in": "header", "required": True, "schema": _TEXT}],
    }


def _json_body(schema: dict[str, Any], example: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The extra OpenAPI of a route whose body is one JSON object."""
    return lambda: {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}
    }


_DAY = {"type": "string", "format": "date"}
CUSTOMER_BODY: dict[str, Any] = {
    "type": "object",
    "description": "A customer's pricebook entry as JSON (every field of a customers: entry), its id and, "
    "optionally, the effective time of the change (default now).",
    "required": ["id"],
    "properties": {"id": _TEXT, "effective": {"type": "string", "format": "date-time"}, "plan": _TEXT},
    "additionalProperties": True,
}
SUBSCRIPTION_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["plan", "from"],
    "properties": {"plan": _TEXT, "from": _DAY},
}
GRANT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "asset", "amount"],
    "properties": {
        "id": _TEXT,
        "asset": _TEXT,
        "amount": {"type": "string", "description": "a decimal string, never a number"},
        "kind": {"enum": ["promotional", "purchased", "rollover"]},
        "priority": {"type": "integer"},
        "starts": {"type": "string", "format": "date-time"},
        "expires": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": False,
}
ENDPOINT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": _TEXT, "description": "none: every event"},
        "secrets": {"type": "array", "items": _TEXT, "description": "none: one is made and shown once"},
        "id": {**_TEXT, "description": "an existing endpoint's id: replace its URL, secrets and events"},
    },
}

#: The extra OpenAPI of each route (path, method) that reads its own body.
EXTRAS: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("/v1/events", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/quote", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/requests/{reservation}/authorize", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/requests/{reservation}/complete", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/events/batch", "POST"): lambda: {"requestBody": _batch()},
    ("/v1/payments", "POST"): _payment,
    ("/v1/customers", "POST"): _json_body(CUSTOMER_BODY, {"id": "acme-labs", "plan": "scale"}),
    ("/v1/customers/{customer}/subscriptions", "POST"): _json_body(
        SUBSCRIPTION_BODY, {"plan": "scale", "from": "2026-12-01"}
    ),
    ("/v1/customers/{customer}/grants", "POST"): _json_body(
        GRANT_BODY, {"id": "welcome", "asset": "USD", "amount": "5.00", "expires": "2027-01-01T00:00:00Z"}
    ),
    ("/v1/webhook-endpoints", "POST"): _json_body(
        ENDPOINT_BODY, {"url": "https://billing.example.com/hooks", "events": ["invoice.issued"]}
    ),
}


#: The errors, by status, with what each means (every one answered as ``Error``).
_ERRORS = {
    400: "the request cannot be read (a Stripe signature that does not verify)",
    401: "no API key, an unknown or revoked one (a payment: no valid signature)",
    403: "the API key lacks the route's scope",
    404: "not found",
    409: "a conflict: an id reused with other content, a reservation not open, a request still running",
    413: "the body (or the batch) is too large",
    422: "refused: the refusal code of the library, or invalid_request",
    503: "the database is unavailable",
}
_JSON = "application/json"
_PDF = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _answer(description: str, *names: str, example: Any = None, **content: Any) -> dict[str, Any]:
    """A success answer: a JSON body of one of the schemas ``names`` (and other media types)."""
    schema = ref(names[0]) if len(names) == 1 else {"oneOf": [ref(name) for name in names]}
    body: dict[str, Any] = {"schema": schema}
    if example is not None:
        body["example"] = example
    return {"description": description, "content": {_JSON: body, **content}}


#: An event as the service answers it, rated.
EXAMPLE_RATED = {
    "id": "req-1",
    "status": "accepted",
    "customer": "acme-labs",
    "plan": "scale",
    "period": "2026-12",
    "charges": [
        {"meter": "requests", "group": [], "model": "per_call", "quantity": "1", "amount": "0.0002",
         "asset": "USD", "unit": "request"},
    ],
    "totals": {"USD": "0.0002"},
}  # fmt: skip

#: Each route's answers: its successes by status (errors: the statuses it may refuse with, beside the common ones).
_ANSWERS: dict[tuple[str, str], tuple[dict[int, dict[str, Any]], tuple[int, ...]]] = {
    ("/healthz", "GET"): ({200: _answer("the process is up", "Status")}, ()),
    ("/readyz", "GET"): ({200: _answer("the database is reachable and current", "Status")}, (503,)),
    ("/v1/events", "POST"): (
        {
            201: _answer("rated and posted", "RatedEvent", example=EXAMPLE_RATED),
            200: _answer("the same event was rated before: nothing posted", "Duplicate"),
        },
        (409,),
    ),
    ("/v1/events/batch", "POST"): ({200: _answer("each event's status", "BatchAnswer")}, ()),
    ("/v1/quote", "POST"): ({200: _answer("priced, nothing posted", "RatedEvent")}, ()),
    ("/v1/requests/{reservation}/authorize", "POST"): ({201: _answer("the hold", "Reservation")}, ()),
    ("/v1/requests/{reservation}/complete", "POST"): (
        {200: _answer("rated and paid from the hold (or a duplicate)", "RatedEvent", "Duplicate")},
        (),
    ),
    ("/v1/requests/{reservation}/void", "POST"): ({200: _answer("the hold released", "Voided")}, ()),
    ("/v1/customers/{customer}/balance", "GET"): ({200: _answer("the customer's funds", "Balance")}, ()),
    ("/v1/customers/{customer}/usage", "GET"): ({200: _answer("the usage report", "Usage")}, ()),
    ("/v1/invoices", "GET"): ({200: _answer("the issued invoices", "InvoiceList")}, ()),
    ("/v1/invoices/{number}", "GET"): (
        {200: _answer("the invoice (NUMBER.pdf, NUMBER.html: rendered)", "InvoiceWithStatus", **_PDF, **_HTML)},
        (404,),
    ),
    ("/v1/payments", "POST"): (
        {
            201: _answer("credited", "PaymentAnswer"),
            200: _answer("booked before, or a payment of an invoice", "PaymentAnswer"),
        },
        (),
    ),
    ("/v1/webhooks/stripe", "POST"): (
        {200: _answer("booked, ignored, or refused (so that Stripe stops retrying)", "PaymentAnswer")},
        (400,),
    ),
    ("/v1/customers", "GET"): ({200: _answer("every customer", "CustomerList")}, ()),
    ("/v1/customers", "POST"): (
        {201: _answer("a new version stored", "Customer"), 200: _answer("the same spec: unchanged", "Customer")},
        (404,),
    ),
    ("/v1/customers/{customer}/subscriptions", "POST"): (
        {201: _answer("subscribed", "Customer"), 200: _answer("the same subscription: unchanged", "Customer")},
        (404,),
    ),
    ("/v1/customers/{customer}", "GET"): ({200: _answer("the customer and its versions", "Customer")}, (404,)),
    ("/v1/customers/{customer}/grants", "POST"): (
        {201: _answer("granted", "Grant"), 200: _answer("granted before", "Grant")},
        (),
    ),
    ("/v1/credit-notes", "GET"): ({200: _answer("the issued credit notes", "CreditNoteList")}, ()),
    ("/v1/credit-notes/{number}", "GET"): (
        {200: _answer("the credit note (NUMBER.pdf, NUMBER.html: rendered)", "CreditNote", **_PDF, **_HTML)},
        (404,),
    ),
    ("/v1/customers/{customer}/statement", "GET"): (
        {200: _answer("the statement (format=html|pdf: rendered)", "Statement", **_PDF, **_HTML)},
        (),
    ),
    ("/v1/customers/{customer}/upcoming", "GET"): ({200: _answer("the open period's bill so far", "Upcoming")}, ()),
    ("/v1/webhook-endpoints", "GET"): ({200: _answer("the active endpoints", "WebhookEndpointList")}, ()),
    ("/v1/webhook-endpoints", "POST"): ({201: _answer("added (or replaced)", "WebhookEndpoint")}, (404,)),
    ("/v1/webhook-endpoints/{id}", "DELETE"): ({200: _answer("removed", "WebhookEndpoint")}, (404,)),
    ("/metrics", "GET"): (
        {200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        (),
    ),
}
#: The optional header of every POST: a retry with the same key and body is answered with the first answer.
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "description": "a retry with the same key and body is answered with the first answer; another body: 422",
}


def _responses(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """The answers of one operation: its successes and every error it may give (the one ``Error`` shape)."""
    successes, specific = _ANSWERS.get((path, method), ({}, ()))
    errors = set(specific)
    guarded = path.startswith("/v1/") or path == "/metrics"
    if guarded and path != "/v1/webhooks/stripe":
        errors |= {401, 403}  # a payment's signature is refused 401 too
    if method == "POST":
        errors |= {409, 413, 422}  # an Idempotency-Key still running, a body too large, a body refused
    if operation.get("parameters") or "{" in path:
        errors.add(422)
    if path not in ("/healthz", "/metrics"):
        errors.add(503)
    if path == "/v1/payments":
        errors.add(401)
    answers: dict[str, Any] = {str(status): answer for status, answer in sorted(successes.items())}
    for status in sorted(errors):
        answers[str(status)] = {
            "description": _ERRORS[status],
            "content": {_JSON: {"schema": ref("Error")}},
        }
    return answers or operation.get("responses", {})


def _document_answers(spec: dict[str, Any]) -> None:
    """Replace FastAPI's inferred answers (an empty schema; a 422 of its own validation shape) by the declared ones."""
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            operation["responses"] = _responses(path, method.upper(), operation)
            if method == "post" and path != "/v1/webhooks/stripe":
                parameters = operation.setdefault("parameters", [])
                if all(parameter["name"] != IDEMPOTENCY_KEY["name"] for parameter in parameters):
                    parameters.append(IDEMPOTENCY_KEY)
    found = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        found.pop(unused, None)


def describe(app: FastAPI) -> None:
    """Declare the request bodies of the routes already on ``app`` that read their own body, and the schemas they
    name; call it after the routes are added."""
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods or ():
            extra = EXTRAS.get((route.path, method))
            if extra is not None:
                route.openapi_extra = {**(route.openapi_extra or {}), **extra()}
    event = UsageEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    found = {**event.pop("$defs", {}), "UsageEvent": event, "CloudEvent": CLOUDEVENT_SCHEMA}
    found["PaymentConfirmation"] = PAYMENT_SCHEMA
    found.update(schemas.components())
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            spec.setdefault("components", {}).setdefault("schemas", {}).update(found)
            _document_answers(spec)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
