"""A pricing model's period price as the steps an invoice shows: one per tier reached, the allowance apart, and
their amounts add up to the period price exactly."""

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st
from rating_plugins.package import Package
from rating_plugins.per_unit import PerUnit
from rating_plugins.tiered import Tiered

from rating.pricebook.pricing import PriceStep
from tests.test_telescoping import tiered

TIERS = [{"up_to": "1000", "unit_price": "0.01"}, {"up_to": "5000", "unit_price": "0.008"}, {"unit_price": "0.005"}]


def test_graduated_tiers_are_one_step_per_tier_reached() -> None:
    model = Tiered(meter="m", model="tiered", mode="graduated", tiers=TIERS)  # type: ignore[arg-type]
    assert model.steps(D(6200)) == (
        PriceStep("tier", D(1000), D("0.01"), D("10.00"), 1, D(0), D(1000)),
        PriceStep("tier", D(4000), D("0.008"), D("32.000"), 2, D(1000), D(5000)),
        PriceStep("tier", D(1200), D("0.005"), D("6.000"), 3, D(5000), None),
    )
    assert [s.tier for s in model.steps(D(1000)) or ()] == [1]  # the bound is inclusive: tier 2 not reached
    assert model.steps(D(0)) == ()


def test_a_volume_charge_is_the_tier_that_applied_and_its_flat_fee() -> None:
    tiers = [{"up_to": "1000", "unit_price": "0.01"}, {"unit_price": "0.008", "flat_fee": "3"}]
    model = Tiered(meter="m", model="tiered", mode="volume", tiers=tiers)  # type: ignore[arg-type]
    assert model.steps(D(1500)) == (
        PriceStep("volume", D(1500), D("0.008"), D("12.000"), 2, D(1000), None),
        PriceStep("flat_fee", None, None, D(3), 2, D(1000), None),
    )


def test_the_allowance_is_a_step_of_its_own_and_a_package_has_none() -> None:
    model = PerUnit(meter="m", model="per_unit", unit_price=D("0.5"), included=D(100))
    assert model.steps(D(130)) == (
        PriceStep("included", D(100), None, D(0)),
        PriceStep("units", D(30), D("0.5"), D("15.0")),
    )
    assert model.steps(D(40)) == (PriceStep("included", D(40), None, D(0)),)
    assert Package(meter="m", model="package", size=D(10), price=D(1)).steps(D(15)) is None


@given(
    st.data(),
    st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=5000, places=0, allow_nan=False, allow_infinity=False),
)
def test_the_steps_add_up_to_the_period_price_exactly(data: st.DataObject, quantity: D, included: D) -> None:
    model = data.draw(tiered("m")).model_copy(update={"included": included})
    steps = model.steps(quantity)
    assert steps is not None
    assert sum((s.amount for s in steps), D(0)) == model.charge(D(0), quantity)
    assert sum((s.quantity for s in steps if s.kind in ("included", "tier", "volume")), D(0)) == quantity
