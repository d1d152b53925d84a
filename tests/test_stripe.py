"""Stripe in: signed ``payment_intent.succeeded`` webhooks top up wallets or pay invoices, once per intent id."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from rating.billing.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.billing.stripe import confirm_stripe, stripe_signature, verify_stripe
from rating.invoices.settle import invoice_status
from rating.refusals import PaymentRefusal
from rating.storage import Storage
from rating.wallet.wallets import Wallets
from tests.helpers import SIMPLE_PRICEBOOK
from tests.test_invoices import ISSUED
from tests.test_settlement import issued_invoice

SECRET = "whsec_test_stripe"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
BOOK = SIMPLE_PRICEBOOK + "assets:\n  JPY: {scale: 0}\n"


def intent_event(
    amount: int = 1999, currency: str = "usd", type: str = "payment_intent.succeeded", **metadata: str
) -> bytes:
    intent = {
        "id": "pi_3Nabc",
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": currency,
        "status": "succeeded",
        "metadata": {"customer": "acme", **metadata},
    }
    created = int(NOW.timestamp())
    event = {"id": "evt_1", "object": "event", "type": type, "created": created, "data": {"object": intent}}
    return json.dumps(event).encode()


def signed(body: bytes, secret: str = SECRET, at: dt.datetime = NOW) -> str:
    return stripe_signature(body, secret, int(at.timestamp()))


def wallets_of(storage: Storage, at: dt.datetime = NOW) -> Wallets:
    return Wallets(storage, lambda: at)


def available(wallets: Wallets, asset: str = "USD") -> Decimal:
    balance = wallets.balance("acme").get(asset)
    return balance.available if balance else Decimal(0)


def test_a_succeeded_intent_tops_up_once_in_major_units(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    pricebook, wallets, body = book(BOOK), wallets_of(storage), intent_event()
    assert confirm_stripe(wallets, body, signed(body), SECRET, pricebook) is PaymentResult.CREDITED
    assert confirm_stripe(wallets, body, signed(body), SECRET, pricebook) is PaymentResult.REPLAYED  # redelivered
    assert available(wallets) == Decimal("19.99")
    assert storage.verify() == []


def test_minor_units_follow_the_currency_scale(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    pricebook, wallets, body = book(BOOK), wallets_of(storage), intent_event(amount=500, currency="jpy")
    assert confirm_stripe(wallets, body, signed(body), SECRET, pricebook) is PaymentResult.CREDITED
    assert available(wallets, "JPY") == Decimal("500")


def test_an_intent_naming_an_invoice_pays_it_and_an_overpayment_is_refused(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    invoice = issued_invoice(storage, book)  # 1.50 USD
    pricebook, wallets = book(BOOK), wallets_of(storage)
    too_much = intent_event(amount=151, invoice=invoice.number)
    with pytest.raises(PaymentRejected) as refused:
        confirm_stripe(wallets, too_much, signed(too_much), SECRET, pricebook)
    assert refused.value.code == PaymentRefusal.INVOICE_REFUSED
    body = intent_event(amount=150, invoice=invoice.number)
    assert confirm_stripe(wallets, body, signed(body), SECRET, pricebook) is PaymentResult.CREDITED
    assert invoice_status(storage, invoice, ISSUED).state == "paid"
    assert available(wallets) == 0  # an invoice payment is not a top-up


def test_the_intent_id_is_the_payment_id_whichever_way_the_payment_came(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    pricebook, wallets, body = book(BOOK), wallets_of(storage), intent_event()
    ours = json.dumps(
        {"payment_id": "pi_3Nabc", "customer": "acme", "asset": "USD", "amount": "5.00", "status": "succeeded",
         "created": NOW.isoformat()}
    ).encode()  # fmt: skip
    assert confirm_payment(wallets, ours, sign(ours, b"ours"), b"ours", pricebook) is PaymentResult.CREDITED
    with pytest.raises(PaymentRejected) as conflict:  # the same id for 19.99: one payment id, one payment
        confirm_stripe(wallets, body, signed(body), SECRET, pricebook)
    assert conflict.value.code == PaymentRefusal.CONFLICT
    assert available(wallets) == Decimal("5.00")


@pytest.mark.parametrize(
    ("header", "secrets", "at", "code"),
    [
        (None, SECRET, NOW, PaymentRefusal.UNSIGNED),
        ("v1=" + "0" * 64, SECRET, NOW, PaymentRefusal.BAD_SIGNATURE),  # no timestamp
        ("t=1,v0=" + "0" * 64, SECRET, NOW, PaymentRefusal.BAD_SIGNATURE),  # only the legacy scheme
        ("SIGNED-BY-OTHER", SECRET, NOW, PaymentRefusal.BAD_SIGNATURE),
        ("SIGNED", [], NOW, PaymentRefusal.NO_SECRET),
        ("SIGNED", SECRET, NOW + dt.timedelta(minutes=6), PaymentRefusal.STALE),  # an old delivery replayed
        ("SIGNED", SECRET, NOW - dt.timedelta(minutes=6), PaymentRefusal.STALE),
    ],
)
def test_a_webhook_that_does_not_verify_books_nothing(
    storage: Storage, book, header: str | None, secrets: object, at: dt.datetime, code: PaymentRefusal
) -> None:  # type: ignore[no-untyped-def]
    body = intent_event()
    if header == "SIGNED":
        header = signed(body)
    elif header == "SIGNED-BY-OTHER":
        header = signed(body, "whsec_other")
    with pytest.raises(PaymentRejected) as refused:
        confirm_stripe(wallets_of(storage, at), body, header, secrets, book(BOOK))  # type: ignore[arg-type]
    assert refused.value.code == code
    assert available(wallets_of(storage)) == 0


def test_a_tampered_body_fails_and_a_rotated_secret_still_verifies() -> None:
    body = intent_event()
    header = signed(body, "whsec_old")
    assert verify_stripe(body, header, ["whsec_new", "whsec_old"], now=NOW)["type"] == "payment_intent.succeeded"
    with pytest.raises(PaymentRejected) as refused:
        verify_stripe(body.replace(b"1999", b"9999"), header, "whsec_old", now=NOW)
    assert refused.value.code == PaymentRefusal.BAD_SIGNATURE
    both = header + ",v1=" + "f" * 64  # Stripe sends one v1 per active secret: any one may match
    assert verify_stripe(body, both, "whsec_old", now=NOW)["id"] == "evt_1"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (intent_event(amount=0), PaymentRefusal.INVALID_AMOUNT),
        (intent_event(currency="eur"), PaymentRefusal.UNKNOWN_ASSET),
        (intent_event().replace(b'"customer": "acme"', b'"cust": "acme"'), PaymentRefusal.MALFORMED),
        (intent_event().replace(b'"pi_3Nabc"', b'"pi 3"'), PaymentRefusal.INVALID_ID),
        (intent_event().replace(b'"status": "succeeded"', b'"status": "processing"'), PaymentRefusal.NOT_SUCCEEDED),
        (intent_event().replace(b"1999,", b"19.99,"), PaymentRefusal.INVALID_AMOUNT),
        (b"not json", PaymentRefusal.MALFORMED),
    ],
)
def test_a_verified_intent_that_is_not_a_payment_we_can_book_says_why(
    storage: Storage, book, body: bytes, code: PaymentRefusal
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PaymentRejected) as refused:
        confirm_stripe(wallets_of(storage), body, signed(body), SECRET, book(BOOK))
    assert refused.value.code == code
    assert available(wallets_of(storage)) == 0


def test_other_event_types_are_acknowledged_and_book_nothing(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    body = intent_event(type="payment_intent.created")
    assert confirm_stripe(wallets_of(storage), body, signed(body), SECRET, book(BOOK)) is None
    assert available(wallets_of(storage)) == 0
    assert list(storage.transactions()) == []


@pytest.mark.parametrize(
    ("currency", "assets", "received", "paid"),
    [
        # Stripe keeps ISK two-decimal (ISO 4217 gives it none): 50,000 is 500 kr.
        ("ISK", "", 50_000, Decimal(500)),
        # Stripe lists MGA among its zero-decimal currencies (ISO 4217 gives it two): 1,000 is 1,000 Ar.
        ("MGA", "", 1_000, Decimal(1000)),
        # Thousandths: 1,250 is 1.250 KWD.
        ("KWD", "", 1_250, Decimal("1.250")),
        # A pricebook showing USD to four places does not change Stripe's cents.
        ("USD", "assets:\n  USD: {scale: 4}\n", 1_999, Decimal("19.99")),
    ],
)
def test_minor_units_are_stripes_whatever_the_pricebook_or_iso_say(
    storage: Storage, book, currency: str, assets: str, received: int, paid: Decimal
) -> None:  # type: ignore[no-untyped-def]
    pricebook = book(SIMPLE_PRICEBOOK.replace("currency: USD", f"currency: {currency}") + assets)
    body = intent_event(amount=received, currency=currency.lower())
    assert confirm_stripe(wallets_of(storage), body, signed(body), SECRET, pricebook) is PaymentResult.CREDITED
    assert available(wallets_of(storage), currency) == paid


def test_an_amount_finer_than_the_pricebook_scale_is_refused_not_rounded(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    pricebook = book(SIMPLE_PRICEBOOK.replace("currency: USD", "currency: ISK"))
    body = intent_event(amount=50_050, currency="isk")  # 500.50 kr: the pricebook keeps whole krónur
    with pytest.raises(PaymentRejected) as refused:
        confirm_stripe(wallets_of(storage), body, signed(body), SECRET, pricebook)
    assert refused.value.code == PaymentRefusal.INVALID_AMOUNT
