"""Paying and crediting invoices: idempotent by reference, never more than is due, status derived from the ledger."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.accounts import (
    PAYMENTS_ACCOUNT,
    receivable_account,
    refund_account,
    revenue_account,
    rounding_account,
    wallet_account,
)
from rating.billing.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.cli import main
from rating.errors import InvalidAmount, InvoiceError
from rating.events import UsageEvent
from rating.invoices.issue import Invoice, issue_invoices
from rating.invoices.profiles import parse_billing, tax_for
from rating.invoices.settle import RefundTo, credit_invoice, credit_notes, invoice_status, pay_invoice
from rating.ledger import Posting, Transaction
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import parse_pricebook
from rating.refusals import InvoiceRefusal, PaymentRefusal
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.storage.sqlite import SQLiteStorage
from rating.wallet.wallets import Wallets
from tests.conftest import STORAGE_KINDS, postgres_url
from tests.helpers import EXAMPLE, ROOT, SIMPLE_PRICEBOOK, event, later
from tests.test_invoices import BILLING, ISSUED, NOVEMBER, billed
from tests.test_telescoping import REGISTRY

SECRET = b"whsec_test"


def issued_invoice(storage: Storage, book) -> Invoice:  # type: ignore[no-untyped-def]
    """acme's November invoice: 1.26 USD and 0.24 USD of German VAT, 1.50 USD in all."""
    engine = billed(book(SIMPLE_PRICEBOOK), storage, [event("e1", at=NOVEMBER, tokens=1500, model="m")], "2026-11")
    report = issue_invoices(storage, Catalog([engine.pricebook]), parse_billing(BILLING), "2026-11", issued=ISSUED)
    return report.issued[0]


def test_partial_payments_settle_the_receivable_once_per_reference_and_overpaying_is_refused(
    storage: Storage, book
) -> None:  # type: ignore[no-untyped-def]
    invoice = issued_invoice(storage, book)
    assert invoice_status(storage, invoice, ISSUED).state == "open"
    assert pay_invoice(storage, invoice.number, Decimal("1.00"), "wire-1")
    assert not pay_invoice(storage, invoice.number, Decimal("1.00"), "wire-1")  # a replay settles nothing
    status = invoice_status(storage, invoice, ISSUED)
    assert (status.state, status.paid, status.due) == ("partly paid", Decimal("1.00"), Decimal("0.50"))
    with pytest.raises(InvoiceError) as refused:
        pay_invoice(storage, invoice.number, Decimal("0.51"), "wire-2")
    assert refused.value.code == InvoiceRefusal.OVERPAYMENT
    with pytest.raises(InvoiceError) as conflict:
        pay_invoice(storage, invoice.number, Decimal("0.50"), "wire-1")
    assert conflict.value.code == InvoiceRefusal.CONFLICT
    assert pay_invoice(storage, invoice.number, Decimal("0.50"), "wire-2")
    assert invoice_status(storage, invoice, ISSUED).state == "paid"
    assert storage.balances([receivable_account("acme")])[receivable_account("acme"), "USD"] == 0
    assert storage.balances([PAYMENTS_ACCOUNT])[PAYMENTS_ACCOUNT, "USD"] == Decimal("1.50")
    assert storage.verify() == []


def test_an_unpaid_invoice_is_overdue_after_its_due_date(book) -> None:  # type: ignore[no-untyped-def]
    storage = MemoryStorage()
    invoice = issued_invoice(storage, book)
    assert not invoice_status(storage, invoice, invoice.due).overdue
    assert invoice_status(storage, invoice, invoice.due + dt.timedelta(days=1)).overdue


