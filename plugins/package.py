"""``package``: a price per started (or completed) package of units, e.g. 5 USD per 1,000 images."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from rating.hookspecs import hookimpl
from rating.money import format_decimal
from rating.pricebook.pricing import PositiveQuantity, Price, PricingModel


class Package(PricingModel):
    """``{model: package, size: 1000, price: "5"}``: P(q) = packages(q) x price.

    ``round: up`` (the default) bills every started package; ``down`` only complete ones.
    """

    name = "package"

    model: Literal["package"]
    size: PositiveQuantity = Field(description="Units in one package.")
    price: Price = Field(description="Price of one package.")
    round: Literal["up", "down"] = Field("up", description="Bill started packages (up) or complete ones (down).")

    def packages(self, quantity: Decimal) -> Decimal:
        """How many packages ``quantity`` units make."""
        whole, rest = divmod(quantity, self.size)
        return whole + 1 if rest and self.round == "up" else whole

    def period_price(self, quantity: Decimal) -> Decimal:
        return self.packages(quantity) * self.price

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        size, price = format_decimal(self.size), format_decimal(self.price)
        return (
            f"{format_decimal(after)} {unit} this period = {format_decimal(self.packages(after))} packages of "
            f"{size} x {price} {asset}; before {format_decimal(self.packages(before))} packages; "
            f"charge {format_decimal(amount)} {asset}"
        )


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [Package]
