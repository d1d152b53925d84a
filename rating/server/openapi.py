"""The request bodies of the routes that decode their own body, in the published OpenAPI document.

The event, quote, metered-request and payment routes read the raw body (the events through the
same reader as files; a payment confirmation exactly as signed), so FastAPI cannot infer their
schemas: they are declared here, with examples, on the routes already added to the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from rating.events import UsageEvent
from rating.server.cloudevents import BATCH, SINGLE

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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _one_event() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("UsageEvent"), "example": EXAMPLE_EVENT},
            SINGLE: {"schema": _ref("CloudEvent"), "example": EXAMPLE_CLOUDEVENT},
        },
    }


def _batch() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": _ref("UsageEvent"), "maxItems": 1000},
                "example": [EXAMPLE_EVENT],
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "JSON Lines, one event a line"}},
            BATCH: {
                "schema": {"type": "array", "items": _ref("CloudEvent"), "maxItems": 1000},
                "example": [EXAMPLE_CLOUDEVENT],
            },
        },
    }


def _payment() -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("PaymentConfirmation")}}},
        "parameters": [{"name": "X-Rating-Signature", "in": "header", "required": True, "schema": _TEXT}],
    }


#: The extra OpenAPI of each route (path, method) that reads its own body.
EXTRAS: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("/v1/events", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/quote", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/requests/{reservation}/authorize", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/requests/{reservation}/complete", "POST"): lambda: {"requestBody": _one_event()},
    ("/v1/events/batch", "POST"): lambda: {"requestBody": _batch()},
    ("/v1/payments", "POST"): _payment,
}


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
    schemas = {**event.pop("$defs", {}), "UsageEvent": event, "CloudEvent": CLOUDEVENT_SCHEMA}
    schemas["PaymentConfirmation"] = PAYMENT_SCHEMA
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            spec.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
