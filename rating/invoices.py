"""Numbered invoices, built from the ledger's charge records and checked against the ledger.

``issue_invoices(storage, catalog, billing, "2026-11")`` issues, for every
customer billed on account whose period is closed, one invoice:

- **Lines** are the period's charge records summed per line (plan, meter,
  group, model, unit price), then the period-close postings (fees, minimum and
  commitment true-ups, a contract's prepayment), less what a prepaid
  commitment paid, then the re-rating corrections of closed periods that were
  posted into this one (``adjusts: PERIOD``), on lines of their own naming the
  period they adjust and its invoice. The lines are rounded to the currency's
  scale by signed largest remainder (:func:`rating.money.round_to_total`), so
  that they add up to the period's total, which period close already rounded:
  no rounding line, and each line's share of the rounding is its ``amount``
  less its ``exact``.
- **The ledger is the check**: that total must equal the movement of the
  customer's receivable by the postings of the period (usage, corrections,
  period close; payments excluded), else nothing is issued
  (``ledger_mismatch``).
- **Tax** is computed once on the lines' net sum (one tax category per
  invoice), half-even to the currency's scale, at the rate
  :func:`rating.billing.tax_for` decides, and allocated back to the lines by
  largest remainder; it is posted (``tax:CUSTOMER:PERIOD``: the receivable
  owes it, ``tax:NAME:COUNTRY`` holds it), so the invoice's total is the
  receivable's movement to the cent.
- **Numbers** ``INV-2026-000001`` are gapless per series and year, taken inside
  the storage write (:meth:`~rating.storage.Storage.issue_document`); issuing
  again for the same customer and period returns the invoice already issued.
- **Immutable**: the invoice is stored as a document with the seller, the
  buyer's profile and the tax rule as they were; rendering it later (JSON, CSV,
  HTML, PDF: :mod:`rating.documents`) reads only that snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from rating.accounts import prepaid_account, receivable_account, revenue_account
from rating.billing import AppliedTax, Billing, Party, Profile, TaxError, tax_for
from rating.catalog import Catalog
from rating.errors import InvoiceError
from rating.ledger import RERATE, Posting, Transaction
from rating.money import ZERO, exact, quantize, round_to_total
from rating.periods import bounds_of, zone
from rating.pricebook import Pricebook
from rating.refusals import InvoiceRefusal
from rating.storage import Storage, StoredCharge

#: Period-close kinds that put a line on the invoice, with the line's description.
CLOSING_LINES = {"fee": "subscription fee", "minimum": "minimum spend true-up", "commitment": "commitment true-up"}
#: The document kind of an invoice.
INVOICE = "invoice"


class InvoiceLine(BaseModel):
    """One line: what was charged, how much of it, and the amount shown (rounded) and exact.

    ``amount - exact`` is the line's share of the period's rounding (credited to ``rounding:CURRENCY``).
    """

    model_config = ConfigDict(frozen=True)

    description: str
    #: The ledger account the line's amount was credited to (what a credit note reverses).
    account: str
    quantity: Decimal | None = None
    unit: str | None = None
    unit_price: Decimal | None = None
    exact: Decimal
    amount: Decimal
    tax: Decimal = ZERO
    #: The closed period a re-rating correction on this line adjusts, and the invoice issued for it, if any.
    adjusts: str | None = None
    adjusts_invoice: str | None = None


class Invoice(BaseModel):
    """An issued invoice, as stored: everything a rendering needs, frozen at issue."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["invoice"] = "invoice"
    number: str
    customer: str
    period: str
    period_start: dt.date
    period_end: dt.date
    issued: dt.date
    due: dt.date
    currency: str
    scale: int
    seller: Party
    buyer: Profile
    tax: AppliedTax
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    pricebook: str

    def to_json(self) -> str:
        """The stored text: amounts as strings, never floats."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Invoice:
        """An invoice from its stored text."""
        return cls.model_validate(json.loads(text))


@dataclass
class IssueReport:
    """What issuing found: invoices issued now, already issued, and customers refused with their codes."""

    issued: list[Invoice] = field(default_factory=list)
    existing: list[Invoice] = field(default_factory=list)
    refused: list[tuple[str, InvoiceRefusal, str]] = field(default_factory=list)


@exact
def issue_invoices(
    storage: Storage,
    catalog: Catalog,
    billing: Billing,
    period: str,
    customers: Iterable[str] | None = None,
    *,
    issued: dt.date | None = None,
) -> IssueReport:
    """Issue the invoices of ``period`` (for ``customers``, or everyone with a profile), each once."""
    report = IssueReport()
    on = issued or dt.datetime.now(dt.UTC).date()
    for customer in sorted(customers if customers is not None else billing.profiles):
        try:
            text, new = storage.issue_document(
                f"{billing.invoice_series}-{on.year}",
                INVOICE,
                customer,
                period,
                partial(_issue, storage, catalog, billing, period, customer, on=on),
            )
        except InvoiceError as error:
            report.refused.append((customer, error.code, str(error)))
            continue
        (report.issued if new else report.existing).append(Invoice.from_json(text))
    return report


def documents_of(
    storage: Storage, kind: str, number: str | None = None, customer: str | None = None
) -> list[dict[str, Any]]:
    """The stored documents of ``kind`` (invoices, credit notes), by number or customer, in the order issued."""
    documents = (json.loads(text) for text in storage.documents(number, customer))
    return [document for document in documents if document.get("kind") == kind]


def invoices(storage: Storage, number: str | None = None, customer: str | None = None) -> list[Invoice]:
    """Issued invoices, by number or customer, in the order issued."""
    return [Invoice.model_validate(document) for document in documents_of(storage, INVOICE, number, customer)]


def _issue(
    storage: Storage, catalog: Catalog, billing: Billing, period: str, customer: str, number: str, *, on: dt.date
) -> tuple[str, list[Transaction]]:
    """The invoice's stored text and its tax transaction (inside the storage write that numbers it)."""
    profile = billing.profiles.get(customer)
    if profile is None:
        raise InvoiceError(InvoiceRefusal.NO_PROFILE, f"no billing profile for customer {customer!r}")
    book = _version_of(catalog, period, customer)
    currency, scale = book.currency, book.scale_of(book.currency)
    if profile.currency not in (None, currency):
        raise InvoiceError(
            InvoiceRefusal.CURRENCY_MISMATCH,
            f"{customer}'s profile bills in {profile.currency}, the pricebook in {currency}",
        )
    if book.pays_from_wallet(customer):
        raise InvoiceError(InvoiceRefusal.WALLET_BILLED, f"{customer!r} pays from a wallet: it gets a statement")
    try:
        tax = tax_for(billing, profile, on)
    except TaxError as error:
        raise InvoiceError(InvoiceRefusal.NO_TAX_RULE, str(error)) from None
    _, start, end = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
    posted = _read(storage, customer, period, start, end)
    usage = _usage_lines(posted, customer, currency)
    own = [line for line in usage if line.adjusts is None]
    exact_lines = own + _closing_lines(posted, customer) + [line for line in usage if line.adjusts is not None]
    owed = posted.receivable_movement(customer, currency)
    if not exact_lines and not owed:
        raise InvoiceError(InvoiceRefusal.NOTHING_TO_INVOICE, f"nothing was charged to {customer!r} in {period}")
    if not storage.closed_periods([(customer, period)]):
        raise InvoiceError(InvoiceRefusal.PERIOD_OPEN, f"period {period} of {customer!r} is not closed: close it first")
    lines_total = sum((line.amount for line in exact_lines), ZERO)
    rounding = sum((_on(t.postings, receivable_account(customer), currency) for t in posted.rounding), ZERO)
    if lines_total + rounding != owed or quantize(owed, scale) != owed:
        raise InvoiceError(
            InvoiceRefusal.LEDGER_MISMATCH,
            f"the lines of {customer!r} for {period} do not add up to its receivable movement {owed} {currency}",
        )
    owed = quantize(owed, scale)  # the same amount, at the currency's scale
    lines = _rounded(exact_lines, owed, scale)
    tax_total = quantize(owed * tax.rate / 100, scale) + ZERO  # one tax category: its net sum, rounded once
    shares = round_to_total([line.amount * tax.rate / 100 for line in lines], tax_total, scale)
    taxed = tuple(line.model_copy(update={"tax": share + ZERO}) for line, share in zip(lines, shares, strict=True))
    invoice = Invoice(
        number=number,
        customer=customer,
        period=period,
        period_start=start.astimezone(zone(book.timezone_of(customer))).date(),
        period_end=(end.astimezone(zone(book.timezone_of(customer))) - dt.timedelta(microseconds=1)).date(),
        issued=on,
        due=on + dt.timedelta(days=_terms(billing, profile)),
        currency=currency,
        scale=scale,
        seller=billing.seller,
        buyer=profile,
        tax=tax,
        lines=taxed,
        subtotal=owed,
        tax_total=tax_total,
        total=owed + tax_total,
        pricebook=f"{book.pricebook}@{book.version.isoformat()}",
    )
    return invoice.to_json(), _tax_transaction(invoice, end)


