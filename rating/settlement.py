"""Paying and crediting issued invoices, and their status, derived from the ledger and the documents.

- :func:`pay_invoice` (``rating invoice pay``, or a signed payment confirmation
  naming an invoice: :func:`rating.payments.confirm_payment`) posts
  ``settle:REFERENCE``: the receivable is credited, ``payments:received``
  debited. Partial payments are fine; paying more than is due is refused
  (``overpayment``): an overpaid balance would have nowhere defined to go.
  The reference makes it idempotent.
- :func:`credit_invoice` issues a credit note (series ``CN-YEAR``, gapless like
  invoices) for a whole invoice or part of one line, and posts
  ``credit:NUMBER``, which reverses exactly what it credits: each line's
  account (revenue, fee, rounding) and its tax, against the receivable.
  Issued invoices are never edited or voided.
- :func:`invoice_status` derives open, partly paid, paid or credited, and
  whether it is overdue, from those postings and documents: nothing is updated
  in place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rating.accounts import PAYMENTS_ACCOUNT, check_id, receivable_account
from rating.billing import Party, Profile
from rating.errors import InvoiceError, TransactionConflict
from rating.invoices import Invoice, documents_of, invoices, tax_account
from rating.ledger import Posting, Transaction
from rating.money import ZERO, exact, quantize
from rating.payment_registry import Purpose, claim, payment_marker
from rating.refusals import InvoiceRefusal
from rating.storage import Storage

#: The document kind of a credit note.
CREDIT_NOTE = "credit_note"


class CreditLine(BaseModel):
    """What a credit note credits of one invoice line (line numbers count from 1; amounts as credited)."""

    model_config = ConfigDict(frozen=True)

    line: int
    description: str
    account: str
    amount: Decimal
    tax: Decimal


class CreditNote(BaseModel):
    """An issued credit note: what it credits of which invoice, and why."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["credit_note"] = "credit_note"
    number: str
    invoice: str
    reference: str
    reason: str
    customer: str
    issued: dt.date
    currency: str
    seller: Party
    buyer: Profile
    lines: tuple[CreditLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal


@dataclass(frozen=True)
class InvoiceStatus:
    """Where an invoice stands: paid, credited, still due, and its state."""

    paid: Decimal
    credited: Decimal
    due: Decimal
    state: Literal["open", "partly paid", "paid", "credited"]
    overdue: bool


def find_invoice(storage: Storage, number: str) -> Invoice:
    """The invoice ``number``; ``unknown_invoice`` when there is none."""
    found = invoices(storage, number)
    if not found:
        raise InvoiceError(InvoiceRefusal.UNKNOWN_INVOICE, f"no invoice {number}")
    return found[0]


def credit_notes(storage: Storage, invoice: Invoice) -> list[CreditNote]:
    """The credit notes of ``invoice``, in the order issued."""
    notes = [CreditNote.model_validate(d) for d in documents_of(storage, CREDIT_NOTE, customer=invoice.customer)]
    return [note for note in notes if note.invoice == invoice.number]


def _payments(storage: Storage, invoice: Invoice) -> list[Transaction]:
    return [
        t for t in storage.transactions_of("settle", invoice.customer) if t.metadata.get("invoice") == invoice.number
    ]


@exact
def invoice_status(storage: Storage, invoice: Invoice, today: dt.date | None = None) -> InvoiceStatus:
    """What was paid and credited of ``invoice``, what is due, and whether it is overdue on ``today``."""
    paid = sum((Decimal(t.metadata["amount"]) for t in _payments(storage, invoice)), ZERO)
    credited = sum((note.total for note in credit_notes(storage, invoice)), ZERO)
    due = invoice.total - paid - credited
    state: Literal["open", "partly paid", "paid", "credited"]
    if credited and credited == invoice.total:
        state = "credited"
    elif due <= 0:
        state = "paid"
    else:
        state = "partly paid" if paid else "open"
    overdue = due > 0 and (today or dt.datetime.now(dt.UTC).date()) > invoice.due
    return InvoiceStatus(paid, credited, due, state, overdue)


@exact
def pay_invoice(storage: Storage, number: str, amount: Decimal, reference: str, at: dt.datetime | None = None) -> bool:
    """Settle ``amount`` of invoice ``number``, once per ``reference``; False when it was already settled."""
    check_id("payment reference", reference)
    if amount <= 0:
        raise InvoiceError(InvoiceRefusal.OVERPAYMENT, f"a payment must be positive, got {amount}")
    with storage.writing():
        invoice = find_invoice(storage, number)
        if quantize(amount, invoice.scale) != amount:
            raise InvoiceError(
                InvoiceRefusal.OVERPAYMENT,
                f"{amount} has more than {invoice.scale} decimal places of {invoice.currency}",
            )
        id = f"settle:{reference}"
        known = storage.transaction(id)
        if known is not None:
            if known.metadata.get("invoice") == number and Decimal(known.metadata["amount"]) == amount:
                return False
            raise InvoiceError(InvoiceRefusal.CONFLICT, f"payment reference {reference} already settled other content")
        try:  # the reference is the payment's id: one payment, one purpose
            claim(storage, reference, Purpose.INVOICE, invoice.customer)
        except TransactionConflict as error:
            raise InvoiceError(InvoiceRefusal.CONFLICT, str(error)) from None
        due = invoice_status(storage, invoice).due
        if amount > due:
            raise InvoiceError(InvoiceRefusal.OVERPAYMENT, f"{amount} {invoice.currency} is more than the {due} due")
        postings = (
            Posting(PAYMENTS_ACCOUNT, invoice.currency, amount),
            Posting(receivable_account(invoice.customer), invoice.currency, -amount),
        )
        metadata = {"customer": invoice.customer, "invoice": number, "amount": str(amount), "reference": reference}
        when = at or dt.datetime.now(dt.UTC)
        marker = payment_marker(
            reference, Purpose.INVOICE, invoice.customer, invoice.currency, amount, when, invoice=number
        )
        storage.append([Transaction(id, when, f"payment of {number}", postings, metadata), marker])
    return True


@exact
def credit_invoice(
    storage: Storage,
    number: str,
    reference: str,
    reason: str,
    *,
    line: int | None = None,
    amount: Decimal | None = None,
    issued: dt.date | None = None,
) -> tuple[CreditNote, bool]:
    """Credit invoice ``number`` (all that is left, or ``amount`` of line ``line``, counted from 1), once per
    ``reference``; returns the credit note and whether it is new."""
    check_id("credit reference", reference)
    invoice = find_invoice(storage, number)
    on = issued or dt.datetime.now(dt.UTC).date()

    def build(credit_number: str) -> tuple[str, list[Transaction]]:
        lines = _credited(invoice, credit_notes(storage, invoice), line, amount)
        subtotal = sum((c.amount for c in lines), ZERO)
        tax = sum((c.tax for c in lines), ZERO)
        note = CreditNote(
            number=credit_number,
            invoice=number,
            reference=reference,
            reason=reason,
            customer=invoice.customer,
            issued=on,
            currency=invoice.currency,
            seller=invoice.seller,
            buyer=invoice.buyer,
            lines=tuple(lines),
            subtotal=subtotal,
            tax_total=tax,
            total=subtotal + tax,
        )
        postings = [Posting(c.account, invoice.currency, c.amount) for c in lines if c.amount]
        if tax:
            postings.append(Posting(tax_account(invoice), invoice.currency, tax))
        postings.append(Posting(receivable_account(invoice.customer), invoice.currency, -note.total))
        metadata = {"customer": invoice.customer, "invoice": number, "credit_note": credit_number, "reason": reason}
        at = dt.datetime.combine(on, dt.time(), dt.UTC)
        transaction = Transaction(
            f"credit:{credit_number}", at, f"{credit_number} credits {number}", tuple(postings), metadata
        )
        return note.model_dump_json(), [transaction]

    text, new = storage.issue_document(f"CN-{on.year}", CREDIT_NOTE, invoice.customer, f"{number}:{reference}", build)
    return CreditNote.model_validate_json(text), new


def _credited(
    invoice: Invoice, earlier: list[CreditNote], line: int | None, amount: Decimal | None
) -> list[CreditLine]:
    """What is left to credit, per line, and what this credit note takes of it."""
    taken: dict[int, tuple[Decimal, Decimal]] = {}
    for note in earlier:
        for credit in note.lines:
            done, tax = taken.get(credit.line, (ZERO, ZERO))
            taken[credit.line] = (done + credit.amount, tax + credit.tax)
    if line is not None and not 1 <= line <= len(invoice.lines):
        raise InvoiceError(InvoiceRefusal.CREDIT_EXCEEDS, f"{invoice.number} has lines 1 to {len(invoice.lines)}")
    result = []
    for index, item in enumerate(invoice.lines, start=1):
        if line is not None and index != line:
            continue
        done, tax_done = taken.get(index, (ZERO, ZERO))
        left, tax_left = item.amount - done, item.tax - tax_done
        wanted = left if amount is None else amount
        if wanted * left < 0 or abs(wanted) > abs(left):
            raise InvoiceError(
                InvoiceRefusal.CREDIT_EXCEEDS, f"line {index} of {invoice.number} has {left} {invoice.currency} left"
            )
        if quantize(wanted, invoice.scale) != wanted:
            raise InvoiceError(InvoiceRefusal.CREDIT_EXCEEDS, f"{wanted} has more places than {invoice.currency} has")
        tax = tax_left if wanted == left else quantize(wanted * invoice.tax.rate / 100, invoice.scale)
        if wanted or tax:
            credit = CreditLine(line=index, description=item.description, account=item.account, amount=wanted, tax=tax)
            result.append(credit)
    if not result:
        raise InvoiceError(InvoiceRefusal.CREDIT_EXCEEDS, f"nothing is left to credit of {invoice.number}")
    return result
