"""Top-ups credited only after a verified payment confirmation.

A payment processor calls back with a JSON payload and an HMAC-SHA256
signature (hex) of its exact bytes under a shared secret. :func:`confirm_payment`
credits the wallet only when the signature verifies under one of the active
secrets (compared in constant time; several, so a secret can be rotated without
downtime), the payload was created within the tolerance of now (an old
signature replayed is refused), the payment succeeded, its ids follow the id
grammar, its asset is one the pricebook declares and its amount is a positive
decimal within that asset's scale. The payment id makes it idempotent: a
replayed confirmation credits nothing, and the same id with other content is a
conflict. Every refusal has a code (:class:`~rating.refusals.PaymentRefusal`),
in the spirit of TigerBeetle's result codes.

A payload naming an ``invoice`` settles that invoice instead of topping up;
one of ``"type": "refund"`` or ``"chargeback"`` with ``"refunds": "pi_1"``
takes that top-up back (what was already spent is then owed on the
receivable, never left as negative funds).

The payload::

    {"payment_id": "pi_1", "customer": "acme", "asset": "USD", "amount": "100.00",
     "status": "succeeded", "created": "2026-11-23T10:00:00Z"}
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import os
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rating.accounts import check_id
from rating.errors import InvalidAmount, InvalidId, InvoiceError, RatingError, TransactionConflict, UnknownDeposit
from rating.events import DuplicateKey, unique_keys
from rating.ids import paid_reference
from rating.invoices.settle import find_invoice, pay_invoice
from rating.money import to_decimal
from rating.pricebook.model import Pricebook
from rating.refusals import InvoiceRefusal, PaymentRefusal
from rating.wallet.wallets import Wallets

#: Largest payload accepted, in bytes: confirmations are small.
MAX_PAYLOAD_BYTES = 64 * 1024
#: Deepest JSON nesting accepted in a payload.
MAX_NESTING = 16
#: Amounts at or above 10^15 are refused: no top-up is that large.
MAX_AMOUNT_MAGNITUDE = 15
#: Where the payment confirmation secrets and the Stripe webhook secrets are read from (comma-separated).
PAYMENT_SECRETS, STRIPE_SECRETS = "RATING_PAYMENT_SECRETS", "RATING_STRIPE_SECRETS"
#: How far a payload's ``created`` may be from now, either way.
DEFAULT_TOLERANCE = dt.timedelta(minutes=5)


class PaymentResult(enum.Enum):
    """What a confirmation did."""

    CREDITED = "credited"
    REPLAYED = "replayed"


class PaymentRejected(RatingError):
    """A confirmation that credits nothing, with its named reason in ``code``."""

    def __init__(self, code: PaymentRefusal, message: str) -> None:
        self.code = PaymentRefusal(code)
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Payment:
    """A verified, successful payment."""

    id: str
    customer: str
    asset: str
    amount: Decimal
    created: dt.datetime
    #: The invoice it pays, when it pays one (else it tops up the wallet).
    invoice: str | None = None
    #: ``payment``, or ``refund`` / ``chargeback`` of the payment ``refunds`` names.
    kind: str = "payment"
    refunds: str | None = None


def secrets_from_environment() -> tuple[list[bytes], list[str]]:
    """The payment confirmation secrets (``RATING_PAYMENT_SECRETS``) and the Stripe webhook secrets
    (``RATING_STRIPE_SECRETS``), comma-separated (several while one is rotated): read from the environment,
    never the command line, which other users of the machine can read."""

    def listed(variable: str) -> list[str]:
        return [secret.strip() for secret in os.environ.get(variable, "").split(",") if secret.strip()]

    return [secret.encode() for secret in listed(PAYMENT_SECRETS)], listed(STRIPE_SECRETS)


def sign(payload: bytes, secret: bytes) -> str:
    """The hex HMAC-SHA256 of ``payload`` under ``secret`` (what the processor sends)."""
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_signature(payload: bytes, signature: str | None, secrets: Sequence[bytes]) -> None:
    if not any(secrets):
        raise PaymentRejected(PaymentRefusal.NO_SECRET, "no payment secret is configured")
    if not signature:
        raise PaymentRejected(PaymentRefusal.UNSIGNED, "the confirmation carries no signature")
    given = signature.strip().lower()
    if len(given) != 64 or not set(given) <= set(string.hexdigits):
        raise PaymentRejected(PaymentRefusal.BAD_SIGNATURE, "the signature is not a hex HMAC-SHA256")
    if not any(secret and hmac.compare_digest(sign(payload, secret), given) for secret in secrets):
        raise PaymentRejected(PaymentRefusal.BAD_SIGNATURE, "the signature does not match the payload")


def _depth(value: Any, limit: int) -> bool:
    """Whether ``value`` nests no deeper than ``limit``."""
    if limit < 0:
        return False
    if isinstance(value, dict):
        return all(_depth(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth(v, limit - 1) for v in value)
    return True


def _parse(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload is over {MAX_PAYLOAD_BYTES} bytes")
    try:
        data = json.loads(payload, parse_float=Decimal, object_pairs_hook=unique_keys)
    except DuplicateKey as error:  # a second "amount" or "customer" must not silently win
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload is not valid: {error}") from None
    except (ValueError, RecursionError) as error:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload is not JSON ({type(error).__name__})") from None
    if not isinstance(data, dict) or not _depth(data, MAX_NESTING):
        raise PaymentRejected(PaymentRefusal.MALFORMED, "the payload is not a JSON object of bounded depth")
    missing = [k for k in ("payment_id", "customer", "asset", "amount", "status", "created") if k not in data]
    if missing:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"the payload lacks {', '.join(missing)}")
    return data


def _created(value: Any, now: dt.datetime, tolerance: dt.timedelta) -> dt.datetime:
    try:
        created = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    if created is None or created.tzinfo is None:
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"created must be an ISO 8601 time with a zone, got {value!r}")
    if abs(now - created) > tolerance:
        raise PaymentRejected(
            PaymentRefusal.STALE, f"created {created.isoformat()} is more than {tolerance} from now ({now.isoformat()})"
        )
    return created


def _amount(value: Any, asset: str, book: Pricebook) -> Decimal:
    try:
        amount = to_decimal(value, "amount")
    except InvalidAmount as error:
        raise PaymentRejected(PaymentRefusal.INVALID_AMOUNT, str(error)) from None
    scale = book.scale_of(asset)
    if amount <= 0 or amount.adjusted() >= MAX_AMOUNT_MAGNITUDE or -amount.as_tuple().exponent > scale:  # type: ignore[operator]
        raise PaymentRejected(
            PaymentRefusal.INVALID_AMOUNT,
            f"the amount must be positive, below 10^{MAX_AMOUNT_MAGNITUDE} and at most {scale} decimal places"
            f" of {asset}, got {value}",
        )
    return amount


def verify(
    payload: bytes,
    signature: str | None,
    secrets: bytes | Sequence[bytes],
    book: Pricebook,
    *,
    now: dt.datetime | None = None,
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
) -> Payment:
    """The payment ``payload`` describes, if everything checks out; else :class:`PaymentRejected` with its code."""
    _check_signature(payload, signature, [secrets] if isinstance(secrets, bytes) else list(secrets))
    data = _parse(payload)
    created = _created(data["created"], now or _utcnow(), tolerance)
    if data["status"] != "succeeded":
        raise PaymentRejected(PaymentRefusal.NOT_SUCCEEDED, f"payment status is {data['status']!r}")
    try:
        payment_id, customer = check_id("payment", data["payment_id"]), check_id("customer", data["customer"])
    except InvalidId as error:
        raise PaymentRejected(PaymentRefusal.INVALID_ID, str(error)) from None
    asset = data["asset"]
    if not isinstance(asset, str) or asset not in book.declared_assets():
        known = ", ".join(sorted(book.declared_assets()))
        raise PaymentRejected(PaymentRefusal.UNKNOWN_ASSET, f"asset {asset!r} is not one of the pricebook's: {known}")
    invoice, kind, refunds = data.get("invoice"), data.get("type", "payment"), data.get("refunds")
    if invoice is not None and not isinstance(invoice, str):
        raise PaymentRejected(PaymentRefusal.MALFORMED, f"invoice must be an invoice number, got {invoice!r}")
    if kind not in ("payment", "refund", "chargeback") or (kind == "payment") != (refunds is None):
        raise PaymentRejected(
            PaymentRefusal.MALFORMED, "type is payment, or refund or chargeback with the payment it refunds"
        )
    if refunds is not None:
        try:
            check_id("payment", refunds)
        except InvalidId as error:
            raise PaymentRejected(PaymentRefusal.INVALID_ID, str(error)) from None
    amount = _amount(data["amount"], asset, book)
    return Payment(payment_id, customer, asset, amount, created, invoice, kind, refunds)


def confirm_payment(
    wallets: Wallets,
    payload: bytes,
    signature: str | None,
    secrets: bytes | Sequence[bytes],
    book: Pricebook,
    *,
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
    clock: Callable[[], dt.datetime] | None = None,
) -> PaymentResult:
    """Credit a verified payment to the customer's wallet, or settle the invoice it names, once per payment id."""
    payment = verify(payload, signature, secrets, book, now=(clock or wallets.clock)(), tolerance=tolerance)
    return apply_payment(wallets, payment)


