"""``outcome``: a price per successful outcome, by outcome type; nothing for anything else.

The meter decides what counts as a success; the charge prices each outcome type::

    meters:
      resolutions: {event: outcome, count: true, where: {status: [success]}, group_by: [outcome_type]}
    plans:
      support:
        charges:
          - meter: resolutions
            model: outcome
            prices: {ticket.resolved: "0.99", lead.qualified: "2.50"}
            cap: "500"            # optional: at most 500 USD of outcomes a period

An outcome type without a price costs ``otherwise`` (0 by default).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, PrivateAttr

from rating.hookspecs import hookimpl
from rating.money import ZERO
from rating.pricebook.meters import Meter
from rating.pricebook.pricing import Price, PricingModel, explain_linear


class Outcome(PricingModel):
    """Per outcome: ``prices[type] x count`` for the outcome type the meter groups by."""

    name = "outcome"

    model: Literal["outcome"]
    prices: dict[str, Price] = Field(min_length=1, description="Price of one successful outcome, by outcome type.")
    otherwise: Price = Field(ZERO, description="Price of an outcome type not listed in prices.")

    _price: Decimal | None = PrivateAttr(None)
    _by_type: dict[str, Outcome] = PrivateAttr(default_factory=dict)

    def meter_problem(self, meter: Meter) -> str | None:
        if meter.aggregation != "count" or len(meter.group_by) != 1:
            return "outcome prices a count meter grouped by exactly one property, the outcome type"
        return None

    def for_group(self, group: tuple[str, ...]) -> PricingModel:
        outcome_type = group[0] if group else ""
        priced = self._by_type.get(outcome_type)
        if priced is None:
            chosen = super().for_group(group)  # a by_group override of this outcome type comes first
            assert isinstance(chosen, Outcome)
            priced = chosen.model_copy()
            priced._price = chosen.prices.get(outcome_type, chosen.otherwise)
            self._by_type[outcome_type] = priced
        return priced

    def _unit_price(self) -> Decimal:
        if self._price is None:
            raise RuntimeError("an outcome charge is priced per outcome type: call for_group first")
        return self._price

    def period_price(self, quantity: Decimal) -> Decimal:
        return quantity * self._unit_price()

    def price_per_unit(self, before: Decimal, after: Decimal) -> Decimal | None:
        return self._unit_price()

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        return explain_linear(after - before, unit, self._unit_price(), amount, asset)


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [Outcome]
