"""Wallet statements from the ledger alone, refunds and chargebacks of top-ups, and the accountant's CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.accounts import receivable_account, wallet_account
from rating.billing.close import close_period
from rating.billing.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.billing.statements import statement, statement_csv
from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.engine import Engine
from rating.invoices.render import statement_html, statement_pdf
from rating.refusals import PaymentRefusal
from rating.storage import Storage
from rating.storage.sqlite import SQLiteStorage
from rating.wallet.wallets import Wallets
from tests.helpers import EXAMPLE, SIMPLE_PRICEBOOK, event

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


def test_a_statement_has_the_seller_and_buyer_blocks_column_headers_and_no_negative_amount(book) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    from rating.invoices.profiles import parse_billing
    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    engine, wallets = history(storage, book)
    # a chargeback of spent funds: 2.27 USD owed, never negative funds
    assert wallets.take_back("wally", "USD", Decimal(5), "cb_1", "payment:pi_1", "chargeback")
    billing = parse_billing(
        "seller: {legal_name: Seller GmbH, address: [Berlin], country: DE, tax_id: DE1}\n"
        "profiles:\n  wally: {legal_name: Wally Ltd, address: [1 Wall St], country: GB}\n"
    )
    item = statement(storage, engine.pricebook, "wally", "2026-11")
    [usd] = item.assets
    assert usd.movements["usage"] < 0 and usd.owed > 0 and usd.closing == 0  # what the ledger says
    text = PdfReader(io.BytesIO(statement_pdf(item, "en", (), billing.seller, billing.profiles["wally"]))).pages[0]
    shown = text.extract_text()
    for expected in ("Seller GmbH", "Tax ID: DE1", "CUSTOMER", "Wally Ltd", "United Kingdom",
                     "Funds (USD) Added Taken Funds", "Meter and model Quantity Amount", "Top-ups 10 USD",
                     "Amount due 2.27 USD", "Chargebacks 2.73 USD", "Page 1 of 1"):  # fmt: skip
        assert expected in shown, expected
    spent = -usd.movements["usage"]
    assert spent == Decimal("4.27") and "Usage 4.27 USD" in shown  # taken: a positive amount in its column
    assert not re.search(r"[-−]\s?[0-9]", shown.replace("2026-11", ""))  # no negative amount anywhere
    page = statement_html(item, "en", billing.seller, billing.profiles["wally"])
    assert "Wally Ltd" in page and "<th class=n>Added</th>" in page and "Amount due" in page
    assert "-4.27" not in page and "-2.73" not in page


def test_statement_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(WALLET_BOOK)
    from rating.pricebook.model import parse_pricebook
    from rating.registry import Registry
    from rating.storage.sqlite import SQLiteStorage

    with SQLiteStorage(tmp_path / "rating.db") as storage:
        history(storage, lambda text: parse_pricebook(text, Registry.load()))
    assert main(["statement", "show", "--period", "2026-11", "-p", "book.yaml", "-o", "json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert shown["customer"] == "wally" and Decimal(shown["assets"][0]["closing"]) == Decimal("2.73")
    assert main(["statement", "export", "--period", "2026-11", "-p", "book.yaml"]) == 0
    assert capsys.readouterr().out.startswith("date,customer,transaction,kind,account,asset,amount,balance")
    (tmp_path / "billing.yaml").write_text(
        "seller: {legal_name: Seller GmbH, country: DE}\n"
        "profiles: {wally: {legal_name: Wally GmbH, country: DE, language: de}}\n"
    )
    show = ["statement", "show", "--period", "2026-11", "-p", "book.yaml", "--html", "docs"]
    assert main([*show, "--billing", "billing.yaml"]) == 0
    page = (tmp_path / "docs" / "statement-wally-2026-11.html").read_text()
    assert 'lang="de"' in page and "Seller GmbH" in page and "Wally GmbH" in page  # the profile's language
    assert main([*show, "--billing", "billing.yaml", "--language", "en"]) == 0  # the flag wins
    assert 'lang="en"' in (tmp_path / "docs" / "statement-wally-2026-11.html").read_text()


DECEMBER_2 = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize("late", [False, True])
def test_usage_spent_before_its_funds_arrived_is_owed_never_negative_funds(storage: Storage, book, late: bool) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 12: usage of 20 November paid by a top-up of 2 December (rated after it, or late into
    December after November closed) left November at negative funds."""
    pricebook = book(WALLET_BOOK + ("late_usage: next_period\n" if late else ""))
    engine = Engine(pricebook, storage)
    if late:
        close_period(engine, "2026-11")
    Wallets(storage, lambda: DECEMBER_2).deposit("wally", "USD", Decimal(10), "payment:pi_1")
    rated = engine.rate(
        event("e1", customer="wally", at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC), tokens=1500, model="m")
    )
    assert rated is not None and rated.period == ("2026-12" if late else "2026-11")
    spent = rated.total()["USD"]
    assert spent == Decimal("1.26")
    [november] = statement(storage, pricebook, "wally", "2026-11").assets
    assert november.movements == {"usage": -spent, "owed usage": spent}
    assert (november.opening, november.closing, november.owed) == (0, 0, spent)
    [december] = statement(storage, pricebook, "wally", "2026-12").assets
    assert december.movements == {"top-ups": Decimal(10), "owed usage": -spent}
    assert (december.opening, december.closing, december.owed) == (0, Decimal(10) - spent, 0)
    for summary in (november, december):
        assert summary.opening + sum(summary.movements.values()) == summary.closing
    assert "Usage owed (spent before funds arrived)" in statement_html(
        statement(storage, pricebook, "wally", "2026-11")
    )


