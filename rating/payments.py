"""Top-ups credited only after a verified payment confirmation.

A payment processor calls back with a JSON payload and an HMAC-SHA256
signature of its exact bytes under a shared secret. :func:`confirm_payment`
credits the wallet only when the signature verifies (compared in constant
time) and the payload says the payment succeeded; the payment id makes it
idempotent, so a replayed confirmation credits nothing. Every outcome is named,
in the spirit of TigerBeetle's result codes.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal

from rating.errors import InvalidAmount, RatingError
from rating.money import to_decimal
from rating.wallet import Wallets


class PaymentResult(enum.Enum):
    """What a confirmation did."""

    CREDITED = "credited"
    REPLAYED = "replayed"


class PaymentRejected(RatingError):
    """A confirmation that credits nothing, with its named reason in ``code``."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Payment:
    """A verified, successful payment."""

    id: str
    customer: str
    asset: str
    amount: Decimal


def sign(payload: bytes, secret: bytes) -> str:
    """The hex HMAC-SHA256 of ``payload`` under ``secret`` (what the processor sends)."""
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def verify(payload: bytes, signature: str | None, secret: bytes) -> Payment:
    """The payment ``payload`` describes, if ``signature`` is right and it succeeded; else :class:`PaymentRejected`."""
    if not secret:
        raise PaymentRejected("no_secret", "no payment secret is configured")
    if not signature:
        raise PaymentRejected("unsigned", "the confirmation carries no signature")
    if not hmac.compare_digest(sign(payload, secret), signature.strip().lower()):
        raise PaymentRejected("bad_signature", "the signature does not match the payload")
    try:
        data = json.loads(payload, parse_float=Decimal)
        if data.get("status") != "succeeded":
            raise PaymentRejected("not_succeeded", f"payment status is {data.get('status')!r}")
        return Payment(
            str(data["payment_id"]), str(data["customer"]), str(data["asset"]), to_decimal(data["amount"], "amount")
        )
    except PaymentRejected:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, InvalidAmount) as error:
        raise PaymentRejected("malformed", f"the payload is not a payment confirmation ({error})") from None


def confirm_payment(wallets: Wallets, payload: bytes, signature: str | None, secret: bytes) -> PaymentResult:
    """Credit a verified payment to the customer's wallet, once per payment id."""
    payment = verify(payload, signature, secret)
    if payment.amount <= 0:
        raise PaymentRejected("malformed", f"the amount must be positive, got {payment.amount}")
    credited = wallets.deposit(payment.customer, payment.asset, payment.amount, f"payment:{payment.id}")
    return PaymentResult.CREDITED if credited else PaymentResult.REPLAYED
