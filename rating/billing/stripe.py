"""Stripe in: ``payment_intent.succeeded`` webhooks as wallet top-ups or invoice payments.

Stripe signs each webhook with the endpoint's secret (``whsec_...``) in its
``Stripe-Signature`` header, ``t=UNIX_TIME,v1=HEX[,v1=HEX...]``: the hex
HMAC-SHA256 of ``"{t}.{body}"``. :func:`verify_stripe` checks it offline, in
constant time, against every active secret (several while one is rotated) and
refuses a timestamp further than the tolerance from now (an old delivery
replayed). The same codes as our own confirmations name every refusal
(:class:`~rating.refusals.PaymentRefusal`).

A verified ``payment_intent.succeeded`` becomes a :class:`~rating.billing.payments.Payment`,
mapped field by field:

- ``data.object.id`` (``pi_...``) is the payment id: the one-payment-id rule
  makes a redelivery a replay, and the same intent used for another purpose a
  conflict;
- ``data.object.metadata.customer`` is the customer (required), and
  ``metadata.invoice``, when present, names the invoice it pays; otherwise it
  tops up the customer's wallet;
- ``data.object.amount_received`` (an integer in Stripe's minor unit of the
  currency) is the amount, shifted by Stripe's exponent of the currency
  (:func:`stripe_exponent`), not by the pricebook's display scale nor ISO
  4217's: ``1999`` ``usd`` is 19.99 USD, ``500`` ``jpy`` is 500 JPY, ``1000``
  ``mga`` is 1,000 MGA, ``50000`` ``isk`` is 500 ISK. An amount finer than the
  pricebook's scale of the asset is refused (``invalid_amount``);
- ``data.object.currency`` upper-cased is the asset;
- the event's ``created`` is the payment's time.

Other event types are not payments: :func:`stripe_payment` returns None for
them and a server answers them 2xx so Stripe stops sending them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from rating.accounts import check_id
from rating.billing.payments import (
    DEFAULT_TOLERANCE,
    MAX_AMOUNT_MAGNITUDE,
    MAX_PAYLOAD_BYTES,
    Payment,
    PaymentRejected,
    PaymentResult,
    apply_payment,
)
from rating.errors import InvalidId
from rating.events import DuplicateKey, unique_keys
from rating.pricebook.model import Pricebook
from rating.refusals import PaymentRefusal
from rating.wallet.wallets import Wallets

#: Currencies whose Stripe amounts are whole units (Stripe's zero-decimal list; ISO 4217 gives MGA two places).
ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)
#: Currencies whose Stripe amounts are thousandths. Every other currency's are hundredths, ISK's included
#: (ISO 4217 gives it none; Stripe keeps it two-decimal for compatibility).
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])

#: The one event type that books money; every other type is acknowledged and ignored.
SUCCEEDED = "payment_intent.succeeded"


def stripe_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload`` at ``timestamp`` (tests, tools)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_stripe(
    payload: bytes,
    header: str | None,
    secrets: str | Sequence[str],
    *,
    now: dt.datetime,
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """The webhook event of ``payload`` if its ``Stripe-Signature`` ``header`` verifies under one of ``secrets``
    within ``tolerance`` of ``now``; else :class:`~rating.billing.payments.PaymentRejected` with its code."""
    active = [secrets] if isinstance(secrets, str) else [secret for secret in secrets if secret]
    if not any(active):
        raise PaymentRejected(PaymentRefusal.NO_SECRET, "no Stripe webhook secret is configured")
    if not header:
        raise PaymentRejected(PaymentRefusal.UNSIGNED, "the webhook carries no Stripe-Signature header")
    timestamp, signatures = _parse_header(header)
    signed = f"{timestamp}.".encode() + payload
    expected = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in active]
    if not any(hmac.compare_digest(want, given) for want in expected for given in signatures):
        raise PaymentRejected(PaymentRefusal.BAD_SIGNATURE, "no v1 signature matches the payload")
    sent = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    if abs(now - sent) > tolerance:
        raise PaymentRejected(
            PaymentRefusal.STALE, f"signed at {sent.isoformat()}, more than {tolerance} from now ({now.isoformat()})"
        )
    return _parse_event(payload)


def _parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the v1 signatures of a ``Stripe-Signature`` header (other schemes are ignored)."""
    timestamp: int | None = None
    signatures = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            signatures.append(value)
    if timestamp is None or not signatures:
        raise PaymentRejected(PaymentRefusal.BAD_SIGNATURE, "the Stripe-Signature header has no t= and v1= pair")
    return timestamp, signatures


