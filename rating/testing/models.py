"""A conformance kit for pricing models: what a third-party model's own tests call.

::

    from rating.testing import check_period_model, check_per_event_model

    def test_my_model_conforms():
        check_period_model(MyModel(meter="m", model="mine", rate="0.5"), [Decimal(0), Decimal(3), Decimal("7.5")])

Each check raises :class:`AssertionError` naming the first promise the model
breaks:

- **exact**: every amount is a :class:`~decimal.Decimal`, never a float, and no
  operation of the model is inexact in the engine's money context;
- **adds up** (period-price models): the steps of a period add up to the price
  of its total, in any split;
- **explains**: the explanation names the amount it explains;
- **by_group**: a ``by_group`` override prices its group, and only it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal, localcontext

from rating.events import UsageEvent
from rating.money import MONEY_CONTEXT, ZERO, format_decimal
from rating.pricebook.pricing import PerEventModel, PricingModel, group_label


def _exact(value: object, what: str) -> Decimal:
    if type(value) is not Decimal:
        raise AssertionError(f"{what} is a {type(value).__name__}, not a Decimal")
    assert value.is_finite(), f"{what} is {value}, not a finite amount"
    return value


def check_period_model(model: PricingModel, quantities: Sequence[Decimal], asset: str = "USD") -> None:
    """A period-price model is exact, its steps add up to the price of the total, and it explains each step.

    ``quantities``: period aggregates in ascending order, starting anywhere (0 is a good start).
    """
    assert not isinstance(model, PerEventModel), "use check_per_event_model for a per-event model"
    assert list(quantities) == sorted(quantities), "give the quantities in ascending order"
    with localcontext(MONEY_CONTEXT):
        total = ZERO
        for before, after in zip(quantities, quantities[1:], strict=False):
            step = _exact(model.charge(before, after), f"charge({before}, {after})")
            total += step
            text = model.describe(before, after, step, "units", asset)
            assert format_decimal(step) in text, f"the explanation {text!r} does not name the amount {step}"
        if len(quantities) > 1:
            whole = model.charge(quantities[0], quantities[-1])
            assert total == whole, f"the steps add up to {total}, the period from first to last costs {whole}"
    _check_groups(model)


def check_per_event_model(model: PerEventModel, events: Iterable[UsageEvent], asset: str = "USD") -> None:
    """A per-event model prices each event exactly and deterministically, and explains the amount; one that
    keeps period quantities
    (:attr:`~rating.pricebook.pricing.PerEventModel.kept`) does so for ``events`` as one period too."""
    events = tuple(events)  # read twice: alone, then as one period
    with localcontext(MONEY_CONTEXT):
        for event in events:
            priced = model.price_event(event, asset)
            amount = _exact(priced.amount, f"the price of {event.id}")
            assert format_decimal(amount) in priced.explanation, (
                f"the explanation {priced.explanation!r} of {event.id} does not name the amount {amount}"
            )
            again = model.price_event(event, asset)
            assert again == priced, f"pricing {event.id} twice gave {priced} and then {again}"
        if model.kept:  # the events in turn, as one period: each priced by what the earlier ones left
            used = dict.fromkeys(model.kept, Decimal(0))
            for event in events:
                in_period, after = model.price_in_period(event, asset, used)
                amount = _exact(in_period.amount, f"the price of {event.id} in its period")
                assert format_decimal(amount) in in_period.explanation, (
                    f"the explanation {in_period.explanation!r} of {event.id} does not name the amount {amount}"
                )
                assert set(after) == set(model.kept), f"{event.id} left {sorted(after)}, not {sorted(model.kept)}"
                repeated = model.price_in_period(event, asset, used)
                assert repeated == (in_period, after), f"pricing {event.id} twice in its period gave two results"
                used = after
    _check_groups(model)


def _check_groups(model: PricingModel) -> None:
    """Each ``by_group`` override is what prices its group; other groups keep the model."""
    for label in model.by_group:
        group = tuple(label.split("/"))
        assert group_label(group) == label
        variant = model.for_group(group)
        assert variant is not model, f"by_group {label!r} does not price group {group}"
        assert model.for_group(("no such group",)) is model, "a group without an override must keep the model"