def _version_of(catalog: Catalog, period: str, customer: str) -> Pricebook:
    book = catalog.latest
    _, start, _ = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
    return catalog.in_force(start) or catalog.versions[0]


def _terms(billing: Billing, profile: Profile) -> int:
    return billing.payment_terms_days if profile.payment_terms_days is None else profile.payment_terms_days


class ExactLine(NamedTuple):
    """A line before rounding."""

    description: str
    account: str
    quantity: Decimal | None
    unit: str | None
    unit_price: Decimal | None
    amount: Decimal
    adjusts: str | None = None
    adjusts_invoice: str | None = None


@dataclass(frozen=True)
class _Posted:
    """What the ledger holds for one customer's period, read once: its charge records, the ratings and
    corrections that post them, and its period-close transactions."""

    charges: list[StoredCharge]
    late: dict[str, str]  # event id -> the closed period a late event belongs to
    adjusted: dict[str, str]  # event id -> the closed period its corrections posted here adjust
    invoiced: dict[str, str]  # period -> the number of the customer's invoice issued for it
    usage: list[Transaction]
    closing: list[tuple[str, Transaction]]  # fees, true-ups and a prepayment, with their line's description
    rounding: list[Transaction]

    def receivable_movement(self, customer: str, currency: str) -> Decimal:
        """How these postings (payments excluded) move the customer's receivable in ``currency``."""
        transactions = self.usage + [t for _, t in self.closing] + self.rounding
        return sum((_on(t.postings, receivable_account(customer), currency) for t in transactions), ZERO)


