"""Revenue split: how each charge of an agent with a creator is shared between creator, processor and platform.

Declared in a pricebook::

    revenue_split:
      basis: gross                 # shares are percentages of the charge itself
      creator: "70"
      platform: "20"               # optional: then creator + platform + processor percent must make 100
      processor: {percent: "10", fixed: "0.30"}

With ``basis: after_processor`` (the default, for pricebooks written before
``basis`` existed) the creator's percentage applies to what remains after the
processor's fee. Either way the platform keeps the remainder.

Shares telescope with the charge: the creator's and the processor's
percentages apply to every charge, negative ones included, so a credit (a
volume tier re-pricing the period) takes back its share, and a period's shares
are exactly the split of its net charges. The processor's ``fixed`` part is a
per-transaction fee on each positive charge, never refunded by a credit; the
processor never takes more than a positive charge.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rating.accounts import PROCESSOR_ACCOUNT, SHARES_ACCOUNT, creator_account
from rating.ledger import Posting
from rating.money import HUNDRED, ZERO, Percent
from rating.pricebook.pricing import Price


class ProcessorFee(BaseModel):
    """What the payment processor takes of each charge: a percentage plus a fixed fee per positive charge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: Percent = Decimal(0)
    fixed: Price = Decimal(0)

    def of(self, amount: Decimal) -> Decimal:
        """The processor's fee on a charge of ``amount``: never more than a positive charge; a credit's is negative."""
        if amount <= 0:
            return amount * self.percent / HUNDRED
        return min(amount, amount * self.percent / HUNDRED + self.fixed)


class RevenueSplit(BaseModel):
    """How each charge of an agent with a creator is shared; the parts always add up to the charge exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    basis: Literal["gross", "after_processor"] = Field(
        "after_processor",
        description="gross: percentages of the charge; after_processor: the creator's of what the processor leaves.",
    )
    creator: Percent = Field(description="Creator's percentage (of the charge, or of what the processor leaves).")
    platform: Percent | None = Field(
        None, description="Platform's percentage of the charge (basis gross only); the remainder when absent."
    )
    processor: ProcessorFee = ProcessorFee()

    @model_validator(mode="after")
    def _adds_up(self) -> RevenueSplit:
        if self.basis == "gross":
            declared = self.creator + self.processor.percent + (self.platform or ZERO)
            if declared > HUNDRED or (self.platform is not None and declared != HUNDRED):
                raise ValueError(
                    f"creator, platform and processor percentages of the gross add up to {declared}, not 100"
                )
        elif self.platform is not None:
            raise ValueError("platform is a percentage of the gross: it needs basis: gross")
        return self

    def shares(self, amount: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        """(processor, creator, platform) shares of a charge of ``amount`` (negative for a credit); exact sum."""
        processor = self.processor.of(amount)
        base = amount if self.basis == "gross" else amount - processor
        creator = base * self.creator / HUNDRED
        return processor, creator, amount - processor - creator

    def postings(self, amount: Decimal, asset: str, creator: str) -> list[Posting]:
        """Postings that pay the processor and ``creator`` their shares of ``amount`` out of revenue."""
        processor, to_creator, _ = self.shares(amount)
        return [
            Posting(SHARES_ACCOUNT, asset, processor + to_creator),
            Posting(PROCESSOR_ACCOUNT, asset, -processor),
            Posting(creator_account(creator), asset, -to_creator),
        ]
