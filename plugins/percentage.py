"""``percentage``: a share of each transaction's amount plus a fixed part, within a minimum and a maximum.

Payment-style fees and marketplace take rates::

    meters:
      payments: {event: payment.captured, count: true}
    plans:
      merchant:
        charges:
          - {meter: payments, model: percentage, of: amount, percent: "2.9", fixed: "0.30", minimum: "0.50"}

The fee of one event is ``amount x percent / 100 + fixed``, raised to
``minimum`` and lowered to ``maximum`` when given, exactly (no rounding: period
close rounds the period's total once). When the event says which currency its
amount is in (the ``currency`` property, or the one ``currency_property``
names), it must be the charge's asset, else the event is refused with
``currency_mismatch``. An event whose amount is zero pays nothing.

A free allowance per customer period, in time order (period state, so the
same bill in any arrival order):

- ``free_events: N``: the first N transactions of the period pay nothing;
- ``free_amount: A``: the first A of the period's summed amount is free; the
  transaction that crosses it pays the percentage on its part above A, plus
  its fixed part (and within its minimum and maximum);
- both: a transaction is free while the count and the amount both cover it;
  one inside the count that crosses the amount pays on its part above it;
  once the count is used up, what is left of the amount is not used.

A transaction of amount zero is no transaction: it pays nothing and uses
none of the free ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from rating.errors import EventError
from rating.events import UsageEvent
from rating.hookspecs import hookimpl
from rating.money import HUNDRED, ZERO, Percent, format_decimal
from rating.pricebook.meters import event_quantity
from rating.pricebook.pricing import EventPrice, PerEventModel, Price, PricingModel
from rating.refusals import Refusal


def _whole(value: object) -> object:
    """A count written as a whole number (YAML numbers arrive as Decimal): 3, never 2.5 or "3"."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, got {value!r}")
    return value


#: A number of transactions: whole and not negative.
FreeCount = Annotated[int, BeforeValidator(_whole), Field(ge=0)]


class Percentage(PerEventModel):
    """A percentage of an amount the event carries, plus a fixed part, per transaction, with a minimum and maximum."""

    name = "percentage"

    model: Literal["percentage"]
    of: str = Field(description="The event property holding the transaction's amount.")
    percent: Percent = Field(description="The share of the amount, in percent (2.9 for 2.9%).")
    fixed: Price = Field(ZERO, description="Added to every transaction's fee.")
    minimum: Price | None = Field(None, description="The least fee of one transaction.")
    maximum: Price | None = Field(None, description="The most fee of one transaction.")
    currency_property: str = Field("currency", description="The event property naming the amount's currency.")
    free_events: FreeCount | None = Field(
        None, description="The first this many transactions of the customer's period pay nothing."
    )
    free_amount: Price | None = Field(
        None, description="The first this much of the period's summed amount is free; the rest pays."
    )

    @property
    def kept(self) -> tuple[str, ...]:
        """With a free allowance: the transactions and the amount of the period so far."""
        return ("transactions", "amount") if self.free_events is not None or self.free_amount is not None else ()

    def price_event(self, event: UsageEvent, asset: str) -> EventPrice:
        amount = self._amount(event, asset)
        if not amount:
            return EventPrice(ZERO, f"{self.of} is 0 {asset}: nothing to pay")
        return self._fee(amount, amount, asset, "")

    def price_in_period(
        self, event: UsageEvent, asset: str, used: Mapping[str, Decimal]
    ) -> tuple[EventPrice, dict[str, Decimal]]:
        amount = self._amount(event, asset)
        if not amount:  # no transaction: it uses none of the allowance
            return EventPrice(ZERO, f"{self.of} is 0 {asset}: nothing to pay"), dict(used)
        count, summed = used["transactions"] + 1, used["amount"] + amount
        after = {"transactions": count, "amount": summed}
        if self.free_events is not None and count > self.free_events:
            return self._fee(amount, amount, asset, ""), after  # the free transactions are used up
        counted = "" if self.free_events is None else f"{count} of {self.free_events} free transactions"
        if self.free_amount is None:
            return EventPrice(ZERO, f"free: {counted} used"), after
        above = min(amount, max(ZERO, summed - self.free_amount))
        if not above:
            spent = f"{format_decimal(summed)} of the free {format_decimal(self.free_amount)} {asset}"
            return EventPrice(ZERO, f"free: {', '.join(filter(None, (counted, spent)))} used"), after
        free = f" above the free {format_decimal(self.free_amount)} {asset}"
        return self._fee(above, amount, asset, free + (f" ({counted})" if counted else "")), after

    def _amount(self, event: UsageEvent, asset: str) -> Decimal:
        amount = event_quantity(event, self.of)
        currency = event.properties.get(self.currency_property)
        if currency is not None and currency != asset:
            raise EventError(
                Refusal.CURRENCY_MISMATCH, f"{self.of} is in {currency}, the {self.name} charge is in {asset}"
            )
        return amount

    def _fee(self, paying: Decimal, amount: Decimal, asset: str, free: str) -> EventPrice:
        """The fee on ``paying`` of the transaction's ``amount`` (all of it, or its part above a free amount)."""
        fee = paying * self.percent / HUNDRED + self.fixed
        text = f"{format_decimal(self.percent)}% of {format_decimal(paying)} {asset}"
        if paying != amount:
            text += f" of {format_decimal(amount)}{free}"
        if self.fixed:
            text += f" + {format_decimal(self.fixed)} {asset}"
        if self.minimum is not None and fee < self.minimum:
            return EventPrice(self.minimum, f"{text} is under the minimum: {format_decimal(self.minimum)} {asset}")
        if self.maximum is not None and fee > self.maximum:
            return EventPrice(self.maximum, f"{text} is over the maximum: {format_decimal(self.maximum)} {asset}")
        return EventPrice(fee, f"{text} = {format_decimal(fee)} {asset}")


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [Percentage]
