"""Worked examples for each built-in pricing model: numbers a person can check by hand."""

from decimal import Decimal as D

import pytest
from pydantic import ValidationError
from rating_plugins.package import Package
from rating_plugins.per_call import PerCall
from rating_plugins.per_unit import PerUnit
from rating_plugins.tiered import Tiered

TIERS = [{"up_to": "1000", "unit_price": "0.01"}, {"up_to": "5000", "unit_price": "0.008"}, {"unit_price": "0.005"}]


def test_per_unit_explains_the_example_of_the_issue() -> None:
    model = PerUnit(meter="input_tokens", model="per_unit", unit_price=D("0.0000025"))
    amount = model.charge(D(0), D(1200))
    assert amount == D("0.0030000")
    assert model.explain(D(0), D(1200), amount, "input_tokens", "USD") == (
        "1,200 input_tokens x 0.0000025 USD = 0.0030000 USD"
    )


def test_per_call_prices_each_call() -> None:
    model = PerCall(meter="requests", model="per_call", price=D("0.0005"))
    assert model.charge(D(41), D(42)) == D("0.0005")
    assert model.price_per_unit(D(41), D(42)) == D("0.0005")


def test_prices_are_never_floats_or_negative() -> None:
    with pytest.raises(ValidationError, match="exact decimal"):
        PerCall(meter="m", model="per_call", price=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        PerCall(meter="m", model="per_call", price=D("-1"))


def test_graduated_tiers_price_each_unit_in_its_tier() -> None:
    model = Tiered(meter="m", model="tiered", mode="graduated", tiers=TIERS)  # type: ignore[arg-type]
    assert model.period_price(D(1000)) == D("10.00")
    assert model.period_price(D(6000)) == D("10.00") + D("32.000") + D("5.000")
    step = model.charge(D(900), D(1100))
    assert step == D("1.00") + D("0.800")
    assert model.price_per_unit(D(900), D(1100)) is None
    assert model.price_per_unit(D(1000), D(1100)) == D("0.008")
    assert model.explain(D(900), D(1100), step, "calls", "USD") == (
        "100 calls x 0.01 USD (tier 1) + 100 calls x 0.008 USD (tier 2) = 1.800 USD"
    )


def test_volume_tiers_price_every_unit_at_the_total_s_tier_and_credit_on_a_break() -> None:
    model = Tiered(meter="m", model="tiered", mode="volume", tiers=TIERS)  # type: ignore[arg-type]
    assert model.period_price(D(1000)) == D("10.00")
    assert model.period_price(D(1001)) == D("8.008")
    assert model.charge(D(1000), D(1001)) == D("-1.992")  # the break makes this event a credit
    assert "volume tier 2" in model.explain(D(1000), D(1001), D("-1.992"), "calls", "USD")


def test_flat_fee_is_charged_once_on_entering_a_tier() -> None:
    tiers = [{"up_to": "10", "unit_price": "0", "flat_fee": "5"}, {"unit_price": "1", "flat_fee": "2"}]
    model = Tiered(meter="m", model="tiered", mode="graduated", tiers=tiers)  # type: ignore[arg-type]
    assert model.period_price(D(0)) == 0
    assert model.charge(D(0), D(1)) == D(5)
    assert model.charge(D(1), D(10)) == D(0)
    assert model.charge(D(10), D(11)) == D(3)
    assert model.price_per_unit(D(0), D(1)) is None
    assert model.price_per_unit(D(11), D(12)) == D(1)


@pytest.mark.parametrize(
    "tiers, message",
    [
        ([{"up_to": "10", "unit_price": "1"}], r"the last tier \(tier 1\) must not have up_to"),
        ([{"unit_price": "1"}, {"unit_price": "2"}], "tier 1 has no up_to"),
        ([{"up_to": "10", "unit_price": "1"}, {"up_to": "10", "unit_price": "1"}, {"unit_price": "1"}], "out of order"),
    ],
)
def test_tier_lists_must_make_sense(tiers: list[dict[str, str]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Tiered(meter="m", model="tiered", mode="graduated", tiers=tiers)  # type: ignore[arg-type]


def test_package_rounds_up_started_packages_or_down() -> None:
    up = Package(meter="m", model="package", size=D(1000), price=D("5"))
    down = Package(meter="m", model="package", size=D(1000), price=D("5"), round="down")
    assert [up.period_price(D(q)) for q in (0, 1, 1000, 1001)] == [0, 5, 5, 10]
    assert [down.period_price(D(q)) for q in (0, 999, 1000, 2500)] == [0, 0, 5, 10]
    assert up.charge(D(1000), D(1001)) == D(5)
    assert "2 packages of 1,000 x 5 USD" in up.explain(D(1000), D(1001), D(5), "images", "USD")