def _read(storage: Storage, customer: str, period: str, start: dt.datetime, end: dt.datetime) -> _Posted:
    charges = [stored for stored in storage.charges(customer) if stored.charge.period == period]
    events = {stored.event_id for stored in charges}
    all_corrections = storage.transactions_of(RERATE, customer)
    # An event whose correction adjusts a closed period was rated (and invoiced) there: here it has only the
    # correction's charge records, and its rating is not this period's.
    adjusted = {
        t.metadata["event_id"]: t.metadata["adjusts"]
        for t in all_corrections
        if t.metadata.get("event_id") in events and t.metadata.get("adjusts", period) != period
    }
    ratings = [
        t
        for t in storage.transactions_of("rating", customer)
        if t.metadata.get("event_id") in events and t.metadata["event_id"] not in adjusted
    ]
    corrections = [t for t in all_corrections if t.metadata.get("period") == period]
    closing = [
        (description, transaction)
        for kind, description in CLOSING_LINES.items()
        for transaction in storage.transactions_of(kind, customer)
        if transaction.id.split(":")[2] == period
    ]
    closing += [
        ("prepaid commitment", t) for t in storage.transactions_of("prepayment", customer) if start <= t.timestamp < end
    ]
    rounding = [t for t in storage.transactions_of("rounding", customer) if t.id.split(":")[2] == period]
    late = {t.metadata["event_id"]: t.metadata["late_for"] for t in ratings if "late_for" in t.metadata}
    invoiced = {invoice.period: invoice.number for invoice in invoices(storage, customer=customer)} if adjusted else {}
    return _Posted(charges, late, adjusted, invoiced, ratings + corrections, closing, rounding)