def _parse_event(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload is over {MAX_PAYLOAD_BYTES} bytes")
    try:
        event = json.loads(payload, parse_float=Decimal, object_pairs_hook=unique_keys)
    except DuplicateKey as error:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload is not valid: {error}") from None
    except (ValueError, RecursionError) as error:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload is not JSON ({type(error).__name__})") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise PaymentRejected(PaymentRefusal.MALFORMED, "the payload is not a Stripe event (no type)")
    return event


def stripe_payment(event: dict[str, Any], book: Pricebook) -> Payment | None:
    """The payment a verified Stripe ``event`` makes, or None for an event type that is not a payment."""
    if event["type"] != SUCCEEDED:
        return None
    intent = _field(event, "data", dict).get("object")
    if not isinstance(intent, dict):
        raise PaymentRejected(PaymentRefusal.MALFORMED, "the event has no data.object")
    metadata = intent.get("metadata") or {}
    if not isinstance(metadata, dict) or not isinstance(metadata.get("customer"), str):
        raise PaymentRejected(PaymentRefusal.MALFORMED, "the payment intent has no metadata.customer")
    invoice = metadata.get("invoice")
    if invoice is not None and not isinstance(invoice, str):
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"metadata.invoice must be an invoice number, got {invoice!r}")
    try:
        payment_id, customer = check_id("payment", intent.get("id")), check_id("customer", metadata["customer"])
    except InvalidId as error:
        raise PaymentRejected(PaymentRefusal.INVALID_ID, str(error)) from None
    currency = intent.get("currency")
    asset = currency.upper() if isinstance(currency, str) else None
    if asset is None or asset not in book.declared_assets():
        known = ", ".join(sorted(book.declared_assets()))
        raise PaymentRejected(
            PaymentRefusal.UNKNOWN_ASSET, f"currency {currency!r} is not one of the pricebook's: {known}"
        )
    if intent.get("status", "succeeded") != "succeeded":
        raise PaymentRejected(PaymentRefusal.NOT_SUCCEEDED, f"payment intent status is {intent.get('status')!r}")
    minor = intent.get("amount_received")
    exponent = stripe_exponent(asset)
    if type(minor) is not int or minor <= 0 or minor >= 10 ** (MAX_AMOUNT_MAGNITUDE + exponent):
        raise PaymentRejected(
            PaymentRefusal.INVALID_AMOUNT, f"amount_received must be a positive integer of minor units, got {minor!r}"
        )
    amount = _within_scale(Decimal(minor).scaleb(-exponent), asset, book.scale_of(asset))
    created = _field(event, "created", int)
    return Payment(payment_id, customer, asset, amount, dt.datetime.fromtimestamp(created, dt.UTC), invoice)


def _within_scale(amount: Decimal, asset: str, scale: int) -> Decimal:
    """``amount`` at no more places than the pricebook's ``scale`` of ``asset`` (500.00 ISK is 500); finer is
    refused, never rounded."""
    places = -int(amount.as_tuple().exponent)
    if places <= scale:
        return amount
    whole = amount.quantize(Decimal(1).scaleb(-scale))
    if whole != amount:
        raise PaymentRejected(
            PaymentRefusal.INVALID_AMOUNT, f"{amount} {asset} has more decimal places than the pricebook's {scale}"
        )
    return whole


def stripe_exponent(asset: str) -> int:
    """How many decimal places Stripe's integer amounts of ``asset`` (upper case) carry."""
    return 0 if asset in ZERO_DECIMAL else 3 if asset in THREE_DECIMAL else 2


def _field(event: dict[str, Any], name: str, kind: type) -> Any:
    value = event.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the event's {name} is missing or not a {kind.__name__}")
    return value


def confirm_stripe(
    wallets: Wallets,
    payload: bytes,
    header: str | None,
    secrets: str | Sequence[str],
    book: Pricebook,
    *,
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
    clock: Callable[[], dt.datetime] | None = None,
) -> PaymentResult | None:
    """Book a Stripe webhook: verify it, map a succeeded payment intent, and top up or pay the invoice once per
    intent id. None: a verified event that is not a payment (nothing booked)."""
    event = verify_stripe(payload, header, secrets, now=(clock or wallets.clock)(), tolerance=tolerance)
    payment = stripe_payment(event, book)
    return None if payment is None else apply_payment(wallets, payment)
