"""What the service answers, as JSON: money always as decimal text, never a JSON number."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from rating.core.charges import RatedEvent
from rating.core.funding import Grant, Reservation
from rating.invoices.issue import Invoice
from rating.invoices.settle import InvoiceStatus
from rating.money import plain
from rating.reports.usage import UsageRow
from rating.wallet.balances import CustomerBalance


def money(amount: Decimal) -> str:
    """An exact amount as plain decimal text (``0.00000025``, never ``2.5E-7``)."""
    return plain(amount)


def as_json(model: BaseModel, **dump: Any) -> Any:
    """A stored model (an invoice, a credit note, a statement, a customer's spec) as JSON, its amounts as plain
    decimal text: pydantic's own JSON writes ``str(Decimal)``, which is ``1.5E-7`` for ``0.00000015``."""
    return _plain(model.model_dump(mode="python", **dump))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return {str(_plain(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return to_jsonable_python(value)


def rated(rating: RatedEvent, status: str) -> dict[str, Any]:
    """A rated (or quoted) event: its period, plan, charges and totals per asset."""
    return {
        "id": rating.event.id,
        "status": status,
        "customer": rating.event.customer,
        "plan": rating.plan,
        "period": rating.period,
        "charges": [
            {
                "meter": charge.meter,
                "group": list(charge.group),
                "model": charge.model,
                "quantity": money(charge.quantity),
                "amount": money(charge.amount),
                "asset": charge.asset,
                "unit": charge.unit,
            }
            for charge in rating.charges
        ],
        "totals": {asset: money(amount) for asset, amount in sorted(rating.total().items())},
    }


def reservation(held: Reservation) -> dict[str, Any]:
    """A metered request's hold."""
    return {
        "reservation": held.id,
        "customer": held.customer,
        "asset": held.asset,
        "amount": money(held.amount),
        "expires_at": held.expires_at.isoformat(),
    }


def balance(
    customer: str, assets: list[CustomerBalance], grants: list[tuple[Grant, Decimal]], now: dt.datetime
) -> dict[str, Any]:
    """A customer's funds per asset and the grants given to it (with what is left of each)."""
    return {
        "customer": customer,
        "assets": [
            {
                "asset": row.asset,
                "posted": money(row.posted),
                "reserved": money(row.reserved),
                "available": money(row.available),
                "owed": money(row.owed),
            }
            for row in assets
        ],
        "grants": [
            {
                "id": grant.id,
                "asset": grant.asset,
                "amount": money(grant.amount),
                "remaining": money(remaining),
                "kind": grant.kind,
                "priority": grant.priority,
                "starts": grant.starts.isoformat(),
                "expires": grant.expires.isoformat() if grant.expires else None,
                "in_force": grant.in_force(now),
            }
            for grant, remaining in grants
        ],
    }


def usage(rows: list[UsageRow]) -> list[dict[str, Any]]:
    """The usage report's rows: events, summed quantities per meter and cost per asset of each group."""
    return [
        {
            "group": row.group,
            "events": row.events,
            "quantities": {meter: money(quantity) for meter, quantity in sorted(row.quantities.items())},
            "cost": {asset: money(amount) for asset, amount in sorted(row.cost.items())},
        }
        for row in rows
    ]


def invoice(document: Invoice, status: InvoiceStatus) -> dict[str, Any]:
    """An issued invoice as stored (amounts as decimal text) with where it stands."""
    shown: dict[str, Any] = as_json(document)
    shown["status"] = {
        "state": status.state,
        "paid": money(status.paid),
        "credited": money(status.credited),
        "refunded": money(status.refunded),
        "due": money(status.due),
        "overdue": status.overdue,
    }
    return shown
