"""Wallet statements from the ledger alone, refunds and chargebacks of top-ups, and the accountant's CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from rating.accounts import receivable_account, wallet_account
from rating.cli import main
from rating.documents import statement_html, statement_pdf
from rating.engine import Engine
from rating.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.refusals import PaymentRefusal
from rating.statements import statement, statement_csv
from rating.storage import Storage
from rating.wallet import Wallets
from tests.helpers import SIMPLE_PRICEBOOK, event

WALLET_BOOK = SIMPLE_PRICEBOOK + "  wally: {plan: basic, billing: wallet}\n"
NOVEMBER = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
SECRET = b"whsec_test"


def history(storage: Storage, book) -> tuple[Engine, Wallets]:  # type: ignore[no-untyped-def]
    """10 USD topped up, a 2 USD grant, 1.26 USD of usage, 5 USD refunded, 3.01 USD more usage."""
    now = [NOVEMBER]
    wallets = Wallets(storage, lambda: now[0])
    engine = Engine(book(WALLET_BOOK), storage)
    wallets.deposit("wally", "USD", Decimal(10), "payment:pi_1")
    wallets.grant("wally", "USD", Decimal(2), "promo", kind="promotional", starts=NOVEMBER)
    engine.rate(event("e1", customer="wally", at=NOVEMBER + dt.timedelta(hours=1), tokens=1500, model="m"))
    now[0] = NOVEMBER + dt.timedelta(days=1)
    assert wallets.take_back("wally", "USD", Decimal(5), "re_1", "payment:pi_1", "refund")
    engine.rate(event("e2", customer="wally", at=NOVEMBER + dt.timedelta(days=2), tokens=6000, model="m"))
    now[0] = NOVEMBER + dt.timedelta(days=3)
    return engine, wallets


def test_a_chargeback_of_spent_funds_is_owed_and_the_statement_adds_up(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    engine, wallets = history(storage, book)
    # 5 USD of the top-up are left to take back; only 2.73 USD of it is unspent.
    assert wallets.take_back("wally", "USD", Decimal(5), "cb_1", "payment:pi_1", "chargeback")
    assert not wallets.take_back("wally", "USD", Decimal(5), "cb_1", "payment:pi_1", "chargeback")  # a replay
    assert storage.balances([wallet_account("wally")]).get((wallet_account("wally"), "USD"), Decimal(0)) == 0
    assert storage.balances([receivable_account("wally")])[receivable_account("wally"), "USD"] == Decimal("2.27")
    [usd] = statement(storage, engine.pricebook, "wally", "2026-11").assets
    assert usd.movements == {
        "chargebacks": Decimal("-2.73"),
        "grants": Decimal("2"),
        "refunds": Decimal("-5"),
        "top-ups": Decimal("10"),
        "usage": Decimal("-4.27"),
    }
    assert (usd.opening, usd.closing, usd.owed) == (0, 0, Decimal("2.27"))
    assert usd.opening + sum(usd.movements.values()) == usd.closing
    assert storage.verify() == []


def test_more_than_is_left_of_a_top_up_cannot_be_taken_back(book) -> None:  # type: ignore[no-untyped-def]
    from rating.errors import UnknownDeposit
    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    _, wallets = history(storage, book)
    with pytest.raises(UnknownDeposit, match="more than the 5"):
        wallets.take_back("wally", "USD", Decimal("5.01"), "cb_2", "payment:pi_1", "chargeback")
    with pytest.raises(UnknownDeposit, match="no deposit"):
        wallets.take_back("wally", "USD", Decimal(1), "cb_3", "payment:pi_404", "chargeback")


def test_signed_refunds_take_back_a_top_up_once(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    wallets = Wallets(storage, lambda: NOVEMBER)
    pricebook = book(WALLET_BOOK)

    def signed(**fields: object) -> tuple[bytes, str]:
        data = {"customer": "wally", "asset": "USD", "status": "succeeded", "created": NOVEMBER.isoformat()} | fields
        body = json.dumps(data).encode()
        return body, sign(body, SECRET)

    assert (
        confirm_payment(wallets, *signed(payment_id="pi_1", amount="10.00"), SECRET, pricebook)
        is PaymentResult.CREDITED
    )
    refund = signed(payment_id="re_1", amount="4.00", type="refund", refunds="pi_1")
    assert confirm_payment(wallets, *refund, SECRET, pricebook) is PaymentResult.CREDITED
    assert confirm_payment(wallets, *refund, SECRET, pricebook) is PaymentResult.REPLAYED
    assert wallets.balance("wally")["USD"].available == Decimal(6)
    for fields, code in (
        ({"payment_id": "re_2", "amount": "7.00", "type": "refund", "refunds": "pi_1"}, PaymentRefusal.UNKNOWN_PAYMENT),
        ({"payment_id": "re_3", "amount": "1.00", "type": "refund", "refunds": "pi_9"}, PaymentRefusal.UNKNOWN_PAYMENT),
        ({"payment_id": "re_4", "amount": "1.00", "type": "refund"}, PaymentRefusal.MALFORMED),
    ):
        with pytest.raises(PaymentRejected) as refused:
            confirm_payment(wallets, *signed(**fields), SECRET, pricebook)
        assert refused.value.code == code


def test_the_csv_export_lists_every_movement_with_running_balances(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    engine, _ = history(storage, book)
    rows = list(csv.DictReader(io.StringIO(statement_csv(storage, engine.pricebook, ["wally"], "2026-11"))))
    last: dict[tuple[str, str], str] = {}
    for row in rows:
        last[row["account"], row["asset"]] = row["balance"]
    assert {k: Decimal(v) for k, v in last.items()} == {k: v for k, v in storage.balances(a for a, _ in last).items()}
    assert {row["kind"] for row in rows} == {"deposit", "grant", "rating", "refund"}


def test_a_statement_renders_as_html_and_pdf(book) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    engine, _ = history(storage, book)
    item = statement(storage, engine.pricebook, "wally", "2026-11")
    text = PdfReader(io.BytesIO(statement_pdf(item, "de"))).pages[0].extract_text()
    assert "Kontoauszug wally 2026-11" in text and "Aufladungen" in text and "10 USD" in text
    assert "Opening balance" in statement_html(item) and "tokens (m)" in statement_html(item)


def test_statement_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(WALLET_BOOK)
    from rating.pricebook import parse_pricebook
    from rating.registry import Registry
    from rating.storage.sqlite import SQLiteStorage

    with SQLiteStorage(tmp_path / "rating.db") as storage:
        history(storage, lambda text: parse_pricebook(text, Registry.load()))
    assert main(["statement", "show", "--period", "2026-11", "-p", "book.yaml", "-o", "json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert shown["customer"] == "wally" and Decimal(shown["assets"][0]["closing"]) == Decimal("2.73")
    assert main(["statement", "export", "--period", "2026-11", "-p", "book.yaml"]) == 0
    assert capsys.readouterr().out.startswith("date,customer,transaction,kind,account,asset,amount,balance")
