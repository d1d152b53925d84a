"""``per_call``: a flat price per counted event (API call, agent execution, request)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from rating.hookspecs import hookimpl
from rating.pricebook.meters import Meter
from rating.pricebook.pricing import Price, PricingModel, explain_linear


class PerCall(PricingModel):
    """``{meter: requests, model: per_call, price: "0.0005"}`` on a ``count`` meter: P(n) = n x price.

    Unlike ``per_unit`` it insists on a count meter, so a price meant per request
    cannot silently be applied per token.
    """

    name = "per_call"

    model: Literal["per_call"]
    price: Price = Field(description="Price of one call.")

    def period_price(self, quantity: Decimal) -> Decimal:
        return quantity * self.price

    def price_per_unit(self, before: Decimal, after: Decimal) -> Decimal | None:
        return self.price

    def meter_problem(self, meter: Meter) -> str | None:
        if meter.aggregation != "count":
            return f"per_call prices a count meter, but this meter aggregates by {meter.aggregation}; use per_unit"
        return None

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        return explain_linear(after - before, unit, self.price, amount, asset)


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [PerCall]
