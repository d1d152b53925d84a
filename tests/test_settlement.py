"""Paying and crediting invoices: idempotent by reference, never more than is due, status derived from the ledger."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from rating.accounts import PAYMENTS_ACCOUNT, receivable_account, revenue_account
from rating.billing import parse_billing, tax_for
from rating.catalog import Catalog
from rating.cli import main
from rating.errors import InvoiceError
from rating.invoices import Invoice, issue_invoices
from rating.payments import PaymentRejected, PaymentResult, confirm_payment, sign
from rating.refusals import InvoiceRefusal, PaymentRefusal
from rating.settlement import credit_invoice, credit_notes, invoice_status, pay_invoice
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from rating.wallet import Wallets
from tests.helpers import EXAMPLE, ROOT, SIMPLE_PRICEBOOK, event
from tests.test_invoices import BILLING, ISSUED, NOVEMBER, billed

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
    tokens = next(i for i, line in enumerate(invoice.lines, 1) if line.description.startswith("tokens"))
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
    assert main(["invoice", "credit", number, *db, "--reference", "cn-1", "--reason", "cancelled", "-o", "json"]) == 0
    assert "issued CN-" in capsys.readouterr().err
    assert main(["invoice", "show", number, *db]) == 0
    assert "credited" in capsys.readouterr().out
