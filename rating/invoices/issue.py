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
  :func:`rating.invoices.profiles.tax_for` decides, and allocated back to the lines by
  largest remainder; it is posted (``tax:CUSTOMER:PERIOD``: the receivable
  owes it, ``tax:NAME:COUNTRY`` holds it), so the invoice's total is the
  receivable's movement to the cent.
- **A period that owes less than nothing** (its total, tax included, is
  negative: corrections of closed periods can exceed the period's usage) is
  not invoiced: it is issued as a credit note (``CN-2026-000001``, the credit
  notes' series) that credits no invoice but the period, and the credit is
  carried to the customer's next invoice (or credit note), where it is taken
  off after tax (:class:`CarriedCredit`): the receivable already holds it, so
  the carried document's total is still the receivable's movement, and the
  documents of a customer add up to its receivable (open credit notes count
  as what is owed back). Each credit note is carried once, oldest first.
- **Numbers** ``INV-2026-000001`` are gapless per series and year, taken inside
  the storage write (:meth:`~rating.storage.Storage.issue_document`); issuing
  again for the same customer and period returns the invoice already issued.
- **Immutable**: the invoice is stored as a document with the seller, the
  buyer's profile and the tax rule as they were; rendering it later (JSON, CSV,
  HTML, PDF: :mod:`rating.invoices.render`) reads only that snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer, model_validator

from rating.accounts import prepaid_account, receivable_account, revenue_account
from rating.accounts import tax_account as _tax_account
from rating.billing.close import period_usage
from rating.core.charges import pricing_of, rendered
from rating.errors import InvoiceError
from rating.ids import TransactionKind, parse, tax_id
from rating.invoices.profiles import AppliedTax, Billing, Party, Profile, TaxError, tax_for
from rating.ledger import Posting, Transaction
from rating.money import ZERO, exact, quantize, round_to_total
from rating.outbox import CREDIT_NOTE_ISSUED, INVOICE_ISSUED, message
from rating.periods import bounds_of, zone
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook
from rating.pricebook.pricing import PriceStep, PricingModel, display_name
from rating.refusals import InvoiceRefusal
from rating.storage import Storage, StoredCharge

#: Period-close kinds that put a line on the invoice, with the line's description.
CLOSING_LINES = {
    TransactionKind.FEE: "subscription fee",
    TransactionKind.MINIMUM: "minimum spend true-up",
    TransactionKind.COMMITMENT: "commitment true-up",
}
#: The document kind of an invoice.
INVOICE = "invoice"


class LineStep(BaseModel):
    """Which part of a charge's period price a line is (:class:`rating.pricebook.pricing.PriceStep`): the
    units the allowance covered (``included``), the billable units beyond it (``units``), a graduated tier
    (``tier``), the volume tier every unit was priced at (``volume``), or a tier's flat fee (``flat_fee``);
    ``tier`` counts from 1, ``lower`` (exclusive) and ``upper`` (inclusive, None: open) bound it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["included", "units", "tier", "volume", "flat_fee"]
    tier: int | None = None
    lower: Decimal | None = None
    upper: Decimal | None = None


#: Fields of a line left out of its JSON when unset, so that a line without them reads as it always did.
_OPTIONAL_LINE_FIELDS = ("step", "per", "tax_category")


class InvoiceLine(BaseModel):
    """One line: what was charged, how much of it, and the amount shown (rounded) and exact.

    ``amount - exact`` is the line's share of the period's rounding (credited to ``rounding:CURRENCY``).
    ``description`` is the meter's or charge's display name in the invoice's language (with the group and
    what a late or adjusting line is); ``step`` says which part of a charge's price the line is (a tier, the
    allowance), ``per`` the number of units its unit price is shown for (display only), ``tax_category`` the
    tax category (None: the invoice's one category).
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
    step: LineStep | None = None
    per: int | None = None
    tax_category: str | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _OPTIONAL_LINE_FIELDS:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class TaxBreakdown(BaseModel):
    """The tax of one category of an invoice: its rate, rule and name (``names`` per language), the net sum of
    the category's lines (``taxable``) and its tax, rounded once; ``reason`` is why (an exemption, reverse
    charge, a reduced rate), in the invoice's language, when the billing file says it. ``category`` None is the
    lines without a tax category."""

    model_config = ConfigDict(frozen=True)

    category: str | None
    name: str
    rate: Decimal
    rule: str
    taxable: Decimal
    tax: Decimal
    names: dict[str, str] = {}
    reason: str | None = None

    @property
    def applied(self) -> AppliedTax:
        """The tax decision of the category."""
        return AppliedTax(
            rate=self.rate, name=self.name, rule=self.rule, category=self.category, names=self.names, reason=self.reason
        )

    def label(self, language: str) -> str:
        """The tax's name in ``language``."""
        return self.names.get(language) or self.name


class CarriedCredit(BaseModel):
    """A period's credit note taken off a later document: its number, its period and the amount taken."""

    model_config = ConfigDict(frozen=True)

    number: str
    period: str
    amount: Decimal


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
    #: Credit balances of earlier periods taken off this invoice, after tax: ``total`` is
    #: ``subtotal + tax_total`` less their amounts.
    carried: tuple[CarriedCredit, ...] = ()
    #: The tax per category, in the order the categories first appear on the lines: what ``tax_total`` adds up.
    #: An invoice with one category and nothing more declared stores none (its JSON reads as it always did):
    #: it is read back as that one category, from ``tax``, ``subtotal`` and ``tax_total``.
    taxes: tuple[TaxBreakdown, ...] = ()

    @model_validator(mode="after")
    def _one_category_unless_stored(self) -> Invoice:
        if not self.taxes:
            tax = self.tax
            only = TaxBreakdown(
                category=tax.category,
                name=tax.name,
                rate=tax.rate,
                rule=tax.rule,
                taxable=self.subtotal,
                tax=self.tax_total,
                names=tax.names,
                reason=tax.reason,
            )
            object.__setattr__(self, "taxes", (only,))
        return self

    @model_serializer(mode="wrap")
    def _without_plain_taxes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        [*taxes] = self.taxes
        plain = (
            len(taxes) == 1
            and taxes[0].applied == self.tax
            and (taxes[0].taxable, taxes[0].tax)
            == (
                self.subtotal,
                self.tax_total,
            )
        )
        if plain and not (self.tax.category or self.tax.names or self.tax.reason):
            data.pop("taxes", None)
        return data

    def tax_of(self, line: InvoiceLine) -> AppliedTax:
        """The tax decision of ``line``'s category."""
        for breakdown in self.taxes:
            if breakdown.category == line.tax_category:
                return breakdown.applied
        return self.tax

    def to_json(self) -> str:
        """The stored text: amounts as strings, never floats."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Invoice:
        """An invoice from its stored text."""
        return cls.model_validate(json.loads(text))


#: The document kind of a credit note.
CREDIT_NOTE = "credit_note"
#: Where a credit gives back what was already paid: owed to the customer, or to its wallet as funds.
RefundTo = Literal["customer", "wallet"]


class CreditLine(BaseModel):
    """What a credit note credits of one invoice line (line numbers count from 1; amounts as credited)."""

    model_config = ConfigDict(frozen=True)

    line: int
    description: str
    account: str
    amount: Decimal
    tax: Decimal
    #: What the line's account is moved by: ``amount``, except when this credit takes the rest of the line,
    #: then what is left of the line's exact amount (the difference is its rounding share). None on notes
    #: issued before it was recorded: ``amount``.
    exact: Decimal | None = None

    @property
    def reversed(self) -> Decimal:
        """What the line's own account is moved by (the rest, ``amount - reversed``, goes to rounding)."""
        return self.amount if self.exact is None else self.exact


class CreditTerms(BaseModel):
    """What a credit was asked for: a reused reference must ask the same."""

    model_config = ConfigDict(frozen=True)

    line: int | None = None
    amount: Decimal | None = None
    reason: str
    refund: RefundTo | None = None


class CreditNote(BaseModel):
    """An issued credit note: what it credits of which invoice, and why; or, with no ``invoice``, the credit
    balance of a ``period`` that owed less than nothing (its lines are the period's lines, as credited: their
    signs reversed), carried to the customer's next invoice."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["credit_note"] = "credit_note"
    number: str
    invoice: str | None
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
    #: The part of ``total`` already paid and given back, and where to (None: nothing was given back).
    refund: Decimal = ZERO
    refund_to: RefundTo | None = None
    #: What was asked (None on notes issued before the terms were recorded).
    terms: CreditTerms | None = None
    #: The period whose credit balance this note is (None: it credits ``invoice``).
    period: str | None = None
    #: Earlier credit balances this one took over (its ``total`` includes them).
    carried: tuple[CarriedCredit, ...] = ()
    #: The credited invoice's issue date and period (None on notes issued before they were recorded, and on a
    #: period's credit note), shown on the document beside its number.
    invoice_issued: dt.date | None = None
    invoice_period: str | None = None
    #: The currency's scale and the tax applied, as on the invoice (None on notes issued before they were
    #: recorded: the renderer takes the currency's usual scale and shows no rate).
    scale: int | None = None
    tax: AppliedTax | None = None


@dataclass
class IssueReport:
    """What issuing found: invoices issued now, already issued, the credit notes of periods that owed less than
    nothing (now and before), and customers refused with their codes."""

    issued: list[Invoice] = field(default_factory=list)
    existing: list[Invoice] = field(default_factory=list)
    refused: list[tuple[str, InvoiceRefusal, str]] = field(default_factory=list)
    credit_notes: list[CreditNote] = field(default_factory=list)
    existing_credit_notes: list[CreditNote] = field(default_factory=list)


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
    """Issue the invoices of ``period`` (for ``customers``, or everyone with a profile), each once; a period
    that owes less than nothing gets a credit note instead, carried to the next invoice."""
    report = IssueReport()
    on = issued or dt.datetime.now(dt.UTC).date()
    for customer in sorted(customers if customers is not None else billing.profiles):
        try:
            document, new = _issue_once(storage, catalog, billing, period, customer, on)
        except InvoiceError as error:
            report.refused.append((customer, error.code, str(error)))
            continue
        if isinstance(document, Invoice):
            (report.issued if new else report.existing).append(document)
        else:
            (report.credit_notes if new else report.existing_credit_notes).append(document)
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


def period_credit_notes(storage: Storage, customer: str) -> list[CreditNote]:
    """The credit notes of ``customer``'s periods that owed less than nothing, in the order issued."""
    notes = (CreditNote.model_validate(d) for d in documents_of(storage, CREDIT_NOTE, customer=customer))
    return [note for note in notes if note.invoice is None]


def open_credits(storage: Storage, customer: str) -> list[CreditNote]:
    """The period credit notes of ``customer`` not yet carried to a later document, oldest first."""
    notes = period_credit_notes(storage, customer)
    issued: list[Invoice | CreditNote] = [*invoices(storage, customer=customer), *notes]
    carried = {c.number for document in issued for c in document.carried}
    return [note for note in notes if note.number not in carried]


def _issue_once(
    storage: Storage, catalog: Catalog, billing: Billing, period: str, customer: str, on: dt.date
) -> tuple[Invoice | CreditNote, bool]:
    """The period's invoice, or its credit note when it owes less than nothing: issued now, or as issued before.

    One write: the sign, the credits carried and the number are read and taken together."""
    with storage.writing():
        issued: list[Invoice | CreditNote] = [
            *invoices(storage, customer=customer),
            *period_credit_notes(storage, customer),
        ]
        for earlier in issued:
            if earlier.period == period:
                return earlier, False
        draft = _draft(storage, catalog, billing, period, customer, on)
        if draft.total >= 0:
            series, kind, build = f"{billing.invoice_series}-{on.year}", INVOICE, draft.invoice
        else:
            series, kind, build = f"CN-{on.year}", CREDIT_NOTE, draft.credit_note
        text, new = storage.issue_document(series, kind, customer, period, build)
        if new:  # announced in the write that numbers it: the message exists iff the document does
            document = json.loads(text)
            event = INVOICE_ISSUED if kind == INVOICE else CREDIT_NOTE_ISSUED
            storage.announce([message(event, document["number"], document)])
    document = json.loads(text)
    return (Invoice if kind == INVOICE else CreditNote).model_validate(document), new


@dataclass(frozen=True)
class _Draft:
    """A period's document before it has a number: its lines and tax as an invoice would show them, and the
    open credits of earlier periods it takes over."""

    customer: str
    period: str
    on: dt.date
    due: dt.date
    book: Pricebook
    billing: Billing
    profile: Profile
    tax: AppliedTax
    start: dt.datetime
    end: dt.datetime
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    credits: tuple[CreditNote, ...]
    taxes: tuple[TaxBreakdown, ...]

    @property
    def carried(self) -> tuple[CarriedCredit, ...]:
        return tuple(CarriedCredit(number=n.number, period=n.period or "", amount=n.total) for n in self.credits)

    @property
    def total(self) -> Decimal:
        """What the period owes, tax included, less the credits carried (negative: a credit)."""
        return self.subtotal + self.tax_total - sum((c.amount for c in self.carried), ZERO)

    def invoice(self, number: str) -> tuple[str, list[Transaction]]:
        """The invoice's stored text and its tax transaction."""
        zone_of = zone(self.book.timezone_of(self.customer))
        invoice = Invoice(
            number=number,
            customer=self.customer,
            period=self.period,
            period_start=self.start.astimezone(zone_of).date(),
            period_end=(self.end.astimezone(zone_of) - dt.timedelta(microseconds=1)).date(),
            issued=self.on,
            due=self.due,
            currency=self.book.currency,
            scale=self.book.scale_of(self.book.currency),
            seller=self.billing.seller,
            buyer=self.profile,
            tax=self.tax,
            lines=self.lines,
            subtotal=self.subtotal,
            tax_total=self.tax_total,
            total=self.total,
            pricebook=f"{self.book.pricebook}@{self.book.version.isoformat()}",
            carried=self.carried,
            taxes=self.taxes,
        )
        return invoice.to_json(), self._tax_transaction(number)

    def credit_note(self, number: str) -> tuple[str, list[Transaction]]:
        """The period's credit note: its lines as credited (signs reversed), its total the credit carried on."""
        note = CreditNote(
            number=number,
            invoice=None,
            period=self.period,
            reference=f"period:{self.period}",
            reason=f"credit balance of {self.period}",
            customer=self.customer,
            issued=self.on,
            currency=self.book.currency,
            seller=self.billing.seller,
            buyer=self.profile,
            lines=tuple(
                CreditLine(
                    line=index,
                    description=_line_text(line, self.profile.language),
                    account=line.account,
                    amount=-line.amount + ZERO,
                    tax=-line.tax + ZERO,
                    exact=-line.exact + ZERO,
                )
                for index, line in enumerate(self.lines, start=1)
            ),
            subtotal=-self.subtotal + ZERO,
            tax_total=-self.tax_total + ZERO,
            total=-self.total,
            carried=self.carried,
            scale=self.book.scale_of(self.book.currency),
            tax=self.tax,
        )
        return note.model_dump_json(), self._tax_transaction(number)

    def _tax_transaction(self, number: str) -> list[Transaction]:
        """The tax the period's document charges (on a period's credit note: gives back), owed on the
        receivable and held for the tax authority."""
        if not self.tax_total:
            return []
        currency, receivable = self.book.currency, receivable_account(self.customer)
        held: dict[str, Decimal] = {}  # by tax account: categories whose tax has one name share it
        for breakdown in self.taxes:
            account = _tax_account(breakdown.name, self.profile.country)
            held[account] = held.get(account, ZERO) + breakdown.tax
        postings = (Posting(receivable, currency, self.tax_total),) + tuple(
            Posting(account, currency, -amount) for account, amount in held.items() if amount
        )
        at = self.end - dt.timedelta(microseconds=1)
        metadata = {"customer": self.customer, "period": self.period, "invoice": number}
        return [Transaction(tax_id(self.customer, self.period), at, f"tax of {number}", postings, metadata)]


def _draft(storage: Storage, catalog: Catalog, billing: Billing, period: str, customer: str, on: dt.date) -> _Draft:
    """The period's lines, checked against the ledger, and its tax (inside the storage write that numbers it)."""
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
    posted = _read(storage, catalog, customer, period, start, end)
    usage = _usage_lines(posted, customer, currency, book, catalog, profile.language)
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
    taxed, taxes = _taxed(lines, owed, scale, tax, billing, profile, on)
    tax_total = sum((breakdown.tax for breakdown in taxes), ZERO) + ZERO
    tax = next((b.applied for b in taxes if b.category is None), taxes[0].applied)
    credits = tuple(note for note in open_credits(storage, customer) if note.currency == currency)
    due = on + dt.timedelta(days=_terms(billing, profile))
    return _Draft(
        customer, period, on, due, book, billing, profile, tax, start, end, taxed, owed, tax_total, credits, taxes
    )


def _taxed(
    lines: list[InvoiceLine],
    owed: Decimal,
    scale: int,
    default: AppliedTax,
    billing: Billing,
    profile: Profile,
    on: dt.date,
) -> tuple[tuple[InvoiceLine, ...], tuple[TaxBreakdown, ...]]:
    """The lines with their tax, and the tax per category: computed on the net sum of the category's lines,
    rounded once half-even, and allocated back to its lines by largest remainder. Lines without a category are
    one category, taxed by ``default``; a category without a rule is refused (``no_tax_rule``)."""
    categories = list(dict.fromkeys(line.tax_category for line in lines)) or [None]
    shares: dict[int, Decimal] = {}
    taxes = []
    for category in categories:
        try:
            applied = default if category is None else tax_for(billing, profile, on, category)
        except TaxError as error:
            raise InvoiceError(InvoiceRefusal.NO_TAX_RULE, str(error)) from None
        indexes = [index for index, line in enumerate(lines) if line.tax_category == category]
        net = owed if len(categories) == 1 else sum((lines[i].amount for i in indexes), ZERO)
        tax = quantize(net * applied.rate / 100, scale) + ZERO  # the category's net sum, rounded once
        amounts = [lines[i].amount * applied.rate / 100 for i in indexes]
        shares.update(zip(indexes, round_to_total(amounts, tax, scale), strict=True))
        taxes.append(
            TaxBreakdown(
                category=category,
                name=applied.name,
                rate=applied.rate,
                rule=applied.rule,
                taxable=net,
                tax=tax,
                names=applied.names,
                reason=applied.reason,
            )
        )
    taxed = tuple(line.model_copy(update={"tax": shares[index] + ZERO}) for index, line in enumerate(lines))
    return taxed, tuple(taxes)


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
    step: LineStep | None = None
    per: int | None = None
    tax_category: str | None = None


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


def _read(
    storage: Storage, catalog: Catalog, customer: str, period: str, start: dt.datetime, end: dt.datetime
) -> _Posted:
    usage = period_usage(storage, customer, period)
    # Unit prices of charges kept as data only (memory storage) are rendered from the catalog that priced them.
    charges = [replace(stored, charge=rendered(stored.charge, catalog)) for stored in usage.charges]
    adjusted, ratings, corrections = usage.adjusted, usage.ratings, usage.corrections
    closing = [
        (description, transaction)
        for kind, description in CLOSING_LINES.items()
        for transaction in storage.transactions_of(kind, customer)
        if parse(transaction.id).period == period
    ]
    closing += [
        ("prepaid commitment", t)
        for t in storage.transactions_of(TransactionKind.PREPAYMENT, customer)
        if start <= t.timestamp < end
    ]
    rounding = [t for t in storage.transactions_of(TransactionKind.ROUNDING, customer) if parse(t.id).period == period]
    late = {t.metadata["event_id"]: t.metadata["late_for"] for t in ratings if "late_for" in t.metadata}
    invoiced = {invoice.period: invoice.number for invoice in invoices(storage, customer=customer)} if adjusted else {}
    return _Posted(charges, late, adjusted, invoiced, ratings + corrections, closing, rounding)


def _usage_lines(
    posted: _Posted, customer: str, currency: str, book: Pricebook, catalog: Catalog, language: str
) -> list[ExactLine]:
    """The period's charge records summed per (plan, meter, group, model), named by their display names in
    ``language``; late usage and the adjustments of each closed period apart.

    A charge whose pricing model can say how its period price is made (:meth:`PricingModel.steps`) has one
    line per step (the allowance, each tier reached, the volume tier that applied, a flat fee) when the steps
    add up to what was charged exactly; other charges have one line per unit price, as recorded."""
    summed: dict[tuple[str, str, tuple[str, ...], str, str, str, str], list[StoredCharge]] = {}
    for stored in posted.charges:
        charge = stored.charge
        if charge.asset != currency:
            raise InvoiceError(
                InvoiceRefusal.CURRENCY_MISMATCH,
                f"{customer!r} was charged in {charge.asset}, invoices are in {currency}",
            )
        adjusts = posted.adjusted.get(stored.event_id, "")
        late_for = "" if adjusts else posted.late.get(stored.event_id, "")
        key = (charge.plan, charge.meter, charge.group, charge.model, charge.unit, late_for, adjusts)
        summed.setdefault(key, []).append(stored)
    lines: list[ExactLine] = []
    for (plan, meter, group, model, unit, late_for, adjusts), charges in summed.items():
        pricing = _pricing_model(charges, catalog, book, plan, meter, model)
        spec = book.meters.get(meter)
        name = display_name(
            pricing.display if pricing is not None and pricing.display else (spec.display if spec else None),
            meter,
            language,
        )
        description = f"{name} ({', '.join(group)})" if group else name
        invoice = posted.invoiced.get(adjusts)
        if adjusts:
            description += f", adjustment of {adjusts}" + (f" ({invoice})" if invoice else "")
        elif late_for:
            description += f", late usage of {late_for}"
        account = revenue_account(plan, meter)
        per = pricing.per if pricing is not None and pricing.per not in (None, 1) else None
        category = (pricing.tax_category if pricing is not None else None) or (spec.tax_category if spec else None)
        steps = None if adjusts or late_for else _steps_of(charges, pricing)
        if steps is not None:
            plain = not any(step.kind in ("included", "tier", "volume", "flat_fee") for step in steps)
            for step in steps:
                shown = None if plain else LineStep(kind=step.kind, tier=step.tier, lower=step.lower, upper=step.upper)
                quantity, step_unit = (step.quantity, unit) if step.quantity is not None else (None, None)
                lines.append(
                    ExactLine(
                        description,
                        account,
                        quantity,
                        step_unit,
                        step.unit_price,
                        step.amount,
                        step=shown,
                        per=per,
                        tax_category=category,
                    )
                )
            continue
        # One line, unless pricebook versions of different prices priced the period: then one per version, saying
        # so. Its unit price is the one every charge of it had, else none (tier crossings, packages, caps).
        versions = {stored.charge.version for stored in charges}
        by_version: dict[str | None, list[StoredCharge]] = {}
        for stored in charges:
            by_version.setdefault(stored.charge.version if len(versions) > 1 else None, []).append(stored)
        if len({s.charge.unit_price for s in charges}) == 1 or adjusts:
            by_version = {None: charges}  # one price (or an adjustment's difference): nothing to tell apart
        for version, part in by_version.items():
            quantity = sum((stored.charge.quantity for stored in part), ZERO)
            amount = sum((stored.charge.amount for stored in part), ZERO)
            if not (quantity or amount):
                continue
            prices = {stored.charge.unit_price for stored in part}
            # An adjustment reverses the charges as billed and adds them as re-priced: one line of the difference.
            price = next(iter(prices)) if len(prices) == 1 and not adjusts else None
            shown_quantity: tuple[Decimal | None, str | None] = (quantity, unit)
            if adjusts and not quantity:  # a price difference: the same usage, no quantity to show
                shown_quantity = (None, None)
            text = description + (f", prices of {version.rpartition('@')[2]}" if version else "")
            lines.append(
                ExactLine(
                    text,
                    account,
                    *shown_quantity,
                    price,
                    amount,
                    adjusts or None,
                    invoice,
                    per=per,
                    tax_category=category,
                )
            )
    return lines


def _pricing_model(
    charges: list[StoredCharge], catalog: Catalog, book: Pricebook, plan: str, meter: str, model: str
) -> PricingModel | None:
    """The pricing model that priced ``charges`` (the first one's, by its key and version), or the charge of
    the plan in ``book`` on that meter with that model; None when neither is found."""
    found = pricing_of(charges[0].charge, catalog)
    if found is not None:
        return found
    holder = book.plans.get(plan)
    candidates = [c for c in holder.charges if c.meter == meter and c.model == model] if holder else []
    return candidates[0].for_group(charges[0].charge.group) if len(candidates) == 1 else None


def _steps_of(charges: list[StoredCharge], pricing: PricingModel | None) -> tuple[PriceStep, ...] | None:
    """The steps of a period's charges of one pricing model, when that model's :meth:`~PricingModel.steps` of
    their aggregate add up to what they were charged exactly; None otherwise (several versions or keys, a cap, a
    discount or a rollover, an aggregate not starting at zero, a model that cannot say)."""
    if pricing is None or pricing.tracks_total or pricing.rollover:
        return None
    if len({(s.charge.key, s.charge.version) for s in charges}) != 1:
        return None
    if min(s.charge.before for s in charges) != 0:
        return None
    quantity = sum((s.charge.quantity for s in charges), ZERO)
    amount = sum((s.charge.amount for s in charges), ZERO)
    steps = pricing.steps(quantity)
    if steps is None or sum((step.amount for step in steps), ZERO) != amount:
        return None
    return tuple(step for step in steps if step.amount or step.quantity)


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
            step=line.step,
            per=line.per,
            tax_category=line.tax_category,
        )
        for line, amount in zip(lines, amounts, strict=True)
    ]


def _line_text(line: InvoiceLine, language: str) -> str:
    """``line`` as an invoice shows it, with its tier or allowance (:func:`rating.invoices.lines.line_description`)."""
    from rating.invoices.lines import line_description  # it reads invoice lines: imported when used

    return line_description(line, language)


def tax_account(invoice: Invoice) -> str:
    """Where the tax of ``invoice`` is held until paid to the authority: ``tax:NAME:COUNTRY``.

    The account is named by :func:`rating.accounts.tax_account`; this name stays for one release.
    """
    return _tax_account(invoice.tax.name, invoice.buyer.country)