def apply_payment(wallets: Wallets, payment: Payment) -> PaymentResult:
    """Book a verified ``payment``: settle the invoice it names, take back the top-up it refunds, or credit the
    customer's wallet; once per payment id (a replay books nothing, the same id with other content is a conflict).

    Every inbound adapter (our signed confirmations, :mod:`rating.billing.stripe`) verifies its own way and
    books through here, so one payment id means one payment whichever way it came.
    """
    if payment.invoice is not None:
        return _settle(wallets, payment)
    if payment.refunds is not None:
        try:
            taken = wallets.take_back(
                payment.customer,
                payment.asset,
                payment.amount,
                payment.id,
                paid_reference(payment.refunds),
                payment.kind,
            )
        except UnknownDeposit as error:
            raise PaymentRejected(PaymentRefusal.UNKNOWN_PAYMENT, str(error)) from None
        except TransactionConflict as error:
            raise PaymentRejected(PaymentRefusal.CONFLICT, f"{payment.kind} {payment.id}: {error}") from None
        return PaymentResult.CREDITED if taken else PaymentResult.REPLAYED
    try:
        credited = wallets.deposit(payment.customer, payment.asset, payment.amount, paid_reference(payment.id))
    except TransactionConflict as error:
        raise PaymentRejected(PaymentRefusal.CONFLICT, f"payment {payment.id}: {error}") from None
    return PaymentResult.CREDITED if credited else PaymentResult.REPLAYED


def _settle(wallets: Wallets, payment: Payment) -> PaymentResult:
    """Settle the invoice a payment names: its customer and currency must be the invoice's."""
    try:
        invoice = find_invoice(wallets.storage, payment.invoice or "")
        if (invoice.customer, invoice.currency) != (payment.customer, payment.asset):
            raise PaymentRejected(
                PaymentRefusal.CONFLICT,
                f"{invoice.number} bills {invoice.customer!r} in {invoice.currency}, the payment is"
                f" {payment.customer!r} in {payment.asset}",
            )
        settled = pay_invoice(wallets.storage, invoice.number, payment.amount, payment.id, payment.created)
    except InvoiceError as error:
        code = PaymentRefusal.CONFLICT if error.code == InvoiceRefusal.CONFLICT else PaymentRefusal.INVOICE_REFUSED
        raise PaymentRejected(code, str(error)) from None
    return PaymentResult.CREDITED if settled else PaymentResult.REPLAYED
