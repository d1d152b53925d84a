"""What-if simulation: what would these pricebooks have charged for this usage, customer by customer?

``simulate(events, baseline, candidates)`` prices the same events under each
pricebook with the billing pricer (:mod:`rating.core.pricer`), then closes every
billing period the events touch with the billing close
(:func:`rating.billing.close.period_closing`): subscription fees, minimums,
commitments and rounding count exactly as ``rating close-period`` would post
them. Nothing is written anywhere.

A simulation prices history as if every customer were billed on account:
closed periods are ignored (it is history), and wallet funding and hard spend
caps are not applied. What a hard cap would have refused, computed in event
order, is reported per customer beside the totals (``capped``), never silently
dropped; events the pricer cannot price at all (an unknown customer, a missing
property) are counted per refusal code.

For customers billed on account without hard caps, the totals are those of
``rating rate`` followed by ``rating close-period``, to the last digit (a
property test).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, Inexact, localcontext
from pathlib import Path
from typing import TYPE_CHECKING

from rating.accounts import receivable_account
from rating.billing.close import period_closing
from rating.core.charges import StateKey
from rating.core.pipeline import Mode, Pipeline
from rating.core.pricer import Pricer, advance, total_of
from rating.errors import EventError
from rating.events import UsageEvent, read_events
from rating.ids import TransactionKind
from rating.money import HUNDRED, MONEY_CONTEXT, ZERO
from rating.periods import PeriodClock, zone
from rating.pricebook.catalog import Catalog
from rating.pricebook.meters import PeriodState
from rating.refusals import Refusal
from rating.registry import Registry

if TYPE_CHECKING:
    from rating.simulate.columnar import ParquetHistory

#: Per customer, per asset: an amount.
Amounts = dict[str, dict[str, Decimal]]


def _add(amounts: Amounts, customer: str, asset: str, amount: Decimal) -> None:
    per_asset = amounts.setdefault(customer, {})
    per_asset[asset] = per_asset.get(asset, ZERO) + amount


@dataclass
class Scenario:
    """What one pricebook charges for the events."""

    label: str
    #: The pricebook's currency (its latest version's).
    currency: str = ""
    #: Usage charges plus period close (fees, minimums, commitments, rounding), per customer and asset.
    charged: Amounts = field(default_factory=dict)
    #: The period-close part of ``charged``.
    closing: Amounts = field(default_factory=dict)
    #: Usage charges per (customer, plan, meter, asset), for ``--by``.
    lines: dict[tuple[str, str, str, str], Decimal] = field(default_factory=dict)
    #: Provider costs per customer and asset, where the pricebook has ``costs:``.
    costs: Amounts = field(default_factory=dict)
    #: What hard spend caps would have refused, in event order: per customer, (events, amount).
    capped: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    #: Events the pricer could not price, per refusal code.
    unpriced: dict[Refusal, int] = field(default_factory=dict)
    #: The billing periods the events fall in (by every period kind the pricebook's plans use), all closed.
    periods: set[str] = field(default_factory=set)
    #: Usage charges per billing period, customer and asset: what period close reads.
    by_period: dict[str, Amounts] = field(default_factory=dict)

    def add_charge(self, customer: str, plan: str, meter: str, period: str, asset: str, amount: Decimal) -> None:
        """Count a usage charge in every breakdown."""
        _add(self.charged, customer, asset, amount)
        _add(self.by_period.setdefault(period, {}), customer, asset, amount)
        key = (customer, plan, meter, asset)
        self.lines[key] = self.lines.get(key, ZERO) + amount

    def add_closing(self, customer: str, asset: str, amount: Decimal) -> None:
        """Count what period close bills (a fee, minimum, commitment true-up or rounding)."""
        _add(self.charged, customer, asset, amount)
        _add(self.closing, customer, asset, amount)

    def add_cost(self, customer: str, asset: str, amount: Decimal) -> None:
        """Count a provider cost."""
        _add(self.costs, customer, asset, amount)

    def merge(self, other: Scenario) -> None:
        """Add ``other``'s usage, costs and refusals (the same pricebook over other events) to this one's."""
        for (customer, plan, meter, asset), amount in other.lines.items():
            self.lines[customer, plan, meter, asset] = self.lines.get((customer, plan, meter, asset), ZERO) + amount
        for mine, theirs in ((self.charged, other.charged), (self.costs, other.costs)):
            for customer, per_asset in theirs.items():
                for asset, amount in per_asset.items():
                    _add(mine, customer, asset, amount)
        for period, amounts in other.by_period.items():
            for customer, per_asset in amounts.items():
                for asset, amount in per_asset.items():
                    _add(self.by_period.setdefault(period, {}), customer, asset, amount)
        for customer, (events, amount) in other.capped.items():
            known_events, known_amount = self.capped.get(customer, (0, ZERO))
            self.capped[customer] = (known_events + events, known_amount + amount)
        for code, count in other.unpriced.items():
            self.unpriced[code] = self.unpriced.get(code, 0) + count
        self.periods |= other.periods

    def not_priced(self, code: Refusal) -> None:
        """Count an event the pricer could not price, by its refusal code."""
        self.unpriced[code] = self.unpriced.get(code, 0) + 1

    def revenue(self) -> dict[str, Decimal]:
        """What every customer was charged together, per asset."""
        return _summed(self.charged)

    def cost(self) -> dict[str, Decimal]:
        """What the providers cost together, per asset."""
        return _summed(self.costs)


def _summed(amounts: Amounts) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for per_asset in amounts.values():
        for asset, amount in per_asset.items():
            totals[asset] = totals.get(asset, ZERO) + amount
    return totals


class _PerEvent:
    """Prices events one by one under one catalog, keeping the period state its pricer reads."""

    def __init__(self, catalog: Catalog, registry: Registry, label: str) -> None:
        hook = registry.manager.hook
        self.catalog = catalog
        self.pricer = Pricer(catalog, hook.rating_enrich_event if registry.enriches_events else None, describe=False)
        self.pipeline = Pipeline(self.pricer, Mode.SIMULATE)
        self.scenario = Scenario(label, catalog.latest.currency)
        self.states: dict[StateKey, PeriodState] = {}
        self.spend: dict[StateKey, PeriodState] = {}  # only for hard caps: events a cap refuses do not add to it
        self.clocks: dict[tuple[int, str], PeriodClock] = {}

    def lookup(self, key: StateKey) -> PeriodState:
        """The period state of ``key`` so far (zero at first)."""
        return self.states.get(key) or self.states.setdefault(key, PeriodState(ZERO))

    def spend_lookup(self, key: StateKey) -> PeriodState:
        """What hard spend caps have let through so far under ``key``."""
        return self.spend.get(key) or self.spend.setdefault(key, PeriodState(ZERO))

    def price(self, event: UsageEvent) -> None:
        """Price ``event`` after those before it, into the scenario (inside the money context)."""
        scenario = self.scenario
        scenario.periods.update(periods_of(event.timestamp, self.catalog, self.clocks))
        try:
            priced, cap = self.pipeline.simulate(self.pipeline.terms(event), self.lookup, self.spend_lookup)
        except EventError as error:
            scenario.not_priced(error.code)
            return
        except ArithmeticError:
            scenario.not_priced(Refusal.NOT_EXACT)
            return
        customer, terms = event.customer, priced.terms
        advance(self.lookup, customer, priced.usage)
        if isinstance(cap, EventError):  # what the hard cap would have refused: charged all the same
            events, amount = scenario.capped.get(customer, (0, ZERO))
            billed = total_of(priced.charges, terms.version.billed_asset[terms.plan])
            scenario.capped[customer] = (events + 1, amount + billed)
        elif cap is not None:
            advance(self.spend_lookup, customer, (cap,))
        for charge in priced.charges:
            scenario.add_charge(customer, terms.plan, charge.meter, terms.period, charge.asset, charge.amount)
        for cost in priced.costs:
            scenario.add_cost(customer, cost.asset, cost.amount)


def _fingerprint(event: UsageEvent) -> bytes:
    """A 128-bit digest of the event's content: what telling a replay from a conflicting reuse of its id needs,
    in 16 bytes per event id however large the event (the stream is never held whole)."""
    return hashlib.blake2b(event.canonical_json().encode(), digest_size=16).digest()


def price_all(
    events: Iterable[UsageEvent],
    catalogs: Sequence[Catalog],
    registry: Registry,
    labels: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> list[Scenario]:
    """Price ``events`` one by one under each of ``catalogs``, in one pass, without closing any period.

    The events are read once, whatever the number of catalogs, and not kept:
    memory holds the period state and totals, and a digest per event id (billing
    posts an id once: a replay is skipped, another content under the same id is
    counted as ``duplicate_conflict``). ``progress`` is called with the number
    of events read so far, every 10,000 and at the end.
    """
    pricers = [_PerEvent(catalog, registry, label) for catalog, label in zip(catalogs, labels, strict=True)]
    seen: dict[str, bytes] = {}
    read = 0
    with localcontext(MONEY_CONTEXT):
        for read, event in enumerate(events, start=1):
            if progress is not None and not read % 10_000:
                progress(read)
            content, previous = _fingerprint(event), seen.get(event.id)
            if previous is not None:  # priced once, as billing posts it once; other content is a conflict
                if previous != content:
                    for pricer in pricers:
                        pricer.scenario.not_priced(Refusal.DUPLICATE_CONFLICT)
                continue
            seen[event.id] = content
            for pricer in pricers:
                pricer.price(event)
    if progress is not None:
        progress(read)
    return [pricer.scenario for pricer in pricers]


def price_events(
    events: Iterable[UsageEvent],
    catalog: Catalog,
    registry: Registry,
    label: str,
    progress: Callable[[int], None] | None = None,
) -> Scenario:
    """Price ``events`` one by one under ``catalog``, in their order, without closing any period
    (:func:`price_all` with one catalog)."""
    return price_all(events, [catalog], registry, [label], progress)[0]


def close_periods(scenario: Scenario, catalog: Catalog) -> Scenario:
    """Add what closing every period of ``scenario`` posts (fees, minimums, commitments, rounding) to its charges."""
    with localcontext(MONEY_CONTEXT):
        for period in sorted(scenario.periods):
            for transaction in period_closing(catalog, period, scenario.by_period.get(period, {})):
                owner = transaction.customer
                if owner is None or transaction.kind == TransactionKind.PREPAYMENT:  # paid in advance: not a charge
                    continue
                for posting in transaction.postings:
                    if posting.account == receivable_account(owner):
                        scenario.add_closing(owner, posting.asset, posting.amount)
    return scenario


def periods_of(timestamp: dt.datetime, catalog: Catalog, clocks: dict[tuple[int, str], PeriodClock]) -> set[str]:
    """The labels of the billing periods ``timestamp`` falls in, one per period kind the plans in force use."""
    index = catalog.index_at(timestamp) or 0
    book = catalog.versions[index]
    labels = set()
    for kind in {plan.period for plan in book.plans.values()}:
        clock = clocks.get((index, kind))
        if clock is None:
            clock = clocks[index, kind] = PeriodClock(kind, zone(book.timezone))
        labels.add(clock.label(timestamp))
    return labels


@dataclass
class SimulationResult:
    """A baseline and its candidates over the same events."""

    baseline: Scenario
    candidates: list[Scenario]
    #: What went per event on a columnar run, and why.
    notices: list[str] = field(default_factory=list)

    @property
    def scenarios(self) -> list[Scenario]:
        """The baseline, then the candidates."""
        return [self.baseline, *self.candidates]

    def only(self, candidates: int) -> SimulationResult:
        """The baseline and only the first ``candidates`` candidates."""
        return SimulationResult(self.baseline, self.candidates[:candidates], self.notices)

    def rows(self) -> list[dict[str, object]]:
        """Per customer and asset: each scenario's total, and each candidate's change from the baseline."""
        keys = sorted({(c, a) for s in self.scenarios for c, per_asset in s.charged.items() for a in per_asset})
        rows = []
        for customer, asset in keys:
            row: dict[str, object] = {"customer": customer, "asset": asset}
            base = self.baseline.charged.get(customer, {}).get(asset, ZERO)
            row[self.baseline.label] = base
            for candidate in self.candidates:
                amount = candidate.charged.get(customer, {}).get(asset, ZERO)
                row[candidate.label] = amount
                row[f"delta {candidate.label}"] = amount - base
                row[f"% {candidate.label}"] = percent_change(base, amount)
            rows.append(row)
        return rows

    def rows_by(self, level: str) -> list[dict[str, object]]:
        """Usage charges per customer and ``plan`` or ``meter`` (period close apart, as ``(close)``), per scenario."""
        if level not in ("plan", "meter"):
            raise ValueError(f"simulations break down by plan or meter, not {level!r}")
        per_scenario: list[dict[tuple[str, str, str], Decimal]] = []
        for scenario in self.scenarios:
            amounts: dict[tuple[str, str, str], Decimal] = {}
            for (customer, plan, meter, asset), amount in scenario.lines.items():
                key = (customer, plan if level == "plan" else meter, asset)
                amounts[key] = amounts.get(key, ZERO) + amount
            for customer, per_asset in scenario.closing.items():
                for asset, amount in per_asset.items():
                    amounts[customer, "(close)", asset] = amounts.get((customer, "(close)", asset), ZERO) + amount
            per_scenario.append(amounts)
        rows = []
        for customer, part, asset in sorted({key for amounts in per_scenario for key in amounts}):
            row: dict[str, object] = {"customer": customer, level: part, "asset": asset}
            base = per_scenario[0].get((customer, part, asset), ZERO)
            row[self.baseline.label] = base
            for candidate, amounts in zip(self.candidates, per_scenario[1:], strict=True):
                amount = amounts.get((customer, part, asset), ZERO)
                row[candidate.label] = amount
                row[f"delta {candidate.label}"] = amount - base
            rows.append(row)
        return rows

    def margins(self) -> list[dict[str, object]]:
        """Per scenario and asset with a provider cost: revenue, cost, margin, margin %, and the margin's change.

        Empty when no pricebook has ``costs:``.
        """
        if not any(s.costs for s in self.scenarios):
            return []
        base = self.baseline.revenue()
        base_margin = {a: base.get(a, ZERO) - c for a, c in self.baseline.cost().items()}
        rows: list[dict[str, object]] = []
        for scenario in self.scenarios:
            revenue, cost = scenario.revenue(), scenario.cost()
            for asset in sorted(set(base_margin) | set(cost)):
                margin = revenue.get(asset, ZERO) - cost.get(asset, ZERO)
                rows.append(
                    {
                        "pricebook": scenario.label,
                        "asset": asset,
                        "revenue": revenue.get(asset, ZERO),
                        "cost": cost.get(asset, ZERO),
                        "margin": margin,
                        "margin %": percent_of(margin, revenue.get(asset, ZERO)),
                        "change": None if scenario is self.baseline else margin - base_margin.get(asset, ZERO),
                    }
                )
        return rows

    def movers(self, candidate: Scenario) -> dict[str, int]:
        """How many customer-assets pay more, less and the same under ``candidate``."""
        counts = {"more": 0, "less": 0, "same": 0}
        for row in self.rows():
            delta = row[f"delta {candidate.label}"]
            assert isinstance(delta, Decimal)
            counts["more" if delta > 0 else "less" if delta < 0 else "same"] += 1
        return counts


def percent_change(before: Decimal, after: Decimal) -> Decimal | None:
    """The change from ``before`` to ``after`` in percent, to 2 places; None from zero."""
    return percent_of(after - before, before)


def percent_of(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percentage of ``whole``, to 2 places; None of zero."""
    if not whole:
        return None
    with localcontext(MONEY_CONTEXT) as context:
        context.traps[Inexact] = False
        return (part * HUNDRED / whole).quantize(Decimal("0.01"))