def _usage_lines(posted: _Posted, customer: str, currency: str) -> list[ExactLine]:
    """The period's charge records summed per (plan, meter, group, model, unit price); late usage and the
    adjustments of each closed period apart."""
    summed: dict[tuple[str, str, tuple[str, ...], str, str, Decimal | None, str, str], tuple[Decimal, Decimal]] = {}
    for stored in posted.charges:
        charge = stored.charge
        if charge.asset != currency:
            raise InvoiceError(
                InvoiceRefusal.CURRENCY_MISMATCH,
                f"{customer!r} was charged in {charge.asset}, invoices are in {currency}",
            )
        adjusts = posted.adjusted.get(stored.event_id, "")
        late_for = "" if adjusts else posted.late.get(stored.event_id, "")
        # An adjustment reverses the charges as billed and adds them as re-priced: one line of the difference.
        price = None if adjusts else charge.unit_price
        key = (charge.plan, charge.meter, charge.group, charge.model, charge.unit, price, late_for, adjusts)
        quantity, amount = summed.get(key, (ZERO, ZERO))
        summed[key] = (quantity + charge.quantity, amount + charge.amount)
    lines: list[ExactLine] = []
    for (plan, meter, group, _, unit, price, late_for, adjusts), (quantity, amount) in summed.items():
        if not (quantity or amount):
            continue
        description = f"{meter} ({', '.join(group)})" if group else meter
        invoice = posted.invoiced.get(adjusts)
        shown: tuple[Decimal | None, str | None] = (quantity, unit)
        if adjusts:
            description += f", adjustment of {adjusts}" + (f" ({invoice})" if invoice else "")
            if not quantity:  # a price difference: the same usage, no quantity to show
                shown = (None, None)
        elif late_for:
            description += f", late usage of {late_for}"
        account = revenue_account(plan, meter)
        lines.append(ExactLine(description, account, *shown, price, amount, adjusts or None, invoice))
    return lines


def _closing_lines(posted: _Posted, customer: str) -> list[ExactLine]:
    """Fees, true-ups and a contract's prepayment of the period; less what the prepaid commitment paid."""
    receivable, prepaid = receivable_account(customer), prepaid_account(customer)
    lines: list[ExactLine] = []
    for description, transaction in posted.closing:
        account = next(p.account for p in transaction.postings if p.account != receivable)
        lines.append(ExactLine(description, account, None, None, None, _on(transaction.postings, receivable)))
    drawn = sum((_on(t.postings, prepaid) for t in posted.usage), ZERO)
    if drawn:
        lines.append(ExactLine("paid from the prepaid commitment", prepaid, None, None, None, -drawn))
    return lines


def _on(postings: Iterable[Posting], account: str, asset: str | None = None) -> Decimal:
    """What ``postings`` move ``account`` by (in ``asset`` only, when given)."""
    return sum((p.amount for p in postings if p.account == account and asset in (None, p.asset)), ZERO)


def _rounded(lines: list[ExactLine], total: Decimal, scale: int) -> list[InvoiceLine]:
    """Lines rounded to ``scale`` by signed largest remainder, so that they add up to ``total`` (ties in line order)."""
    amounts = round_to_total([line.amount for line in lines], total, scale)
    return [
        InvoiceLine(
            description=line.description,
            account=line.account,
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            exact=line.amount,
            amount=amount + ZERO,
            adjusts=line.adjusts,
            adjusts_invoice=line.adjusts_invoice,
        )
        for line, amount in zip(lines, amounts, strict=True)
    ]


def tax_account(invoice: Invoice) -> str:
    """Where the tax of ``invoice`` is held until paid to the authority: ``tax:NAME:COUNTRY``."""
    return f"tax:{invoice.tax.name.replace(' ', '_')}:{invoice.buyer.country}"


def _tax_transaction(invoice: Invoice, end: dt.datetime) -> list[Transaction]:
    """The tax the invoice charges, owed on the receivable and held for the tax authority."""
    if not invoice.tax_total:
        return []
    account = tax_account(invoice)
    postings = (
        Posting(receivable_account(invoice.customer), invoice.currency, invoice.tax_total),
        Posting(account, invoice.currency, -invoice.tax_total),
    )
    at = end - dt.timedelta(microseconds=1)
    metadata = {"customer": invoice.customer, "period": invoice.period, "invoice": invoice.number}
    return [Transaction(f"tax:{invoice.customer}:{invoice.period}", at, f"tax of {invoice.number}", postings, metadata)]
