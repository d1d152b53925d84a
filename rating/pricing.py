"""The base of every pricing model: parameters (pydantic) plus a period price function.

A pricing model defines ``period_price(q)``: the total charge for a period in
which the meter's aggregate is ``q``. The charge for one event is
``period_price(after) - period_price(before)``, so the charges of a period always
add up exactly to the price of its total, in any order and any split.

Plugins subclass :class:`PricingModel`, give it a ``name`` and a
``model: Literal["name"]`` field, and return the class from the
``rating_pricing_models`` hook.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from rating.meters import Meter
from rating.money import format_decimal, to_decimal

#: A price or quantity in a pricebook: Decimal from its text; floats and bools are errors.
Price = Annotated[Decimal, BeforeValidator(to_decimal), Field(ge=0)]
PositiveQuantity = Annotated[Decimal, BeforeValidator(to_decimal), Field(gt=0)]


class PricingModel(BaseModel):
    """Parameters of one charge in a plan, and how it prices a period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The name pricebooks use in ``model:``; unique across all plugins.
    name: ClassVar[str] = ""
    #: True when ``period_price`` is ``q * unit_price``; the engine then skips the subtraction.
    linear: ClassVar[bool] = False

    meter: str = Field(description="Name of the meter this charge prices.")
    model: str = Field(description="Name of the pricing model.")
    description: str | None = Field(None, description="Label shown on statements.")

    def period_price(self, quantity: Decimal) -> Decimal:
        """Total charge for a period whose meter aggregate is ``quantity``."""
        raise NotImplementedError

    def charge(self, before: Decimal, after: Decimal) -> Decimal:
        """Charge for moving the period aggregate from ``before`` to ``after``."""
        return self.period_price(after) - self.period_price(before)

    def price_per_unit(self, before: Decimal, after: Decimal) -> Decimal | None:
        """The single price per unit of this step, or None when no single price applies."""
        return None

    def meter_problem(self, meter: Meter) -> str | None:
        """Why ``meter`` cannot be priced by this model, or None when it can."""
        return None

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        """One line a customer can check by hand: how ``amount`` follows from the quantities."""
        return (
            f"period {unit} {format_decimal(before)} -> {format_decimal(after)}: "
            f"{format_decimal(self.period_price(after))} - {format_decimal(self.period_price(before))} "
            f"= {format_decimal(amount)} {asset}"
        )


def explain_linear(quantity: Decimal, unit: str, price: Decimal, amount: Decimal, asset: str) -> str:
    """``1,200 input_tokens x 0.0000025 USD = 0.0030000 USD``."""
    return f"{format_decimal(quantity)} {unit} x {format_decimal(price)} {asset} = {format_decimal(amount)} {asset}"
