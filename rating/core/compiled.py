"""A pricebook version compiled into the lookups the engine's hot path needs.

Built once per version: meters by event type, charges by plan and meter (each
with the state key of its running total), contracts by customer, revenue
account names, and per-customer caches of subscription spans and period clocks.
"""

from __future__ import annotations

import datetime as dt

from rating.accounts import revenue_account
from rating.core.subscriptions import Span, contract_span, plan_at, spans
from rating.periods import PeriodClock, period_bounds, zone
from rating.pricebook.meters import Meter
from rating.pricebook.model import Contract, Plan, Pricebook
from rating.pricebook.pricing import PerEventModel, PricingModel
from rating.statekeys import total_state

#: Charges by meter name, each with the state key of its running total.
Charges = dict[str, list[tuple[str, PricingModel]]]


def running_total_key(holder: str, charge: PricingModel, book: Pricebook) -> str:
    """The period-state name of a charge's running total (for caps and discounts), by its stable identity.

    ``holder`` is the plan or contract the charge belongs to. Reordering charges in a later version keeps
    every running total where it was.
    """
    return total_state(holder, charge.identity(book.currency))


def _billed_asset(charges: tuple[PricingModel, ...], currency: str) -> str:
    assets = {charge.asset or currency for charge in charges}
    return assets.pop() if len(assets) == 1 else currency


class CompiledVersion:
    """One pricebook version, compiled into the lookups the hot path needs."""

    def __init__(self, book: Pricebook) -> None:
        self.book = book
        self._clocks: dict[tuple[str, str, dt.date | None], PeriodClock] = {}
        #: Subscription spans of the customers the pricebook names (so at most as many as it names); every other
        #: customer is on the default plan for all time and shares one history.
        self._spans: dict[str, list[Span]] = {}
        self._unnamed = spans(book, "")
        self.meters_by_type: dict[str, list[tuple[str, Meter]]] = {}
        for name, meter in book.meters.items():
            self.meters_by_type.setdefault(meter.event, []).append((name, meter))
        self.filtered = any(meter.where for meter in book.meters.values())
        self.revenue = {(p, m): revenue_account(p, m) for p in book.plans for m in book.meters}
        # Each charge with the state key of its running total (kept for charges with discounts or a cap).
        self.charges_by_plan: dict[str, Charges] = {}
        for plan_name, plan in book.plans.items():
            by_meter = self.charges_by_plan.setdefault(plan_name, {})
            for charge in plan.charges:
                by_meter.setdefault(charge.meter, []).append((running_total_key(plan_name, charge, book), charge))
        self.label = f"{book.pricebook}@{book.version.isoformat()}"
        #: Whether a charge prices each event by what came before it in its period (free transactions, say),
        #: or a processor takes a fixed fee per positive charge (which charges are positive depends on order):
        #: then the order of a period's events decides its bill, not only a change of terms.
        holders: tuple[Plan | Contract, ...] = (*book.plans.values(), *book.contracts.values())
        self.order_sensitive = any(
            isinstance(charge, PerEventModel) and charge.kept for holder in holders for charge in holder.charges
        ) or bool(book.revenue_split and book.revenue_split.processor.fixed)  # a fixed fee per positive charge
        #: The asset each plan bills in, which spend caps and alerts count: its charges' one asset
        #: (CREDITS for a credits plan), or the pricebook currency when they mix assets.
        self.billed_asset = {name: _billed_asset(plan.charges, book.currency) for name, plan in book.plans.items()}
        self.costs_by_meter: dict[str, list[PricingModel]] = {}
        for cost in book.costs:
            self.costs_by_meter.setdefault(cost.meter, []).append(cost)
        self.contracts: dict[str, list[tuple[Span, str]]] = {}
        for name, contract in book.contracts.items():
            self.contracts.setdefault(contract.customer, []).append((contract_span(book, name), name))
        self._contract_charges: dict[tuple[str, str], Charges] = {}

    def charges_for(self, customer: str, plan: str, timestamp: dt.datetime) -> tuple[Charges, Contract | None, str]:
        """The charges by meter that price ``customer`` at ``timestamp``, with the contract in force, if any."""
        for span, name in self.contracts.get(customer, ()):
            if span.start <= timestamp < span.end:
                contract = self.book.contracts[name]
                merged = self._contract_charges.get((name, plan))
                if merged is None:
                    own: Charges = {}
                    for charge in contract.charges:
                        own.setdefault(charge.meter, []).append((running_total_key(name, charge, self.book), charge))
                    merged = self.charges_by_plan[plan] | own
                    self._contract_charges[name, plan] = merged
                return merged, contract, name
        return self.charges_by_plan[plan], None, ""

    def plan_at(self, customer: str, timestamp: dt.datetime) -> str:
        """The customer's plan at ``timestamp`` (subscription spans are cached per customer the pricebook names)."""
        history = self._spans.get(customer)
        if history is None:
            if customer in self.book.customers:
                history = self._spans[customer] = spans(self.book, customer)
            else:
                history = self._unnamed
        for span in history:
            if span.start <= timestamp < span.end:
                return span.plan
        return plan_at(self.book, customer, timestamp)  # raises with the reason

    def period(self, plan: str, customer: str, timestamp: dt.datetime) -> str:
        """The label of the customer's billing period at ``timestamp``."""
        timezone, anchor = self.book.timezone_of(customer), self.book.anchor_of(customer)
        clock = self._clocks.get((plan, timezone, anchor))
        if clock is None:
            kind = self.book.plans[plan].period
            clock = self._clocks[plan, timezone, anchor] = PeriodClock(kind, zone(timezone), anchor)
        return clock.label(timestamp)

    def period_bounds(self, plan: str, customer: str, timestamp: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
        """Label, start (inclusive) and end (exclusive, UTC) of the customer's billing period at ``timestamp``."""
        book = self.book
        kind = book.plans[plan].period
        return period_bounds(timestamp, kind, zone(book.timezone_of(customer)), book.anchor_of(customer))

    def previous_period(self, plan: str, customer: str, timestamp: dt.datetime) -> str:
        """The label of the customer's billing period before the one of ``timestamp``."""
        self.period(plan, customer, timestamp)
        key = (plan, self.book.timezone_of(customer), self.book.anchor_of(customer))
        return self._clocks[key].previous(timestamp)