def test_the_demo_with_a_wallet_customer_topped_up_afterwards_shows_no_negative_funds(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The demo's November, rated for a wallet customer after a top-up of 2 December, as a new user would."""
    monkeypatch.chdir(tmp_path)
    wallet_book = tmp_path / "wallet.yaml"
    text = EXAMPLE.read_text()
    assert "acme-labs: {plan: team}" in text
    wallet_book.write_text(text.replace("acme-labs: {plan: team}", "acme-labs: {plan: team, billing: wallet}"))
    events = write_demo_events(tmp_path / "demo-events.jsonl", 300)
    with SQLiteStorage(tmp_path / "history.db") as storage:
        Wallets(storage, lambda: DECEMBER_2).deposit("acme-labs", "USD", Decimal(100), "payment:pi_1")
    assert main(["rate", str(events), "-p", str(wallet_book), "--db", "history.db"]) == 0
    capsys.readouterr()
    shown = {}
    for period in ("2026-11", "2026-12"):
        command = ["statement", "show", "--period", period, "-p", str(wallet_book), "--db", "history.db"]
        assert main([*command, "--customer", "acme-labs", "-o", "json"]) == 0
        [document] = json.loads(capsys.readouterr().out)
        [shown[period]] = [a for a in document["assets"] if a["asset"] == "USD"]
    november, december = shown["2026-11"], shown["2026-12"]
    spent = -Decimal(november["movements"]["usage"])
    assert spent > 0 and Decimal(november["closing"]) == 0 and Decimal(november["owed"]) == spent
    assert Decimal(december["opening"]) == 0 and Decimal(december["closing"]) == Decimal(100) - spent
    assert Decimal(december["movements"]["owed usage"]) == -spent
    command = ["statement", "show", "--period", "2026-11", "-p", str(wallet_book), "--db", "history.db", "-o", "csv"]
    assert main([*command, "--customer", "acme-labs"]) == 0
    [row] = [r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["asset"] == "USD"]
    assert Decimal(row["owed usage"]) == spent and Decimal(row["closing"]) == 0  # the table adds up too


FIRST = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
#: Top-ups (amount) and usage (tokens), each on a day counted from 1 November, in the order they are posted.
wallet_histories = st.lists(
    st.tuples(st.sampled_from(["top-up", "usage"]), st.integers(0, 90), st.integers(1, 3000)), max_size=12
)


@settings(max_examples=60)
@given(wallet_histories)
def test_statements_never_show_negative_funds_and_chain_from_period_to_period(
    history: list[tuple[str, int, int]],
) -> None:
    """Whatever the dates of top-ups and usage, and the order they are posted in, every statement adds up, shows
    no negative funds, keeps funds less owed equal to the ledger's, and opens where the last one closed."""
    from rating.pricebook.model import parse_pricebook
    from rating.registry import Registry
    from rating.storage.memory import MemoryStorage

    storage = MemoryStorage()
    pricebook = parse_pricebook(WALLET_BOOK, Registry.load())
    engine = Engine(pricebook, storage)
    now = [FIRST]
    wallets = Wallets(storage, lambda: now[0])
    for number, (what, day, size) in enumerate(history):
        at = FIRST + dt.timedelta(days=day)
        if what == "top-up":
            now[0] = at
            wallets.deposit("wally", "USD", Decimal(size) / 100, f"payment:pi_{number}")
        else:
            engine.rate_batch([event(f"e{number}", customer="wally", at=at, tokens=size, model="m")])
    closing = Decimal(0)
    for period in ("2026-11", "2026-12", "2027-01"):
        found = statement(storage, pricebook, "wally", period).assets
        usd = found[0] if found else None
        if usd is None:
            continue
        assert usd.opening >= 0 and usd.closing >= 0 and usd.owed >= 0
        assert usd.opening == closing
        assert usd.opening + sum(usd.movements.values()) == usd.closing
        closing = usd.closing
    ledger = storage.balances([wallet_account("wally"), receivable_account("wally")])
    position = -ledger.get((wallet_account("wally"), "USD"), Decimal(0))
    position -= ledger.get((receivable_account("wally"), "USD"), Decimal(0))
    final = statement(storage, pricebook, "wally", "2027-01").assets
    assert (final[0].closing - final[0].owed if final else Decimal(0)) == position


def test_what_a_settled_reservation_paid_is_usage_on_the_statement(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    """Found by attack: after a reservation of 5 settled at 3 the statement showed top-ups 10 and closing 7,
    movements that did not add up (the settlement's kind was no movement of funds)."""
    pricebook = book(WALLET_BOOK)
    wallets = Wallets(storage, lambda: FIRST)
    wallets.deposit("wally", "USD", Decimal(10), "payment:pi_1")
    wallets.reserve("wally", "USD", Decimal(5), "r1", dt.timedelta(hours=1))
    wallets.settle("r1", Decimal(3), "revenue:marketplace")
    wallets.reserve("wally", "USD", Decimal(2), "r2", dt.timedelta(hours=1))  # still held: funds all the same
    [usd] = statement(storage, pricebook, "wally", "2026-11").assets
    assert (usd.opening, usd.movements, usd.closing) == (0, {"top-ups": Decimal(10), "usage": Decimal(-3)}, 7)
