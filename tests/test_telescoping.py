"""The central promise: per-event charges add up exactly to the period price of the total.

For every built-in pricing model and every meter aggregation, for any order of
the period's events and any split of them into batches.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from rating_plugins.package import Package
from rating_plugins.per_call import PerCall
from rating_plugins.per_unit import PerUnit
from rating_plugins.tiered import Tiered

from rating.engine import Engine
from rating.events import UsageEvent
from rating.pricebook.meters import Meter
from rating.pricebook.model import Plan, Pricebook
from rating.pricebook.pricing import PricingModel
from rating.registry import Registry
from rating.storage.memory import MemoryStorage

REGISTRY = Registry.load()
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

prices = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=5000, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def tiered(draw: st.DrawFn, meter: str) -> Tiered:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=20_000), max_size=4)))
    tiers = [
        {"up_to": Decimal(b), "unit_price": draw(prices), "flat_fee": draw(st.sampled_from([Decimal(0), draw(prices)]))}
        for b in bounds
    ]
    tiers.append({"unit_price": draw(prices)})
    return Tiered(meter=meter, model="tiered", mode=draw(st.sampled_from(["graduated", "volume"])), tiers=tiers)  # type: ignore[arg-type]


def models(meter: str, aggregation: str) -> st.SearchStrategy[PricingModel]:
    options = [
        prices.map(lambda p: PerUnit(meter=meter, model="per_unit", unit_price=p)),
        tiered(meter),
        st.builds(
            lambda size, price, rounding: Package(meter=meter, model="package", size=size, price=price, round=rounding),
            st.decimals(min_value=Decimal("0.5"), max_value=1000, places=1),
            prices,
            st.sampled_from(["up", "down"]),
        ),
    ]
    if aggregation == "count":
        options.append(prices.map(lambda p: PerCall(meter=meter, model="per_call", price=p)))
    return st.builds(
        with_options,
        st.one_of(options),
        st.sampled_from([None, *INCLUDED]),
        st.sampled_from([None, *CAPS]),
        st.sampled_from(DISCOUNTS),
    )


INCLUDED = [Decimal(0), Decimal(3), Decimal("250.5")]
CAPS = [Decimal(0), Decimal("0.5"), Decimal(40), Decimal(10_000)]
DISCOUNTS: list[list[dict[str, str]]] = [
    [],
    [{"above": "5", "percent": "10"}],
    [{"above": "0", "percent": "2.5"}, {"above": "100", "percent": "33"}],
]


def with_options(
    model: PricingModel, included: Decimal | None, cap: Decimal | None, discounts: list[dict[str, str]]
) -> PricingModel:
    """``model`` with an allowance, a cap and discounts, when drawn: every charge option must telescope too."""
    data = model.model_dump(exclude_none=True) | {"discounts": discounts}
    if included is not None:
        data["included"] = included
    if cap is not None:
        data["cap"] = cap
    return type(model).model_validate(data)


METER_SPECS = {
    "sum": {"event": "use", "sum": "q", "group_by": ("g",)},
    "count": {"event": "use", "count": True, "group_by": ("g",)},
    "max": {"event": "use", "max": "q", "group_by": ("g",)},
    "unique": {"event": "use", "unique": "member", "group_by": ("g",)},
}


def engine_for(aggregation: str, model: PricingModel) -> Engine:
    book = Pricebook(
        pricebook="prop",
        version=dt.date(2026, 11, 1),
        currency="USD",
        meters={"m": Meter(**METER_SPECS[aggregation])},  # type: ignore[arg-type]
        plans={"p": Plan(charges=(model,))},
        default_plan="p",
    )
    return Engine(book, MemoryStorage(), REGISTRY)


def period_total(aggregation: str, events: list[tuple[Decimal, str, str]]) -> dict[str, Decimal]:
    """The meter's aggregate per group, computed without the engine."""
    totals: dict[str, Decimal] = {}
    for group in {g for _, _, g in events}:
        mine = [(q, member) for q, member, g in events if g == group]
        if aggregation == "sum":
            totals[group] = sum((q for q, _ in mine), Decimal(0))
        elif aggregation == "count":
            totals[group] = Decimal(len(mine))
        elif aggregation == "max":
            totals[group] = max(q for q, _ in mine)
        else:
            totals[group] = Decimal(len({member for _, member in mine}))
    return totals


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, PricingModel, list[tuple[Decimal, str, str]], list[int], list[int]]:
    aggregation = draw(st.sampled_from(sorted(METER_SPECS)))
    model = draw(models("m", aggregation))
    events = draw(
        st.lists(st.tuples(quantities, st.sampled_from("abcdef"), st.sampled_from(["x", "y"])), min_size=1, max_size=30)
    )
    order = draw(st.permutations(range(len(events))))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(events)), max_size=4))
    return aggregation, model, events, list(order), cuts


@settings(max_examples=300)
@given(scenarios())
def test_incremental_charges_add_up_to_the_period_price_in_any_order_and_split(scenario) -> None:  # type: ignore[no-untyped-def]
    aggregation, model, readings, order, cuts = scenario
    engine = engine_for(aggregation, model)
    events = [
        UsageEvent(
            id=f"e{i}",
            customer="c",
            type="use",
            timestamp=START + dt.timedelta(minutes=i),
            properties={"q": readings[i][0], "member": readings[i][1], "g": readings[i][2]},
        )
        for i in order
    ]
    bounds = sorted(set(cuts) | {0, len(events)})
    for start, end in zip(bounds, bounds[1:], strict=False):
        engine.rate_batch(events[start:end])
    charged = sum((c.charge.amount for c in engine.storage.charges()), Decimal(0))
    totals = period_total(aggregation, readings).values()
    expected = model.adjusted_total(sum((model.period_price(model.billable(q)) for q in totals), Decimal(0)))
    assert charged == expected


@settings(max_examples=100)
@given(model=models("m", "sum"), readings=st.lists(st.tuples(quantities, st.booleans()), min_size=1, max_size=20))
def test_period_state_starts_fresh_each_period(model: PricingModel, readings: list[tuple[Decimal, bool]]) -> None:
    engine = engine_for("sum", model)
    for i, (quantity, december) in enumerate(readings):
        at = dt.datetime(2026, 12 if december else 11, 15, tzinfo=dt.UTC)
        engine.rate(
            UsageEvent(id=f"e{i}", customer="c", type="use", timestamp=at, properties={"q": quantity, "g": "x"})
        )
    november = sum((q for q, dec in readings if not dec), Decimal(0))
    december = sum((q for q, dec in readings if dec), Decimal(0))
    charged = sum((c.charge.amount for c in engine.storage.charges()), Decimal(0))

    def price(total: Decimal) -> Decimal:
        return model.adjusted_total(model.period_price(model.billable(total)))

    assert charged == price(november) + price(december)
    assert {c.charge.period for c in engine.storage.charges()} <= {"2026-11", "2026-12"}
