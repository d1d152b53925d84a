"""Payments over HTTP: our signed confirmations and Stripe's webhooks book once, and say why when they cannot."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rating.billing.payments import sign
from rating.billing.stripe import stripe_signature
from rating.registry import Registry
from rating.server import create_app
from tests.helpers import EXAMPLE, later
from tests.server.conftest import bearer

SECRET, STRIPE = b"rating-secret", "whsec_server_test"


@pytest.fixture
def payments(db: str, keys: Path, registry: Registry) -> Iterator[TestClient]:
    app = create_app(
        db, [EXAMPLE], api_keys=keys, registry=registry, clock=later, payment_secrets=[SECRET], stripe_secrets=[STRIPE]
    )
    with TestClient(app) as client:
        yield client


def confirmation(payment_id: str = "pi_9", amount: str = "25.00") -> bytes:
    fields = {"payment_id": payment_id, "customer": "dev-1", "asset": "USD", "amount": amount,
              "status": "succeeded", "created": later().isoformat()}  # fmt: skip
    return json.dumps(fields).encode()


def stripe_event(intent: str = "pi_3S", amount: int = 1250, **metadata: str) -> bytes:
    body = {"id": "evt_9", "type": "payment_intent.succeeded", "created": int(later().timestamp()),
            "data": {"object": {"id": intent, "amount_received": amount, "currency": "usd", "status": "succeeded",
                                "metadata": {"customer": "dev-1", **metadata}}}}  # fmt: skip
    return json.dumps(body).encode()


def available(client: TestClient) -> str:
    balance = client.get("/v1/customers/dev-1/balance", headers=bearer("read")).json()
    return next(row["available"] for row in balance["assets"] if row["asset"] == "USD")


def test_a_signed_confirmation_tops_up_once(payments: TestClient) -> None:
    body = confirmation()
    headers = {**bearer("write"), "X-Rating-Signature": sign(body, SECRET)}
    first = payments.post("/v1/payments", content=body, headers=headers)
    assert (first.status_code, first.json()) == (201, {"status": "credited"})
    again = payments.post("/v1/payments", content=body, headers=headers)
    assert (again.status_code, again.json()) == (200, {"status": "replayed"})
    assert available(payments) == "25.00"


def test_an_unsigned_or_wrongly_signed_confirmation_books_nothing(payments: TestClient) -> None:
    body = confirmation()
    unsigned = payments.post("/v1/payments", content=body, headers=bearer("write"))
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (401, "unsigned")
    forged = payments.post(
        "/v1/payments", content=body, headers={**bearer("write"), "X-Rating-Signature": sign(body, b"guess")}
    )
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "bad_signature")
    reader = payments.post(
        "/v1/payments", content=body, headers={**bearer("read"), "X-Rating-Signature": sign(body, SECRET)}
    )
    assert reader.status_code == 403


def test_a_stripe_webhook_tops_up_once_and_needs_no_api_key(payments: TestClient) -> None:
    body = stripe_event()
    headers = {"Stripe-Signature": stripe_signature(body, STRIPE, int(later().timestamp()))}
    assert payments.post("/v1/webhooks/stripe", content=body, headers=headers).json() == {"status": "credited"}
    assert payments.post("/v1/webhooks/stripe", content=body, headers=headers).json() == {"status": "replayed"}
    assert available(payments) == "12.50"


def test_a_stripe_webhook_that_does_not_verify_is_a_400(payments: TestClient) -> None:
    body = stripe_event()
    stale = stripe_signature(body, STRIPE, int((later() - dt.timedelta(hours=1)).timestamp()))
    answer = payments.post("/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": stale})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "stale")
    forged = stripe_signature(body, "whsec_guess", int(later().timestamp()))
    answer = payments.post("/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": forged})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bad_signature")


def test_a_verified_payment_that_cannot_be_booked_is_acknowledged_as_refused(payments: TestClient) -> None:
    ours = confirmation(payment_id="pi_3S", amount="3.00")  # the intent id used first for another amount
    payments.post("/v1/payments", content=ours, headers={**bearer("write"), "X-Rating-Signature": sign(ours, SECRET)})
    body = stripe_event()
    headers = {"Stripe-Signature": stripe_signature(body, STRIPE, int(later().timestamp()))}
    answer = payments.post("/v1/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 200  # Stripe stops retrying what can never be booked
    assert (answer.json()["status"], answer.json()["code"]) == ("refused", "conflict")
    assert available(payments) == "3.00"
    other = json.dumps({"id": "evt_2", "type": "customer.created", "created": int(later().timestamp())}).encode()
    headers = {"Stripe-Signature": stripe_signature(other, STRIPE, int(later().timestamp()))}
    assert payments.post("/v1/webhooks/stripe", content=other, headers=headers).json() == {"status": "ignored"}
