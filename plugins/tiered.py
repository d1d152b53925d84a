"""``tiered``: graduated or volume tiers over the period's aggregate.

- ``graduated``: each unit is priced by the tier it falls in (the first 1M tokens
  at one price, the rest at another).
- ``volume``: every unit of the period is priced by the tier the period total
  falls in. When the total crosses a break, the event that crosses it gets a
  negative charge (a credit) for the units already billed dearer: that is what
  makes per-event charges add up to the period price.

A tier covers quantities up to and including ``up_to``; the last tier has no
``up_to``. ``flat_fee`` is added once when the period's quantity enters the tier
(graduated) or lies in it (volume).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rating.hookspecs import hookimpl
from rating.money import ZERO, format_decimal
from rating.pricebook.pricing import PositiveQuantity, Price, PriceStep, PricingModel


class Tier(BaseModel):
    """One tier: quantities up to ``up_to`` (inclusive; none on the last tier) at ``unit_price``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    up_to: PositiveQuantity | None = Field(None, description="Upper bound, inclusive; omit on the last tier.")
    unit_price: Price = Field(description="Price per unit in this tier.")
    flat_fee: Price = Field(ZERO, description="Charged once when the period reaches this tier.")


class Tiered(PricingModel):
    """Graduated or volume tiers over the meter's period aggregate."""

    name = "tiered"

    model: Literal["tiered"]
    mode: Literal["graduated", "volume"] = Field(description="graduated: per-tier prices; volume: one price for all.")
    tiers: Annotated[tuple[Tier, ...], Field(min_length=1)]

    @field_validator("tiers")
    @classmethod
    def _ordered(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        previous: Decimal | None = None
        for number, tier in enumerate(tiers, start=1):
            last = number == len(tiers)
            if tier.up_to is None and not last:
                raise ValueError(f"tier {number} has no up_to, but only the last tier may be open-ended")
            if tier.up_to is not None and last:
                raise ValueError(f"the last tier (tier {number}) must not have up_to: it takes all the rest")
            if tier.up_to is not None and previous is not None and tier.up_to <= previous:
                raise ValueError(
                    f"tier boundaries out of order: tier {number} up_to {tier.up_to} "
                    f"is not above tier {number - 1} up_to {previous}"
                )
            previous = tier.up_to if tier.up_to is not None else previous
        return tiers

    def _bounds(self) -> list[tuple[Decimal, Decimal | None, Tier]]:
        lower = ZERO
        result = []
        for tier in self.tiers:
            result.append((lower, tier.up_to, tier))
            lower = tier.up_to if tier.up_to is not None else lower
        return result

    def tier_index(self, quantity: Decimal) -> int:
        """Index of the tier ``quantity`` falls in (bounds are inclusive above)."""
        for index, tier in enumerate(self.tiers):
            if tier.up_to is None or quantity <= tier.up_to:
                return index
        raise AssertionError("the last tier is open-ended")

    def period_price(self, quantity: Decimal) -> Decimal:
        if quantity <= 0:
            return ZERO
        if self.mode == "volume":
            tier = self.tiers[self.tier_index(quantity)]
            return quantity * tier.unit_price + tier.flat_fee
        total = ZERO
        for lower, upper, tier in self._bounds():
            if quantity <= lower:
                break
            top = quantity if upper is None or quantity < upper else upper
            total += (top - lower) * tier.unit_price + tier.flat_fee
        return total

    def billable_steps(self, quantity: Decimal) -> tuple[PriceStep, ...]:
        """Graduated: one step per tier reached (its units at its price), volume: one step of every unit at the
        price of the tier the total falls in; each tier's flat fee a step of its own. They add up to
        :meth:`period_price` exactly."""
        if quantity <= 0:
            return ()
        steps: list[PriceStep] = []
        if self.mode == "volume":
            index = self.tier_index(quantity)
            lower, upper, tier = self._bounds()[index]
            steps.append(
                PriceStep("volume", quantity, tier.unit_price, quantity * tier.unit_price, index + 1, lower, upper)
            )
            if tier.flat_fee:
                steps.append(PriceStep("flat_fee", None, None, tier.flat_fee, index + 1, lower, upper))
            return tuple(steps)
        for number, (lower, upper, tier) in enumerate(self._bounds(), start=1):
            if quantity <= lower:
                break
            top = quantity if upper is None or quantity < upper else upper
            units = top - lower
            steps.append(PriceStep("tier", units, tier.unit_price, units * tier.unit_price, number, lower, upper))
            if tier.flat_fee:
                steps.append(PriceStep("flat_fee", None, None, tier.flat_fee, number, lower, upper))
        return tuple(steps)

    def price_per_unit(self, before: Decimal, after: Decimal) -> Decimal | None:
        if self.mode == "volume" or after <= before:
            return None
        # The first unit after ``before`` and the last unit both in one tier, no flat fee entered.
        first = next(i for i, t in enumerate(self.tiers) if t.up_to is None or before < t.up_to)
        tier = self.tiers[first]
        entering = before == self._bounds()[first][0] and tier.flat_fee
        if self.tier_index(after) == first and not entering:
            return tier.unit_price
        return None

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        if self.mode == "volume":
            tier_number = self.tier_index(after) + 1
            tier = self.tiers[tier_number - 1]
            return (
                f"{format_decimal(after)} {unit} this period at volume tier {tier_number} "
                f"({format_decimal(tier.unit_price)} {asset} per unit) = {format_decimal(self.period_price(after))} "
                f"{asset}, less {format_decimal(self.period_price(before))} {asset} already charged "
                f"= {format_decimal(amount)} {asset}"
            )
        pieces = []
        for number, (lower, upper, tier) in enumerate(self._bounds(), start=1):
            low = max(lower, before)
            high = after if upper is None else min(upper, after)
            if high > low:
                pieces.append(
                    f"{format_decimal(high - low)} {unit} x {format_decimal(tier.unit_price)} {asset} (tier {number})"
                )
            if tier.flat_fee and before <= lower < after:
                pieces.append(f"flat fee {format_decimal(tier.flat_fee)} {asset} (tier {number})")
        return f"{' + '.join(pieces) or 'nothing'} = {format_decimal(amount)} {asset}"


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [Tiered]