def test_a_credit_note_reverses_exactly_what_it_credits(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    invoice = issued_invoice(storage, book)
    tokens = next(i for i, line in enumerate(invoice.lines, 1) if line.description.startswith("Tokens"))
    revenue = revenue_account("basic", "tokens")
    before = storage.balances([revenue])[revenue, "USD"]
    note, new = credit_invoice(storage, invoice.number, "goodwill-1", "goodwill", line=tokens, amount=Decimal("0.50"))
    assert new and note.number == f"CN-{dt.date.today().year}-000001" and note.invoice == invoice.number
    assert (note.subtotal, note.tax_total, note.total) == (Decimal("0.50"), Decimal("0.10"), Decimal("0.60"))
    assert storage.balances([revenue])[revenue, "USD"] == before + Decimal("0.50")
    assert credit_invoice(storage, invoice.number, "goodwill-1", "goodwill", line=tokens, amount=Decimal("0.50")) == (
        note,
        False,
    )
    with pytest.raises(InvoiceError) as refused:
        credit_invoice(storage, invoice.number, "goodwill-2", "more", line=tokens, amount=Decimal("0.76"))
    assert refused.value.code == InvoiceRefusal.CREDIT_EXCEEDS
    rest, _ = credit_invoice(storage, invoice.number, "cancel", "cancelled")
    assert note.total + rest.total == invoice.total  # all of the tax too, to the cent
    assert invoice_status(storage, invoice, ISSUED).state == "credited"
    assert [n.number for n in credit_notes(storage, invoice)] == [note.number, rest.number]
    assert storage.balances([receivable_account("acme")])[receivable_account("acme"), "USD"] == 0
    assert storage.verify() == []


def test_a_signed_confirmation_naming_an_invoice_settles_it(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    invoice = issued_invoice(storage, book)
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    wallets, pricebook = Wallets(storage, lambda: now), book(SIMPLE_PRICEBOOK)

    def confirmation(amount: str, customer: str = "acme") -> bytes:
        fields = {"payment_id": "pi_9", "customer": customer, "asset": "USD", "amount": amount}
        fields |= {"status": "succeeded", "created": now.isoformat(), "invoice": invoice.number}
        return json.dumps(fields).encode()

    with pytest.raises(PaymentRejected) as refused:
        body = confirmation("2.00")
        confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook)
    assert refused.value.code == PaymentRefusal.INVOICE_REFUSED and "overpayment" in str(refused.value)
    body = confirmation("1.50")
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook) is PaymentResult.CREDITED
    assert confirm_payment(wallets, body, sign(body, SECRET), SECRET, pricebook) is PaymentResult.REPLAYED
    assert invoice_status(storage, invoice).state == "paid"
    assert wallets.balance("acme") == {}  # settled the invoice, topped up nothing


def test_the_most_specific_tax_rule_applies() -> None:
    billing = parse_billing(
        BILLING
        + "  shopper: {legal_name: Shopper, country: FR}\n  firm: {legal_name: Firm, country: CH, tax_id: CHE1}\n"
        + "  person: {legal_name: Person, country: CH}\n"
    )
    rules = billing.model_copy(
        update={
            "tax_rules": (
                *billing.tax_rules,
                *parse_billing(
                    "seller: {legal_name: S, country: DE}\ntax_rules:\n"
                    "  - {country: FR, rate: 20, buyer: consumer}\n"
                    "  - {country: '*', rate: 0, buyer: business, name: outside scope}\n"
                    "  - {country: '*', rate: 19, buyer: consumer}\n"
                ).tax_rules,
            )
        }
    )
    assert tax_for(rules, rules.profiles["shopper"], ISSUED).rate == 20
    assert tax_for(rules, rules.profiles["firm"], ISSUED).name == "outside scope"
    assert tax_for(rules, rules.profiles["person"], ISSUED).rate == 19


