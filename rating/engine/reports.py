"""What the engine reports: a batch's counts and totals, and the records it did not post."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from rating.core.charges import RatedEvent
from rating.money import ZERO
from rating.refusals import Refusal


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that was not posted, where it came from, and why."""

    location: str
    code: Refusal
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.code}: {self.reason}"


@dataclass
class BatchReport:
    """What a batch did: how many events were posted or already there, what was rejected, totals."""

    posted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    totals: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    #: What plugins are told once the transaction around a strict batch commits (None: tell them at once).
    deferred: list[tuple[list[RatedEvent], dict[tuple[str, str], tuple[Decimal, Decimal]]]] | None = field(
        default=None, repr=False, compare=False
    )

    def _add(self, rating: RatedEvent) -> None:
        """Count ``rating`` in; call it in the money context (the totals may pass 28 digits)."""
        customer = rating.event.customer
        self.posted += 1
        self.events[customer] = self.events.get(customer, 0) + 1
        for charge in rating.charges:
            key = (customer, charge.asset)
            self.totals[key] = self.totals.get(key, ZERO) + charge.amount