def simulate(
    events: Iterable[UsageEvent] | ParquetHistory,
    baseline: Catalog,
    candidates: Sequence[Catalog],
    registry: Registry | None = None,
    labels: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Price ``events`` under ``baseline`` and each of ``candidates``; see the module docstring.

    ``events`` is an iterable of events, read once and priced one by one under
    every pricebook in the same pass (a stream: memory does not grow with it), or
    a :class:`~rating.simulate.columnar.ParquetHistory`, totalled per key by DuckDB.
    ``progress`` is called with how much is done: events read, for events;
    pricebooks priced, for Parquet history.
    """
    registry = registry or Registry.load()
    catalogs = [baseline, *candidates]
    names = distinct([f"{c.name}@{c.latest.version.isoformat()}" for c in catalogs] if labels is None else list(labels))
    notices: list[str] = []
    if _columnar(events):
        from rating.simulate.columnar import price_columnar

        scenarios = []
        for number, (catalog, name) in enumerate(zip(catalogs, names, strict=True)):
            scenario, said = price_columnar(events, catalog, registry, name)  # type: ignore[arg-type]
            scenarios.append(scenario)
            notices += said
            if progress is not None:
                progress(number + 1)
    else:
        scenarios = price_all(events, catalogs, registry, names, progress)  # type: ignore[arg-type]
    closed = [close_periods(scenario, catalog) for scenario, catalog in zip(scenarios, catalogs, strict=True)]
    return SimulationResult(closed[0], closed[1:], notices)


def _columnar(events: object) -> bool:
    """Whether ``events`` is Parquet history (checked without importing DuckDB for a stream of events)."""
    columnar = sys.modules.get("rating.simulate.columnar")
    return columnar is not None and isinstance(events, columnar.ParquetHistory)


class EventFile:
    """The valid events of a JSON Lines or CSV file, read lazily each time it is iterated.

    ``invalid`` counts the records that are not valid events (skipped) on the
    last pass; ``progress`` is called with the records read, valid or not, every
    10,000 and at the end.
    """

    def __init__(self, path: str | Path, progress: Callable[[int], None] | None = None) -> None:
        self.path, self.progress, self.invalid = Path(path), progress, 0

    def __iter__(self) -> Iterator[UsageEvent]:
        self.invalid = read = 0
        for read, record in enumerate(read_events(self.path), start=1):
            if self.progress is not None and not read % 10_000:
                self.progress(read)
            if record.event is None:
                self.invalid += 1
            else:
                yield record.event
        if self.progress is not None:
            self.progress(read)


def distinct(labels: Sequence[str]) -> list[str]:
    """``labels``, numbered where two would read the same."""
    return [f"{label}#{i}" if labels.count(label) > 1 else label for i, label in enumerate(labels, start=1)]