def test_invoice_commands_pay_credit_and_list_overdue(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", "history.db"]
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", *db, "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    capsys.readouterr()
    issue = ["invoice", "issue", *db, "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing]
    # due on 2026-11-15: overdue since; exit 1: done, with initech refused (its credits get a statement)
    assert main([*issue, "--date", "2026-11-01", "-o", "json"]) == 1
    first = json.loads(capsys.readouterr().out)[0]
    number, total = first["number"], Decimal(first["total"])
    assert main(["invoice", "pay", number, *db, "--amount", "0.01", "--reference", "wire-7", "-o", "json"]) == 0
    capsys.readouterr()
    assert main(["invoice", "list", *db, "--overdue"]) == 0
    listed = capsys.readouterr().out
    assert number in listed and "partly paid, overdue" in listed
    assert main(["invoice", "pay", number, *db, "--amount", str(total), "--reference", "wire-8"]) == 3
    assert "overpayment" in capsys.readouterr().err
    credit = ["invoice", "credit", number, *db, "--reason", "cancelled", "-o", "json"]
    assert main([*credit, "--reference", "cn-1"]) == 0  # what is still due: the 0.01 paid stays paid
    assert f"issued CN-{dt.date.today().year}-000001: {total - Decimal('0.01')} USD\n" in capsys.readouterr().err
    assert main(["invoice", "show", number, *db]) == 0
    assert "paid" in capsys.readouterr().out
    assert main([*credit, "--reference", "cn-2", "--refund"]) == 0
    assert ": 0.01 USD, 0.01 of it refunded to the customer" in capsys.readouterr().err
    assert main(["invoice", "show", number, *db]) == 0
    assert "credited" in capsys.readouterr().out


PURPOSES = ("invoice payment", "top-up", "refund", "chargeback")


def use_payment_id(storage: Storage, book, invoice: Invoice, purpose: str, payment_id: str) -> PaymentResult:  # type: ignore[no-untyped-def]
    """Confirm a signed 0.50 USD payment ``payment_id`` of acme for ``purpose`` (a refund takes back top-up pi_0)."""
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    fields = {"payment_id": payment_id, "customer": "acme", "asset": "USD", "amount": "0.50"}
    fields |= {"status": "succeeded", "created": now.isoformat()}
    if purpose == "invoice payment":
        fields["invoice"] = invoice.number
    elif purpose in ("refund", "chargeback"):
        fields |= {"type": purpose, "refunds": "pi_0"}
    body = json.dumps(fields).encode()
    return confirm_payment(Wallets(storage, lambda: now), body, sign(body, SECRET), SECRET, book(SIMPLE_PRICEBOOK))


@pytest.mark.parametrize("first, second", [(a, b) for a in PURPOSES for b in PURPOSES if a != b])
def test_one_payment_id_is_one_payment_for_one_purpose(storage: Storage, book, first: str, second: str) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 8: pi_1 settled an invoice, then topped up the wallet too (10.00 received for 5.00)."""
    invoice = issued_invoice(storage, book)
    assert use_payment_id(storage, book, invoice, "top-up", "pi_0") is PaymentResult.CREDITED  # what refunds take
    assert use_payment_id(storage, book, invoice, first, "pi_1") is PaymentResult.CREDITED
    before = storage.balances()
    with pytest.raises(PaymentRejected) as refused:
        use_payment_id(storage, book, invoice, second, "pi_1")
    assert refused.value.code == PaymentRefusal.CONFLICT and first in str(refused.value)
    assert storage.balances() == before
    assert use_payment_id(storage, book, invoice, first, "pi_1") is PaymentResult.REPLAYED
    assert storage.verify() == []


def test_an_invoice_payment_reference_is_a_payment_id_too(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    """``rating invoice pay --reference`` and top-ups share the ids, also with payments stored before the registry."""
    invoice = issued_invoice(storage, book)
    Wallets(storage).deposit("acme", "USD", Decimal(5), "payment:pi_1")
    with pytest.raises(InvoiceError) as refused:
        pay_invoice(storage, invoice.number, Decimal("1.50"), "pi_1")
    assert refused.value.code == InvoiceRefusal.CONFLICT
    # A top-up stored before payment ids had a registry has no marker: its deposit is found all the same.
    at = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    postings = (Posting(PAYMENTS_ACCOUNT, "USD", Decimal(1)), Posting(wallet_account("acme"), "USD", Decimal(-1)))
    storage.append([Transaction("deposit:payment:pi_2", at, "wallet deposit", postings, {"customer": "acme"})])
    with pytest.raises(InvoiceError) as legacy:
        pay_invoice(storage, invoice.number, Decimal("1.50"), "pi_2")
    assert legacy.value.code == InvoiceRefusal.CONFLICT
    assert pay_invoice(storage, invoice.number, Decimal("1.50"), "pi_3")
    assert storage.balances([PAYMENTS_ACCOUNT])[PAYMENTS_ACCOUNT, "USD"] == Decimal("7.50")


@pytest.mark.parametrize("kind", [k for k in ("sqlite", "postgres") if k in STORAGE_KINDS])
def test_two_purposes_racing_for_one_payment_id_credit_it_once(kind: str, tmp_path: Path, book) -> None:  # type: ignore[no-untyped-def]
    """Two writers, each with its own connection, use one payment id at once: one wins, the other is a conflict."""
    url = postgres_url() if kind == "postgres" else str(tmp_path / "rating.db")
    if kind == "postgres":
        from rating.storage.postgres import PostgresStorage
    opener = (lambda: PostgresStorage(url)) if kind == "postgres" else (lambda: SQLiteStorage(Path(url)))
    with opener() as first:
        invoice = issued_invoice(first, book)
    rounds = 4
    outcomes: list[str] = []

    def race(purpose: str, barrier: threading.Barrier) -> None:
        with opener() as storage:
            for round in range(rounds):
                barrier.wait()
                try:
                    use_payment_id(storage, book, invoice, purpose, f"pi_race_{round}")
                    outcomes.append(f"{round}:credited")
                except PaymentRejected as error:
                    outcomes.append(f"{round}:{error.code}")

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=race, args=(p, barrier)) for p in ("invoice payment", "top-up")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted(f"{r}:{o}" for r in range(rounds) for o in ("credited", "conflict"))
    with opener() as storage:
        paid = storage.balances([PAYMENTS_ACCOUNT]).get((PAYMENTS_ACCOUNT, "USD"), Decimal(0))
        assert paid == Decimal("0.50") * rounds
        assert storage.verify() == []


def test_a_credit_amount_needs_its_line(book) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 6: an amount without --line was credited on every line."""
    storage = MemoryStorage()
    invoice = issued_invoice(storage, book)
    with pytest.raises(InvalidAmount, match="needs the line"):
        credit_invoice(storage, invoice.number, "cn-1", "goodwill", amount=Decimal("0.01"))
    assert credit_notes(storage, invoice) == []


def test_the_credit_command_refuses_an_amount_without_a_line_in_one_line(demo_history: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", "history.db"]
    billing = str(ROOT / "pricebooks" / "billing.yaml")
    assert main(["close-period", *db, "--period", "2026-11", "-p", str(EXAMPLE)]) == 0
    issue = ["invoice", "issue", *db, "--period", "2026-11", "-p", str(EXAMPLE), "--billing", billing, "-o", "json"]
    capsys.readouterr()
    assert main(issue) == 1  # initech is refused (currency_mismatch): done with some refusals
    number = json.loads(capsys.readouterr().out)[0]["number"]
    assert main(["invoice", "credit", number, *db, "--reference", "cn-1", "--amount", "0.02"]) == 2
    assert capsys.readouterr().err == "rating: error: invoice credit --amount needs --line (the line it credits)\n"
    assert main(["invoice", "credit", number, *db, "--reference", "cn-1", "--to", "wallet"]) == 2
    assert capsys.readouterr().err == "rating: error: invoice credit --to needs --refund\n"
    assert main(["invoice", "show", number, *db]) == 0
    assert "open" in capsys.readouterr().out  # nothing was credited


def test_a_full_credit_reverses_every_lines_exact_amount_and_its_rounding_share(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    """1,501 tokens cost 1.2505: the second tier's line (501 tokens) shows 0.25 for 0.2505, and the close's
    rounding is that line's share of -0.0005."""
    engine = billed(book(SIMPLE_PRICEBOOK), storage, [event("e1", at=NOVEMBER, tokens=1501, model="m")], "2026-11")
    catalog, billing = Catalog([engine.pricebook]), parse_billing(BILLING)
    [invoice] = issue_invoices(storage, catalog, billing, "2026-11", issued=ISSUED).issued
    assert [(line.amount, line.exact, line.tax) for line in invoice.lines] == [
        (Decimal("0.01"), Decimal("0.01"), Decimal("0.00")),
        (Decimal("1.00"), Decimal("1.000"), Decimal("0.19")),
        (Decimal("0.25"), Decimal("0.2505"), Decimal("0.05")),
    ]
    assert storage.balances([rounding_account("USD")])[rounding_account("USD"), "USD"] == Decimal("0.0005")
    note, _ = credit_invoice(storage, invoice.number, "cancel", "cancelled")
    assert note.total == invoice.total and [c.reversed for c in note.lines] == [
        Decimal("0.01"),
        Decimal("1"),
        Decimal("0.2505"),
    ]
    assert {key: amount for key, amount in storage.balances().items() if amount} == {}  # every account as before
    assert storage.verify() == []


def test_what_was_paid_is_credited_only_with_a_refund(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 7: a full credit after a partial payment left -0.50 due and no way to give it back."""
    invoice = issued_invoice(storage, book)  # requests 0.01 + 0.00 tax, tokens 1.25 + 0.24 tax
    assert pay_invoice(storage, invoice.number, Decimal("1.00"), "wire-1")
    with pytest.raises(InvoiceError) as refused:  # 0.60 with tax: more than the 0.50 still due
        credit_invoice(storage, invoice.number, "cn-0", "goodwill", line=2, amount=Decimal("0.50"))
    assert refused.value.code == InvoiceRefusal.CREDIT_EXCEEDS and "--refund" in str(refused.value)
    # All that is left is cut to what is due, in line order: the requests line, then 0.49 of the tokens line.
    due, _ = credit_invoice(storage, invoice.number, "cn-1", "cancelled")
    assert [(c.line, c.amount, c.tax) for c in due.lines] == [
        (1, Decimal("0.01"), Decimal("0.00")),
        (2, Decimal("0.41"), Decimal("0.08")),
    ]
    assert (due.total, due.refund, due.refund_to) == (Decimal("0.50"), Decimal(0), None)
    status = invoice_status(storage, invoice, ISSUED)
    assert (status.paid, status.credited, status.due, status.state) == (Decimal("1.00"), Decimal("0.50"), 0, "paid")
    with pytest.raises(InvoiceError) as nothing_due:
        credit_invoice(storage, invoice.number, "cn-2", "cancelled")
    assert nothing_due.value.code == InvoiceRefusal.CREDIT_EXCEEDS and "--refund" in str(nothing_due.value)
    paid_back, _ = credit_invoice(storage, invoice.number, "cn-2", "cancelled", refund="wallet")
    assert (paid_back.total, paid_back.refund, paid_back.refund_to) == (Decimal("1.00"), Decimal("1.00"), "wallet")
    status = invoice_status(storage, invoice, ISSUED)
    assert (status.credited, status.refunded, status.due, status.state) == (
        invoice.total,
        Decimal("1.00"),
        0,
        "credited",
    )
    balances = storage.balances([receivable_account("acme"), wallet_account("acme")])
    assert balances == {(receivable_account("acme"), "USD"): 0, (wallet_account("acme"), "USD"): Decimal("-1.00")}
    assert Wallets(storage).balance("acme")["USD"].available == Decimal("1.00")
    funds = storage.transaction(f"deposit:{paid_back.number}")  # a top-up on a statement
    assert funds is not None and funds.customer == "acme"
    assert storage.verify() == []


def test_a_credit_note_never_raises_what_is_due(storage: Storage, book, registry) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 7: crediting a negative line (the old -0.01 rounding line) raised what was due."""
    from rating.billing.close import close_period
    from rating.billing.rerate import rerate
    from rating.engine import Engine
    from tests.test_invoices import REFIXED

    dear, cheap = book(REFIXED.format(first="0.002")), book(REFIXED.format(first="0.001"))
    billed(dear, storage, [event("n1", at=NOVEMBER, tokens=2000)], "2026-11")
    now = dt.datetime(2026, 12, 15, tzinfo=dt.UTC)
    rerate(storage, Catalog([cheap]), registry, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now, clock=lambda: now)
    engine = Engine(cheap, storage, registry, clock=later)
    engine.rate_batch([event("d1", at=dt.datetime(2026, 12, 2, tzinfo=dt.UTC), tokens=2000)])
    close_period(engine, "2026-12")
    billing = parse_billing(BILLING)
    [invoice] = issue_invoices(storage, Catalog([cheap]), billing, "2026-12", issued=dt.date(2027, 1, 1)).issued
    assert [(line.description, line.amount) for line in invoice.lines] == [
        ("Tokens", Decimal("1.00")),  # tier 1
        ("Tokens", Decimal("0.50")),  # tier 2
        ("Tokens, adjustment of 2026-11", Decimal("-1.00")),  # November was never invoiced: no number
    ]
    for line, amount in ((3, None), (3, Decimal("-1.00")), (1, Decimal("-0.01")), (1, Decimal(0))):
        with pytest.raises(InvoiceError) as refused:
            credit_invoice(storage, invoice.number, "neg", "oops", line=line, amount=amount)
        assert refused.value.code == InvoiceRefusal.CREDIT_EXCEEDS
    assert credit_notes(storage, invoice) == []
    whole, _ = credit_invoice(storage, invoice.number, "all", "cancelled")  # the negative line with the rest
    assert [(c.line, c.amount) for c in whole.lines] == [
        (1, Decimal("1.00")),
        (2, Decimal("0.50")),
        (3, Decimal("-1.00")),
    ]
    assert whole.total == invoice.total == Decimal("0.60") and invoice_status(storage, invoice).due == 0


def test_a_reused_credit_reference_with_other_terms_is_a_conflict(storage: Storage, book) -> None:  # type: ignore[no-untyped-def]
    invoice = issued_invoice(storage, book)
    note, new = credit_invoice(storage, invoice.number, "cn-1", "goodwill", line=2, amount=Decimal("0.10"))
    assert new and credit_invoice(storage, invoice.number, "cn-1", "goodwill", line=2, amount=Decimal("0.1")) == (
        note,
        False,
    )
    other_terms: list[dict[str, object]] = [
        {"line": 2, "amount": Decimal("0.20")},
        {"line": 1},
        {},
        {"line": 2, "amount": Decimal("0.10"), "refund": "customer"},
    ]
    for terms in other_terms:
        with pytest.raises(InvoiceError) as conflict:
            credit_invoice(storage, invoice.number, "cn-1", "goodwill", **terms)  # type: ignore[arg-type]
        assert conflict.value.code == InvoiceRefusal.CONFLICT
    with pytest.raises(InvoiceError) as other_reason:
        credit_invoice(storage, invoice.number, "cn-1", "billing error", line=2, amount=Decimal("0.10"))
    assert other_reason.value.code == InvoiceRefusal.CONFLICT
    assert credit_notes(storage, invoice) == [note]


REFUNDS: list[RefundTo | None] = [None, "customer", "wallet"]


@st.composite
def settlements(draw: st.DrawFn) -> tuple[list[UsageEvent], list[tuple[str, int | None, int, RefundTo | None]]]:
    """Events on up to three models (an invoice of several lines), then payments and credits in any order."""
    events = [
        event(f"e{i}", at=NOVEMBER, tokens=draw(st.integers(0, 3000)), model=draw(st.sampled_from(["m1", "m2", "m3"])))
        for i in range(draw(st.integers(1, 6)))
    ]
    operation = st.tuples(
        st.sampled_from(["pay", "credit"]),
        st.one_of(st.none(), st.integers(1, 3)),  # the line (credit)
        st.one_of(st.integers(0, 9), st.integers(0, 150)),  # cents paid, or credited of the line (0: all left)
        st.sampled_from(REFUNDS),  # with a refund, and where to
    )
    return events, draw(st.lists(operation, max_size=8))


@settings(max_examples=80)
@given(settlements())
def test_credits_never_exceed_a_line_and_never_take_what_was_paid_without_a_refund(
    case: tuple[list[UsageEvent], list[tuple[str, int | None, int, RefundTo | None]]],
) -> None:
    """Whatever is paid and credited, in any order: what is due is never negative, a line is never credited
    beyond what it has, a credit note is always positive, and the ledger agrees with the documents."""
    events, operations = case
    storage = MemoryStorage()
    engine = billed(parse_pricebook(SIMPLE_PRICEBOOK, REGISTRY), storage, events, "2026-11")
    catalog, billing = Catalog([engine.pricebook]), parse_billing(BILLING)
    [invoice] = issue_invoices(storage, catalog, billing, "2026-11", issued=ISSUED).issued
    for number, (kind, line, cents, refund) in enumerate(operations):
        amount = Decimal(cents).scaleb(-2)
        try:
            if kind == "pay":
                pay_invoice(storage, invoice.number, amount, f"pay-{number}")
            else:
                partial = amount if cents and line else None
                credit_invoice(storage, invoice.number, f"cn-{number}", "why", line=line, amount=partial, refund=refund)
        except InvoiceError as error:
            assert error.code in (InvoiceRefusal.OVERPAYMENT, InvoiceRefusal.CREDIT_EXCEEDS)
        status = invoice_status(storage, invoice)
        notes = credit_notes(storage, invoice)
        assert status.due >= 0 and all(note.total > 0 for note in notes)
        assert status.refunded <= status.paid and status.paid + status.credited - status.refunded <= invoice.total
        for index, item in enumerate(invoice.lines, start=1):
            credited = [c for note in notes for c in note.lines if c.line == index]
            assert 0 <= sum(c.amount for c in credited) <= item.amount
            assert 0 <= sum(c.tax for c in credited) <= item.tax
        accounts = [receivable_account("acme"), refund_account("acme"), wallet_account("acme")]
        balances = storage.balances(accounts)
        receivable, owed_back, funds = (-balances.get((account, "USD"), 0) for account in accounts)
        assert -receivable == status.due and owed_back + funds == status.refunded
        assert funds == sum(note.refund for note in notes if note.refund_to == "wallet")
    assert storage.verify() == []
