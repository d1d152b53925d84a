"""What rating an event produces: usage lines (meter readings), charges, and the record to store.

Immutable named tuples: several are built per event on the hot path, and
tuples are several times cheaper to build than frozen dataclasses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from rating.events import UsageEvent
from rating.ledger import Transaction
from rating.money import format_decimal
from rating.pricing import PricingModel
from rating.statekeys import BYOK_SUFFIX, StateKey  # noqa: F401 (re-exported: they were defined here)


class Usage(NamedTuple):
    """One meter's reading of one event and the period aggregate before and after it."""

    meter: str
    group: tuple[str, ...]
    period: str
    reading: Decimal | str
    before: Decimal
    after: Decimal

    def key(self, customer: str) -> StateKey:
        """The period state this reading advanced."""
        # A plain tuple of StateKey's shape, equal and hashing alike: constructing the NamedTuple costs
        # seven times as much, once per meter reading on the hot path.
        return (customer, self.meter, self.group, self.period)  # type: ignore[return-value]


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


class Correction(NamedTuple):
    """What re-rating one event changes: the charge records it adds and the transaction that posts the difference.

    ``charges`` reverse the event's charges as they stood and add the new ones;
    ``transaction`` (``rerate:EVENT:N``) moves the ledger by the same difference.
    Nothing stored before is edited.
    """

    event_id: str
    customer: str
    charges: tuple[Charge, ...]
    transaction: Transaction
