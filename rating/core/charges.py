"""What rating an event produces: usage lines (meter readings), charges, and the record to store.

Immutable named tuples: several are built per event on the hot path, and
tuples are several times cheaper to build than frozen dataclasses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from rating.events import UsageEvent
from rating.ledger import Transaction
from rating.money import format_decimal
from rating.pricebook.pricing import PricingModel
from rating.records import ChargeRecord, CorrectionRecord, EventRecord, Usage
from rating.statekeys import BYOK_SUFFIX, StateKey, total_state  # noqa: F401 (re-exported: they were defined here)

if TYPE_CHECKING:
    from rating.pricebook.catalog import Catalog
    from rating.pricebook.model import Contract, Plan

_new_record = tuple.__new__

#: What re-rating one event changes (the record storage keeps): the name it had when it was defined here.
Correction = CorrectionRecord


class Charge(NamedTuple):
    """One priced line: a meter's step from ``before`` to ``after`` under one pricing model.

    ``explanation`` and ``unit_price`` are derived on demand from the pricing
    model; a charge read back from storage carries the text stored with it.
    """

    plan: str
    meter: str
    group: tuple[str, ...]
    period: str
    model: str
    before: Decimal
    after: Decimal
    amount: Decimal
    asset: str
    unit: str
    pricing: PricingModel | None = None
    uncapped: Decimal | None = None
    stored_explanation: str | None = None
    stored_unit_price: Decimal | None = None
    #: The running-total key of the charge and the label of the pricebook version that priced it: what
    #: renders its explanation again from the catalog (:func:`explanation_of`).
    key: str | None = None
    version: str | None = None

    @property
    def quantity(self) -> Decimal:
        """How much this event moved the meter."""
        return self.after - self.before

    def described(self) -> Charge:
        """This charge with its explanation and unit price computed now, and no reference to the pricing model.

        The pricer returns described charges, so storage writes plain text and never calls plugin code.
        """
        if self.pricing is None:
            return self
        return self._replace(stored_explanation=self.explanation, stored_unit_price=self.unit_price, pricing=None)

    def record(self, text: bool = True) -> ChargeRecord:
        """The charge as storage keeps it: with its unit price and explanation text when ``text`` (or when the
        catalog could not render them again: a charge priced without its identity), else as data only."""
        # Unpacked at once and built with tuple.__new__ (no argument parsing): one record per charge on the hot path.
        (
            plan,
            meter,
            group,
            period,
            model,
            before,
            after,
            amount,
            asset,
            unit,
            pricing,
            uncapped,
            text_,
            price,
            key,
            version,
        ) = self
        if pricing is not None:
            if text or key is None:
                price, text_ = pricing.unit_price_of(before, after), self.explanation
            else:  # data only: both are rendered from the catalog when someone reads them (:func:`rendered`)
                price = text_ = None
        return _new_record(
            ChargeRecord,
            (
                plan,
                meter,
                group,
                period,
                model,
                before,
                after,
                amount,
                asset,
                unit,
                price,
                text_,
                uncapped,
                version,
                key,
            ),
        )

    @property
    def unit_price(self) -> Decimal | None:
        """The price per unit when a single one applies, else None (tier crossings, packages)."""
        if self.pricing is None:
            return self.stored_unit_price
        return self.pricing.unit_price_of(self.before, self.after)

    @property
    def explanation(self) -> str:
        """How the amount follows from quantities and prices, in one line."""
        if self.pricing is None:
            return self.stored_explanation or ""
        if self.uncapped is None or self.uncapped == self.amount:
            return self.pricing.describe(self.before, self.after, self.amount, self.unit, self.asset)
        text = self.pricing.describe(self.before, self.after, self.uncapped, self.unit, self.asset)
        terms = [f"{format_decimal(d.percent)}% off above {format_decimal(d.above)}" for d in self.pricing.discounts]
        if self.pricing.cap is not None:
            terms.append(f"the {format_decimal(self.pricing.cap)} {self.asset} period cap")
        return f"{text}; with {' and '.join(terms)}: {format_decimal(self.amount)} {self.asset}"


class RatedEvent(NamedTuple):
    """An event with its plan and billing period, its usage, its charges and the ledger transaction that posts them."""

    event: UsageEvent
    plan: str
    period: str
    usage: tuple[Usage, ...]
    charges: tuple[Charge, ...]
    transaction: Transaction

    def total(self) -> dict[str, Decimal]:
        """Sum of the charges per asset."""
        totals: dict[str, Decimal] = {}
        for charge in self.charges:
            totals[charge.asset] = totals.get(charge.asset, Decimal(0)) + charge.amount
        return totals


def event_record(rating: RatedEvent, text: bool = True) -> EventRecord:
    """What storage keeps of ``rating``: its charges as records (their explanation text only with ``text``)."""
    event, _, period, usage, charges, transaction = rating
    if text:
        records = tuple([charge.record(True) for charge in charges])
    else:
        records = tuple([_data_only(charge) for charge in charges])
    return _new_record(EventRecord, (event, period, usage, records, transaction))


def _data_only(charge: Charge) -> ChargeRecord:
    """``charge.record(False)``, by position: the memory path's one record per charge."""
    if charge[10] is None:  # described already: its text and unit price are kept
        tail = (charge[13], charge[12], charge[11], charge[15], charge[14])
    elif charge[14] is None:  # no identity to render it again by
        return charge.record(True)
    else:
        tail = (None, None, charge[11], charge[15], charge[14])
    return _new_record(ChargeRecord, charge[:10] + tail)


def explanation_of(record: ChargeRecord, catalog: Catalog | None = None) -> str:
    """How ``record``'s amount follows from quantities and prices, in one line: the text stored with it, or
    rendered by its pricing model in the pricebook version of ``catalog`` that priced it ("" if none can)."""
    return rendered(record, catalog).explanation or ""


def rendered(record: ChargeRecord, catalog: Catalog | None = None) -> ChargeRecord:
    """``record`` with its explanation and unit price: as stored, or, for a record kept as data only (no
    text), rendered now by its pricing model in the version of ``catalog`` that priced it (as it is without
    one, or when the catalog no longer holds that version)."""
    if record.explanation is not None or catalog is None:
        return record
    pricing = _pricing_of(record, catalog)
    if pricing is None:
        return record
    charge = Charge(*record[:10], pricing=pricing, uncapped=record.uncapped)
    return record._replace(unit_price=charge.unit_price, explanation=charge.explanation)


def pricing_of(record: ChargeRecord, catalog: Catalog) -> PricingModel | None:
    """The pricing model that priced ``record`` (for its group): its version's plan or contract charge with its
    key; None when the catalog no longer holds that version or the record has no key."""
    return _pricing_of(record, catalog)


def _pricing_of(record: ChargeRecord, catalog: Catalog) -> PricingModel | None:
    """The pricing model that priced ``record``: its version's plan or contract charge with its key."""
    for book in catalog.versions:
        if f"{book.pricebook}@{book.version.isoformat()}" != record.version:
            continue
        holders: list[tuple[str, Plan | Contract]] = list(book.contracts.items())
        if record.plan in book.plans:
            holders.insert(0, (record.plan, book.plans[record.plan]))
        for name, holder in holders:
            for charge in holder.charges:
                if charge.meter == record.meter and total_state(name, charge.identity(book.currency)) == record.key:
                    return charge.for_group(record.group)
    return None
