"""Payment confirmations: only a verified, successful, well-formed payment credits a wallet, once."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal

import pytest

from rating.billing.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.pricebook.model import Pricebook
from rating.refusals import PaymentRefusal
from rating.storage import Storage
from rating.wallet.wallets import Wallets
from tests.helpers import SIMPLE_PRICEBOOK

SECRET = b"whsec_test"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
BOOK = SIMPLE_PRICEBOOK + "assets:\n  CREDITS: {scale: 4}\n"


def payload(**fields: object) -> bytes:
    data = {
        "payment_id": "pi_1",
        "customer": "acme",
        "asset": "USD",
        "amount": "100.00",
        "status": "succeeded",
        "created": NOW.isoformat(),
    }
    return json.dumps(data | fields).encode()


@pytest.fixture
def pricebook(book: Callable[[str], Pricebook]) -> Pricebook:
    return book(BOOK)


@pytest.fixture
def wallets(storage: Storage) -> Wallets:
    return Wallets(storage, lambda: NOW)


def available(wallets: Wallets, asset: str = "USD") -> Decimal:
    balance = wallets.balance("acme").get(asset)
    return balance.available if balance else Decimal(0)


def test_a_signed_payment_is_credited_once(wallets: Wallets, pricebook: Pricebook) -> None:
    body = payload()
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook) is PaymentResult.CREDITED
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook) is PaymentResult.REPLAYED
    assert available(wallets) == Decimal("100.00")


def test_a_secret_can_be_rotated_without_downtime(wallets: Wallets, pricebook: Pricebook) -> None:
    old, new = b"whsec_old", b"whsec_new"
    first, second = payload(payment_id="pi_old"), payload(payment_id="pi_new")
    assert confirm_payment(wallets, first, sign(first, old), [new, old], pricebook) is PaymentResult.CREDITED
    assert confirm_payment(wallets, second, sign(second, new), [new, old], pricebook) is PaymentResult.CREDITED
    with pytest.raises(PaymentRejected) as retired:
        confirm_payment(wallets, payload(payment_id="pi_3"), sign(payload(payment_id="pi_3"), old), [new], pricebook)
    assert retired.value.code is PaymentRefusal.BAD_SIGNATURE
    assert available(wallets) == Decimal("200.00")


def test_custom_assets_of_the_pricebook_are_credited(wallets: Wallets, pricebook: Pricebook) -> None:
    body = payload(asset="CREDITS", amount="12.5")
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook) is PaymentResult.CREDITED
    assert available(wallets, "CREDITS") == Decimal("12.5")


def signed(**fields: object) -> tuple[bytes, str]:
    body = payload(**fields)
    return body, sign(body, SECRET)


DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
HOUR_AGO = (NOW - dt.timedelta(hours=1)).isoformat()

REFUSED = [
    (payload(), None, PaymentRefusal.UNSIGNED),
    (payload(), "", PaymentRefusal.UNSIGNED),
    (payload(), "zz" * 32, PaymentRefusal.BAD_SIGNATURE),  # not hex: named, never a TypeError
    (payload(), "é" * 64, PaymentRefusal.BAD_SIGNATURE),
    (payload(amount="1000.00"), sign(payload(), SECRET), PaymentRefusal.BAD_SIGNATURE),  # tampered after signing
    (payload(), sign(payload(), b"another secret"), PaymentRefusal.BAD_SIGNATURE),
    (b"not json", sign(b"not json", SECRET), PaymentRefusal.MALFORMED),
    (DEEP, sign(DEEP, SECRET), PaymentRefusal.MALFORMED),
    (b"[1]", sign(b"[1]", SECRET), PaymentRefusal.MALFORMED),
    (*signed(created=HOUR_AGO), PaymentRefusal.STALE),  # an old signature replayed
    (*signed(created="2026-11-23T10:00:00"), PaymentRefusal.MALFORMED),
    (*signed(status="failed"), PaymentRefusal.NOT_SUCCEEDED),
    (*signed(customer=None), PaymentRefusal.INVALID_ID),
    (*signed(customer=""), PaymentRefusal.INVALID_ID),
    (*signed(customer="bob:team"), PaymentRefusal.INVALID_ID),
    (*signed(payment_id=None), PaymentRefusal.INVALID_ID),
    (*signed(asset="usd"), PaymentRefusal.UNKNOWN_ASSET),
    (*signed(asset="XYZ"), PaymentRefusal.UNKNOWN_ASSET),
    (*signed(asset=None), PaymentRefusal.UNKNOWN_ASSET),
    (*signed(amount="lots"), PaymentRefusal.INVALID_AMOUNT),
    (*signed(amount="-5"), PaymentRefusal.INVALID_AMOUNT),
    (*signed(amount="0"), PaymentRefusal.INVALID_AMOUNT),
    (*signed(amount="1E+999999"), PaymentRefusal.INVALID_AMOUNT),
    (*signed(amount="0.001"), PaymentRefusal.INVALID_AMOUNT),  # finer than a cent
    (*signed(amount=True), PaymentRefusal.INVALID_AMOUNT),
    (*signed(amount=" 100.00 "), PaymentRefusal.INVALID_AMOUNT),  # Decimal() would read these three
    (*signed(amount="1_00"), PaymentRefusal.INVALID_AMOUNT),
    (*signed(amount="100.00\n"), PaymentRefusal.INVALID_AMOUNT),
]


def _twice(key: str, value: str) -> bytes:
    """A payload that gives ``key`` twice: its own value first, then ``value``."""
    body = payload()
    return body[:-1] + f', "{key}": "{value}"}}'.encode()


@pytest.mark.parametrize("key, value", [("amount", "1000.00"), ("customer", "mallory"), ("payment_id", "pi_2")])
def test_a_payload_giving_a_key_twice_is_malformed_never_read_by_its_last_value(
    wallets: Wallets, pricebook: Pricebook, key: str, value: str
) -> None:
    body = _twice(key, value)
    assert json.loads(body)[key] == value  # what a plain JSON reader would credit
    with pytest.raises(PaymentRejected, match="appears twice") as error:
        confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook)
    assert error.value.code is PaymentRefusal.MALFORMED
    assert list(wallets.storage.transactions()) == []


@pytest.mark.parametrize("body, signature, code", REFUSED, ids=[f"{i}-{case[2]}" for i, case in enumerate(REFUSED)])
def test_anything_else_credits_nothing_and_says_why(
    wallets: Wallets, pricebook: Pricebook, body: bytes, signature: str | None, code: PaymentRefusal
) -> None:
    with pytest.raises(PaymentRejected) as error:
        confirm_payment(wallets, body, signature, SECRET, pricebook)
    assert error.value.code is code
    assert list(wallets.storage.transactions()) == []


def test_a_reused_payment_id_with_another_amount_is_a_named_conflict(wallets: Wallets, pricebook: Pricebook) -> None:
    confirm_payment(wallets, *signed(), SECRET, pricebook)
    with pytest.raises(PaymentRejected) as error:
        confirm_payment(wallets, *signed(amount="5.00"), SECRET, pricebook)
    assert error.value.code is PaymentRefusal.CONFLICT
    assert available(wallets) == Decimal("100.00")


def test_without_a_secret_nothing_is_credited(wallets: Wallets, pricebook: Pricebook) -> None:
    with pytest.raises(PaymentRejected) as error:
        confirm_payment(wallets, payload(), sign(payload(), b""), b"", pricebook)
    assert error.value.code is PaymentRefusal.NO_SECRET
