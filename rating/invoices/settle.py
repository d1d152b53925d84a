"""Paying and crediting issued invoices, and their status, derived from the ledger and the documents.

- :func:`pay_invoice` (``rating invoice pay``, or a signed payment confirmation
  naming an invoice: :func:`rating.billing.payments.confirm_payment`) posts
  ``settle:REFERENCE``: the receivable is credited, ``payments:received``
  debited. Partial payments are fine; paying more than is due is refused
  (``overpayment``): an overpaid balance would have nowhere defined to go.
  The reference makes it idempotent.
- :func:`credit_invoice` issues a credit note (series ``CN-YEAR``, gapless like
  invoices) for all that is left of an invoice, of one line, or an amount of
  one line, and posts ``credit:NUMBER``, which reverses exactly what it
  credits: each line's account (revenue, fee) and its tax, against the
  receivable; a line credited to its end also reverses its exact amount and
  its share of the period's rounding. Lines are credited in line order, never
  more than a line has left, and a credit note never raises what is due (its
  total is positive). What was already paid is credited only with a
  ``refund``: owed back to the customer (``customer:ID:refund``) or returned
  to its wallet as funds; without one, a credit takes at most what is still
  due. Its reference makes it idempotent; reused with other terms it is a
  ``conflict``. Issued invoices are never edited or voided.
- :func:`invoice_status` derives open, partly paid, paid or credited, and
  whether it is overdue, from those postings and documents: nothing is updated
  in place.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from rating.accounts import (
    PAYMENTS_ACCOUNT,
    check_id,
    receivable_account,
    refund_account,
    rounding_account,
    tax_account,
    wallet_account,
)
from rating.errors import InvalidAmount, InvoiceError, TransactionConflict
from rating.ids import TransactionKind, credit_id, deposit_id, settle_id
from rating.invoices.issue import (
    CREDIT_NOTE,
    CreditLine,
    CreditNote,
    CreditTerms,
    Invoice,
    RefundTo,
    documents_of,
    invoices,
)
from rating.invoices.lines import line_description
from rating.ledger import Posting, Transaction
from rating.money import ZERO, allocate, exact, quantize
from rating.outbox import CREDIT_NOTE_ISSUED, INVOICE_PAID, message
from rating.refusals import InvoiceRefusal
from rating.storage import Storage
from rating.wallet.payment_ids import Purpose, claim, payment_marker


@dataclass(frozen=True)
class InvoiceStatus:
    """Where an invoice stands: paid, credited, still due, and its state."""

    paid: Decimal
    credited: Decimal
    due: Decimal
    state: Literal["open", "partly paid", "paid", "credited"]
    overdue: bool
    #: What credit notes gave back of what was paid (``refund``).
    refunded: Decimal = ZERO


__all__ = [
    "CREDIT_NOTE",
    "CreditLine",
    "CreditNote",
    "CreditTerms",
    "InvoiceStatus",
    "RefundTo",
    "credit_invoice",
    "credit_notes",
    "find_invoice",
    "invoice_status",
    "pay_invoice",
]


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
        t
        for t in storage.transactions_of(TransactionKind.SETTLE, invoice.customer)
        if t.metadata.get("invoice") == invoice.number
    ]


@exact
def invoice_status(storage: Storage, invoice: Invoice, today: dt.date | None = None) -> InvoiceStatus:
    """What was paid and credited of ``invoice``, what is due, and whether it is overdue on ``today``."""
    paid = sum((Decimal(t.metadata["amount"]) for t in _payments(storage, invoice)), ZERO)
    notes = credit_notes(storage, invoice)
    credited = sum((note.total for note in notes), ZERO)
    refunded = sum((note.refund for note in notes), ZERO)
    due = invoice.total - paid - credited + refunded
    state: Literal["open", "partly paid", "paid", "credited"]
    # At least the total: an invoice that carried an earlier credit has lines worth more than its total.
    if credited and credited >= invoice.total:
        state = "credited"
    elif due <= 0:
        state = "paid"
    else:
        state = "partly paid" if paid else "open"
    overdue = due > 0 and (today or dt.datetime.now(dt.UTC).date()) > invoice.due
    return InvoiceStatus(paid, credited, due, state, overdue, refunded)


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
        id = settle_id(reference)
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
        status = invoice_status(storage, invoice)  # read in the write that paid it: this payment included
        if status.state == "paid":
            data = {
                "number": number,
                "customer": invoice.customer,
                "currency": invoice.currency,
                "total": invoice.total,
                "paid": status.paid,
                "reference": reference,
            }
            storage.announce([message(INVOICE_PAID, number, data)])
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
    refund: RefundTo | None = None,
    issued: dt.date | None = None,
) -> tuple[CreditNote, bool]:
    """Credit invoice ``number`` once per ``reference``; returns the credit note and whether it is new.

    Credits all that is left, line by line in line order; or what is left of line ``line`` (counted from
    1); or ``amount`` of line ``line`` (an amount needs its line). Without ``refund`` it credits at most
    what is still due (all that is left is cut to it, an amount beyond it is ``credit_exceeds``); with
    ``refund`` what was already paid may be credited too and is given back to the ``customer`` (owed on
    ``customer:ID:refund``) or to its ``wallet`` as funds. The same reference with other terms is a
    ``conflict``.
    """
    check_id("credit reference", reference)
    if amount is not None and line is None:
        raise InvalidAmount("a credit amount needs the line it credits (--line)")
    invoice = find_invoice(storage, number)
    on = issued or dt.datetime.now(dt.UTC).date()
    terms = CreditTerms(line=line, amount=amount, reason=reason, refund=refund)

    def build(credit_number: str) -> tuple[str, list[Transaction]]:
        due = max(ZERO, invoice_status(storage, invoice).due)  # read inside the write that issues the note
        earlier = credit_notes(storage, invoice)
        lines = _credited(invoice, earlier, _re_rated(storage, invoice), line, amount, None if refund else due)
        subtotal = sum((c.amount for c in lines), ZERO)
        tax = sum((c.tax for c in lines), ZERO)
        given_back = max(ZERO, subtotal + tax - due)  # what was paid: only with a refund (else _credited refused)
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
            refund=given_back,
            refund_to=refund if given_back else None,
            terms=terms,
            invoice_issued=invoice.issued,
            invoice_period=invoice.period,
            scale=invoice.scale,
            tax=invoice.tax,
        )
        return note.model_dump_json(), _credit_transactions(invoice, note, on)

    with storage.writing():  # the note and its announcement in one write
        text, new = storage.issue_document(
            f"CN-{on.year}", CREDIT_NOTE, invoice.customer, f"{number}:{reference}", build
        )
        if new:
            document = json.loads(text)
            storage.announce([message(CREDIT_NOTE_ISSUED, document["number"], document)])
    note = CreditNote.model_validate_json(text)
    if not new and note.terms is not None and note.terms != terms:
        raise InvoiceError(
            InvoiceRefusal.CONFLICT,
            f"credit reference {reference} of {number} was used for other terms ({note.number})",
        )
    return note, new


def _credit_transactions(invoice: Invoice, note: CreditNote, on: dt.date) -> list[Transaction]:
    """``credit:NUMBER``: each line's account and rounding share, and the tax, back against the receivable;
    what was already paid is owed back on ``customer:ID:refund``, or deposited in the wallet by
    ``deposit:NUMBER`` (a top-up on the customer's statement)."""
    currency, customer = invoice.currency, invoice.customer
    receivable = receivable_account(customer)
    postings = []
    for credit in note.lines:
        postings.append(Posting(credit.account, currency, credit.reversed))
        postings.append(Posting(rounding_account(currency), currency, credit.amount - credit.reversed))
    held: dict[str, Decimal] = {}  # each line's tax back from the account of its category's tax
    for credit in note.lines:
        account = tax_account(invoice.tax_of(invoice.lines[credit.line - 1]).name, invoice.buyer.country)
        held[account] = held.get(account, ZERO) + credit.tax
    if not held:
        held[tax_account(invoice.tax.name, invoice.buyer.country)] = note.tax_total
    postings += [Posting(account, currency, amount) for account, amount in held.items()]
    owed_back = note.refund if note.refund_to == "customer" else ZERO
    postings.append(Posting(receivable, currency, owed_back - note.total))
    postings.append(Posting(refund_account(customer), currency, -owed_back))
    metadata = {"customer": customer, "invoice": invoice.number, "credit_note": note.number, "reason": note.reason}
    if note.refund:
        metadata |= {"refund": str(note.refund), "refund_to": note.refund_to or ""}
    at = dt.datetime.combine(on, dt.time(), dt.UTC)
    what = f"{note.number} credits {invoice.number}"
    transactions = [Transaction(credit_id(note.number), at, what, tuple(p for p in postings if p.amount), metadata)]
    if note.refund_to == "wallet":
        funds = (Posting(receivable, currency, note.refund), Posting(wallet_account(customer), currency, -note.refund))
        deposit = {"customer": customer, "kind": "deposit", "credit_note": note.number}
        transactions.append(Transaction(deposit_id(note.number), at, f"paid {what}, to the wallet", funds, deposit))
    return transactions


#: What is left to credit of one invoice line: its amount, its tax, and its exact amount.
_Left = tuple[Decimal, Decimal, Decimal]


def _re_rated(storage: Storage, invoice: Invoice) -> dict[str, Decimal]:
    """What re-ratings of the invoice's period took off each of its line accounts since (corrections posted into
    a later period with ``adjusts: PERIOD``, which a later document gave back): no credit note gives it again."""
    accounts = {item.account for item in invoice.lines}
    taken: dict[str, Decimal] = {}
    for correction in storage.transactions_of(TransactionKind.RERATE, invoice.customer):
        if correction.metadata.get("adjusts") == invoice.period:
            for posting in correction.postings:
                if posting.account in accounts:  # revenue is credit-normal: a debit takes revenue off
                    taken[posting.account] = taken.get(posting.account, ZERO) + posting.amount
    return {account: amount for account, amount in taken.items() if amount > 0}


def _credited(
    invoice: Invoice,
    earlier: list[CreditNote],
    re_rated: dict[str, Decimal],
    line: int | None,
    amount: Decimal | None,
    limit: Decimal | None,
) -> list[CreditLine]:
    """What this credit note takes of each line: never more than a line has left (less what re-rating took off
    its account since, in line order, with its tax), at most ``limit`` in all (tax included; None: no limit),
    and a positive total."""
    if line is not None and not 1 <= line <= len(invoice.lines):
        raise InvoiceError(InvoiceRefusal.CREDIT_EXCEEDS, f"{invoice.number} has lines 1 to {len(invoice.lines)}")
    left: dict[int, _Left] = {
        index: (item.amount, item.tax, item.exact) for index, item in enumerate(invoice.lines, start=1)
    }
    for note in earlier:
        for credit in note.lines:
            amount_left, tax_left, exact_left = left[credit.line]
            left[credit.line] = (amount_left - credit.amount, tax_left - credit.tax, exact_left - credit.reversed)
    re_rated = dict(re_rated)
    for index, item in enumerate(invoice.lines, start=1):
        amount_left, tax_left, exact_left = left[index]
        taken_off = min(re_rated.get(item.account, ZERO), max(ZERO, exact_left))
        if taken_off:
            re_rated[item.account] -= taken_off
            shown = min(amount_left, quantize(taken_off, invoice.scale))
            tax = min(tax_left, quantize(shown * invoice.tax_of(item).rate / 100, invoice.scale))
            left[index] = (amount_left - shown, tax_left - tax, exact_left - taken_off)
    if amount is not None and line is not None:
        taken = [_part_of_line(invoice, line, left[line], amount, limit)]
    else:
        taken = _in_line_order(invoice, left, [line] if line is not None else list(left), limit)
    total = sum((c.amount + c.tax for c in taken), ZERO)
    if total <= 0:
        if taken:
            raise InvoiceError(
                InvoiceRefusal.CREDIT_EXCEEDS,
                f"a credit note never raises what is due: this one would credit {total} {invoice.currency}",
            )
        if limit is not None and not limit and any(a or t for a, t, _ in left.values()):
            raise InvoiceError(
                InvoiceRefusal.CREDIT_EXCEEDS,
                f"nothing is due on {invoice.number}: what was paid can be credited only with a refund (--refund)",
            )
        raise InvoiceError(InvoiceRefusal.CREDIT_EXCEEDS, f"nothing is left to credit of {invoice.number}")
    return taken


def _part_of_line(invoice: Invoice, index: int, left: _Left, amount: Decimal, limit: Decimal | None) -> CreditLine:
    """``amount`` of line ``index``, with its tax at the invoice's rate (never more tax than the line has left)."""
    amount_left, tax_left, exact_left = left
    if amount <= 0 or amount > amount_left:
        raise InvoiceError(
            InvoiceRefusal.CREDIT_EXCEEDS,
            f"line {index} of {invoice.number} has {amount_left} {invoice.currency} left; {amount} cannot be credited",
        )
    if quantize(amount, invoice.scale) != amount:
        raise InvoiceError(InvoiceRefusal.CREDIT_EXCEEDS, f"{amount} has more places than {invoice.currency} has")
    whole = amount == amount_left
    rate = invoice.tax_of(invoice.lines[index - 1]).rate
    tax = tax_left if whole else min(tax_left, quantize(amount * rate / 100, invoice.scale))
    if limit is not None and amount + tax > limit:
        raise InvoiceError(
            InvoiceRefusal.CREDIT_EXCEEDS,
            f"{amount + tax} {invoice.currency} with tax is more than the {limit} still due on {invoice.number}:"
            " what was paid can be credited only with a refund (--refund)",
        )
    return _credit_line(invoice, index, amount, tax, exact_left if whole else amount)


def _in_line_order(
    invoice: Invoice, left: dict[int, _Left], chosen: list[int], limit: Decimal | None
) -> list[CreditLine]:
    """All that is left of the ``chosen`` lines; beyond ``limit``, the lines in line order up to it, the last one
    in part (its amount and tax in proportion, by largest remainder)."""
    everything = sum((left[i][0] + left[i][1] for i in chosen), ZERO)
    remaining = None if limit is None or everything <= limit else limit
    taken = []
    for index in chosen:
        amount, tax, exact_left = left[index]
        if not (amount or tax):
            continue
        if remaining is not None and amount + tax > remaining:
            if remaining <= 0 or amount < 0 or tax < 0:
                break
            amount, tax = allocate(remaining, [amount, tax], invoice.scale)
            exact_left = amount  # a part of the line: its rounding share stays with the rest
        taken.append(_credit_line(invoice, index, amount, tax, exact_left))
        if remaining is not None:
            remaining -= amount + tax
            if not remaining:
                break
    return taken


def _credit_line(invoice: Invoice, index: int, amount: Decimal, tax: Decimal, exact_amount: Decimal) -> CreditLine:
    item = invoice.lines[index - 1]
    description = line_description(item, invoice.buyer.language)  # with its tier, as the invoice shows it
    return CreditLine(
        line=index, description=description, account=item.account, amount=amount, tax=tax, exact=exact_amount
    )
