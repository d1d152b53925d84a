"""The response schemas of the service, as published in its OpenAPI document (``/openapi.json``).

The routes answer with :class:`~fastapi.responses.JSONResponse` bodies built by :mod:`rating.server.views`, so
FastAPI cannot infer what they answer: each route's answers (status codes, bodies, examples) are declared here.
Money is always a plain decimal string (:data:`MONEY`: ``"0.00000025"``, never ``2.5E-7`` nor a JSON number).
Every error is one shape (:data:`ERROR`): ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from rating.billing.statements import Statement
from rating.invoices.issue import CreditNote, Invoice

Schema = dict[str, Any]

#: An exact amount: a plain decimal string (no exponent, no JSON number).
MONEY: Schema = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["0.00065000"]}
_TEXT: Schema = {"type": "string"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_PER_ASSET: Schema = {"type": "object", "additionalProperties": MONEY, "description": "per asset"}


def ref(name: str) -> Schema:
    """A reference to one of :func:`components`."""
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *optional: str, description: str = "") -> Schema:
    """An object whose ``properties`` are all required but ``optional``."""
    shown: Schema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }
    return {**shown, "description": description} if description else shown


BATCH_RESULT = _object(
    {
        "index": {"type": "integer", "minimum": 0},
        "id": {"type": ["string", "null"]},
        "status": {"enum": ["accepted", "duplicate", "rejected", "not_posted"]},
        "code": _TEXT,
        "reason": _TEXT,
    },
    "code",
    "reason",
    description="One event of a batch: its index in the batch, its id and its status (a refusal's code and reason).",
)
ERROR = _object(
    {
        "error": _object({"code": _TEXT, "message": _TEXT}),
        "results": {"type": "array", "items": ref("BatchResult"), "description": "a strict batch refused: each event"},
    },
    "results",
    description="Every error: a stable code (a refusal code of the library, or the service's own) and a message.",
)
CHARGE = _object(
    {
        "meter": _TEXT,
        "group": {"type": "array", "items": _TEXT},
        "model": _TEXT,
        "quantity": MONEY,
        "amount": MONEY,
        "asset": _TEXT,
        "unit": _TEXT,
    }
)
HELD = _object({"reservation": _TEXT, "asset": _TEXT, "held": MONEY, "used": MONEY, "released": MONEY})
RATED = _object(
    {
        "id": _TEXT,
        "status": {"enum": ["accepted", "quoted"]},
        "customer": _TEXT,
        "plan": _TEXT,
        "period": _TEXT,
        "charges": {"type": "array", "items": ref("Charge")},
        "totals": _PER_ASSET,
        "reservation": ref("ReservationUse"),
    },
    "reservation",
    description="A rated (or quoted) event: its period, plan, charges and totals per asset.",
)
DUPLICATE = _object(
    {"id": _TEXT, "status": {"const": "duplicate"}, "reservation": _TEXT},
    "reservation",
    description="The event was rated before with the same content: nothing posted again.",
)
BATCH = _object(
    {
        "accepted": {"type": "integer", "minimum": 0},
        "duplicate": {"type": "integer", "minimum": 0},
        "rejected": {"type": "integer", "minimum": 0},
        "results": {"type": "array", "items": ref("BatchResult")},
    }
)
RESERVATION = _object(
    {"reservation": _TEXT, "customer": _TEXT, "asset": _TEXT, "amount": MONEY, "expires_at": _TIME},
    description="A metered request's hold.",
)
VOIDED = _object({"reservation": _TEXT, "asset": _TEXT, "released": MONEY, "reason": _TEXT})
BALANCE = _object(
    {
        "customer": _TEXT,
        "assets": {
            "type": "array",
            "items": _object({"asset": _TEXT, "posted": MONEY, "reserved": MONEY, "available": MONEY, "owed": MONEY}),
        },
        "grants": {
            "type": "array",
            "items": _object(
                {
                    "id": _TEXT,
                    "asset": _TEXT,
                    "amount": MONEY,
                    "remaining": MONEY,
                    "kind": _TEXT,
                    "priority": {"type": "integer"},
                    "starts": _TIME,
                    "expires": {"anyOf": [_TIME, {"type": "null"}]},
                    "in_force": {"type": "boolean"},
                }
            ),
        },
    }
)
USAGE = _object(
    {
        "customer": _TEXT,
        "since": _TIME,
        "until": _TIME,
        "group_by": _TEXT,
        "rows": {
            "type": "array",
            "items": _object(
                {
                    "group": _TEXT,
                    "events": {"type": "integer", "minimum": 0},
                    "quantities": {"type": "object", "additionalProperties": MONEY},
                    "cost": _PER_ASSET,
                }
            ),
        },
    }
)
INVOICE_STATUS = _object(
    {
        "state": _TEXT,
        "paid": MONEY,
        "credited": MONEY,
        "refunded": MONEY,
        "due": MONEY,
        "overdue": {"type": "boolean"},
    }
)
UPCOMING = _object(
    {
        "customer": _TEXT,
        "period": _TEXT,
        "start": _TIME,
        "end": _TIME,
        "as_of": _TIME,
        "closed": {"type": "boolean"},
        "paid_from_wallet": {"type": "boolean"},
        "usage": {
            "type": "array",
            "items": _object({"meter": _TEXT, "asset": _TEXT, "quantity": MONEY, "amount": MONEY}),
        },
        "closing": {
            "type": "array",
            "items": _object({"id": _TEXT, "description": _TEXT, "asset": _TEXT, "amount": MONEY}),
        },
        "totals": _PER_ASSET,
    }
)
CUSTOMER = _object(
    {
        "id": _TEXT,
        "source": {"enum": ["database", "pricebook"]},
        "version": {"type": ["integer", "null"]},
        "effective": {"anyOf": [_TIME, {"type": "null"}]},
        "spec": {"type": "object", "description": "the customer's pricebook entry (amounts as decimal strings)"},
        "versions": {
            "type": "array",
            "items": _object({"version": {"type": "integer"}, "effective": _TIME, "spec": {"type": "object"}}),
        },
    },
    "versions",
)
GRANT = _object(
    {
        "grant": _TEXT,
        "customer": _TEXT,
        "asset": _TEXT,
        "amount": MONEY,
        "status": {"enum": ["granted", "already_granted"]},
    }
)
ENDPOINT = _object(
    {
        "id": _TEXT,
        "url": _TEXT,
        "events": {"type": "array", "items": _TEXT},
        "secrets": {"type": "integer", "minimum": 0, "description": "how many secrets (never the secrets)"},
        "version": {"type": "integer"},
        "active": {"type": "boolean"},
        "secret": {**_TEXT, "description": "the secret made for the endpoint, shown this once"},
    },
    "secret",
)


def _list(field: str, item: Schema) -> Schema:
    return _object({field: {"type": "array", "items": item}})


def _models() -> dict[str, Schema]:
    """The stored documents' schemas, as pydantic serializes them, their amounts as :data:`MONEY` (the service
    writes them as plain decimal text, :func:`rating.server.views.as_json`)."""
    schemas: dict[str, Schema] = {}
    documents: set[type[BaseModel]] = {Invoice, CreditNote, Statement}
    for document in documents:
        shown = document.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
        schemas.update(shown.pop("$defs", {}))
        schemas[document.__name__] = shown
    for model in _nested(documents):
        found = schemas.get(model.__name__)
        if found is None:
            continue
        for field, info in model.model_fields.items():
            shown = found.get("properties", {}).get(field)
            if shown is not None:
                found["properties"][field] = _money_in(info.annotation, shown)
    return schemas


def _nested(models: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """``models`` and every model their fields hold, at any depth."""
    seen: set[type[BaseModel]] = set()
    pending = list(models)
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for info in model.model_fields.values():
            pending.extend(_models_in(info.annotation))
    return seen


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def _money_in(annotation: Any, shown: Schema) -> Schema:
    """``shown`` (a field's schema) with :data:`MONEY` wherever its annotation holds a Decimal: the field, an
    optional one's non-null branch, the values of a dict."""
    if annotation is Decimal:
        return {**shown, **MONEY} if shown.get("type") == "string" else shown
    arguments = get_args(annotation)
    if type(None) in arguments and "anyOf" in shown:
        inner = next((argument for argument in arguments if argument is not type(None)), None)
        return {**shown, "anyOf": [_money_in(inner, branch) if branch.get("type") != "null" else branch
                                   for branch in shown["anyOf"]]}  # fmt: skip
    if get_origin(annotation) is dict and len(arguments) == 2 and "additionalProperties" in shown:
        return {**shown, "additionalProperties": _money_in(arguments[1], shown["additionalProperties"])}
    return shown


def components() -> dict[str, Schema]:
    """Every schema the responses name, by name (``#/components/schemas/NAME``)."""
    invoice = {"allOf": [ref("Invoice"), _object({"status": ref("InvoiceStatus")})]}
    return {
        **_models(),
        "Error": ERROR,
        "BatchResult": BATCH_RESULT,
        "Charge": CHARGE,
        "ReservationUse": HELD,
        "RatedEvent": RATED,
        "Duplicate": DUPLICATE,
        "BatchAnswer": BATCH,
        "Reservation": RESERVATION,
        "Voided": VOIDED,
        "Balance": BALANCE,
        "Usage": USAGE,
        "InvoiceStatus": INVOICE_STATUS,
        "InvoiceWithStatus": invoice,
        "InvoiceList": _list("invoices", ref("InvoiceWithStatus")),
        "CreditNoteList": _list("credit_notes", ref("CreditNote")),
        "Upcoming": UPCOMING,
        "Customer": CUSTOMER,
        "CustomerList": _list("customers", ref("Customer")),
        "Grant": GRANT,
        "WebhookEndpoint": ENDPOINT,
        "WebhookEndpointList": _list("webhook_endpoints", ref("WebhookEndpoint")),
        "PaymentAnswer": _object(
            {"status": _TEXT, "code": _TEXT, "message": _TEXT},
            "code",
            "message",
            description="What became of a payment (a refused Stripe payment: its code and message, answered 200).",
        ),
        "Status": _object({"status": _TEXT}),
    }
