"""``per_unit``: a fixed price for every unit of the meter (tokens, compute units, GB)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from rating.hookspecs import hookimpl
from rating.pricebook.pricing import Price, PricingModel, explain_linear


class PerUnit(PricingModel):
    """``{meter: input_tokens, model: per_unit, unit_price: "0.0000025"}``: P(q) = q x unit_price."""

    name = "per_unit"

    model: Literal["per_unit"]
    unit_price: Price = Field(description="Price of one unit of the meter.")

    def period_price(self, quantity: Decimal) -> Decimal:
        return quantity * self.unit_price

    def price_per_unit(self, before: Decimal, after: Decimal) -> Decimal | None:
        return self.unit_price

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        return explain_linear(after - before, unit, self.unit_price, amount, asset)


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [PerUnit]
