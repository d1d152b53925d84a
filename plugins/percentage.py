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
``currency_mismatch``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rating.errors import EventError
from rating.events import UsageEvent
from rating.hookspecs import hookimpl
from rating.meters import event_quantity
from rating.money import HUNDRED, ZERO, Percent, format_decimal
from rating.pricing import EventPrice, PerEventModel, Price, PricingModel
from rating.refusals import Refusal


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

    def price_event(self, event: UsageEvent, asset: str) -> EventPrice:
        amount = event_quantity(event, self.of)
        currency = event.properties.get(self.currency_property)
        if currency is not None and currency != asset:
            raise EventError(
                Refusal.CURRENCY_MISMATCH, f"{self.of} is in {currency}, the {self.name} charge is in {asset}"
            )
        fee = amount * self.percent / HUNDRED + self.fixed
        text = f"{format_decimal(self.percent)}% of {format_decimal(amount)} {asset}"
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
