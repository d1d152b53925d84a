"""Payment confirmations: only a verified, successful payment credits a wallet, once."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from rating.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.storage import Storage
from rating.wallet import Wallets

SECRET = b"whsec_test"


def payload(**fields: object) -> bytes:
    data = {"payment_id": "pi_1", "customer": "acme", "asset": "USD", "amount": "100.00", "status": "succeeded"}
    return json.dumps(data | fields).encode()


def available(wallets: Wallets) -> Decimal:
    balance = wallets.balance("acme").get("USD")
    return balance.available if balance else Decimal(0)


def test_a_signed_payment_is_credited_once(storage: Storage) -> None:
    wallets = Wallets(storage)
    body = payload()
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET) is PaymentResult.CREDITED
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET) is PaymentResult.REPLAYED
    assert available(wallets) == Decimal("100.00")


@pytest.mark.parametrize(
    "body, signature, code",
    [
        (payload(), None, "unsigned"),
        (payload(), "", "unsigned"),
        (payload(amount="1000.00"), sign(payload(), SECRET), "bad_signature"),  # tampered after signing
        (payload(), sign(payload(), b"another secret"), "bad_signature"),
        (payload(status="failed"), sign(payload(status="failed"), SECRET), "not_succeeded"),
        (b"not json", sign(b"not json", SECRET), "malformed"),
        (payload(amount="lots"), sign(payload(amount="lots"), SECRET), "malformed"),
        (payload(amount="-5"), sign(payload(amount="-5"), SECRET), "malformed"),
    ],
)
def test_anything_else_credits_nothing_and_says_why(
    storage: Storage, body: bytes, signature: str | None, code: str
) -> None:
    wallets = Wallets(storage)
    with pytest.raises(PaymentRejected) as error:
        confirm_payment(wallets, body, signature, SECRET)
    assert error.value.code == code
    assert available(wallets) == 0 and list(storage.transactions()) == []


def test_without_a_secret_nothing_is_credited(storage: Storage) -> None:
    with pytest.raises(PaymentRejected, match="no_secret"):
        confirm_payment(Wallets(storage), payload(), sign(payload(), b""), b"")
