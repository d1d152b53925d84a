from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.errors import InvalidAmount, RatingError
from rating.money import allocate, currency_scale, format_decimal, quantize, round_to_total, to_decimal


@pytest.mark.parametrize(
    "value",
    [0.1, 1.0, True, float("nan"), "NaN", "Infinity", "abc", None, [1]]
    # Decimal() reads all of these; none is how a quantity or an amount is written
    + ["1_000", " 12 ", "1_0", " 1.50 ", "12\n", "\t1", "-inf", "sNaN", "1e", ".", "+", "1.2.3", "", "0x10"],
)
def test_to_decimal_refuses_what_is_not_an_exact_finite_decimal(value: object) -> None:
    with pytest.raises(InvalidAmount):
        to_decimal(value)


@given(st.text())
def test_to_decimal_accepts_only_plain_decimal_text(text: str) -> None:
    """Whatever the text, it is read only when it is digits with a sign, a point and an exponent, nothing else."""
    try:
        value = to_decimal(text)
    except InvalidAmount:
        return
    assert set(text) <= set("0123456789+-.eE") and value == Decimal(text)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_to_decimal_reads_every_decimal_it_writes(value: Decimal) -> None:
    assert to_decimal(str(value)) == value and to_decimal(f"{value:f}") == value


def test_to_decimal_keeps_the_written_digits() -> None:
    assert to_decimal("0.0000025") == Decimal("0.0000025")
    assert str(to_decimal("1.50")) == "1.50"
    assert to_decimal(7) == Decimal(7)


def test_invalid_amount_is_a_rating_error() -> None:
    assert issubclass(InvalidAmount, RatingError)


def test_currencies_have_their_iso_scale_and_nothing_else_is_a_currency() -> None:
    assert (currency_scale("USD"), currency_scale("JPY"), currency_scale("BHD")) == (2, 0, 3)
    for code in ("usd", "XYZ", "CREDITS"):
        with pytest.raises(InvalidAmount):
            currency_scale(code)


def test_quantize_rounds_half_to_even() -> None:
    assert quantize(Decimal("0.125"), 2) == Decimal("0.12")
    assert quantize(Decimal("0.135"), 2) == Decimal("0.14")


def test_format_decimal_shows_separators_and_every_digit() -> None:
    assert format_decimal(Decimal("1200")) == "1,200"
    assert format_decimal(Decimal("1200") * Decimal("0.0000025")) == "0.0030000"


@given(
    cents=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8).filter(any),
)
def test_allocation_parts_always_add_up_to_the_whole(cents: int, weights: list[int]) -> None:
    amount = Decimal(cents).scaleb(-2)
    parts = allocate(amount, [Decimal(w) for w in weights], 2)
    assert sum(parts) == amount
    assert all(part == quantize(part, 2) for part in parts)
    exact = [amount * w / sum(weights) for w in weights]
    assert all(abs(part - share) < Decimal("0.01") for part, share in zip(parts, exact, strict=True))


def test_allocation_refuses_bad_weights_and_unscaled_amounts() -> None:
    with pytest.raises(InvalidAmount):
        allocate(Decimal("1.00"), [Decimal(0)], 2)
    with pytest.raises(InvalidAmount):
        allocate(Decimal("1.001"), [Decimal(1)], 2)


@given(
    parts=st.lists(
        st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False), max_size=10
    ),
    scale=st.sampled_from([0, 2, 3]),
)
def test_parts_rounded_to_their_total_add_up_to_it_and_each_moves_less_than_a_unit(
    parts: list[Decimal], scale: int
) -> None:
    """Signed largest remainder: the invoice's lines always add up to the total close rounded, no rounding line."""
    total = quantize(sum(parts, Decimal(0)), scale)
    rounded = round_to_total(parts, total, scale)
    unit = Decimal(1).scaleb(-scale)
    assert sum(rounded, Decimal(0)) == total
    for part, shown in zip(parts, rounded, strict=True):
        assert shown == quantize(shown, scale) and abs(shown - part) < unit
        if part == quantize(part, scale):
            assert shown == part  # what is already whole never takes a share of the rounding


def test_rounding_to_a_total_gives_ties_to_the_earlier_part_and_refuses_a_far_total() -> None:
    three = [Decimal("0.015")] * 3  # 0.045 in all: 0.04 half to even, one cent for the first of three equal parts
    assert round_to_total(three, Decimal("0.04"), 2) == [Decimal("0.02"), Decimal("0.01"), Decimal("0.01")]
    signed = [Decimal("-0.004"), Decimal("0.004"), Decimal("-0.006")]  # each to its nearest cent: -0.01 in all
    assert round_to_total(signed, Decimal("-0.01"), 2) == [Decimal("0.00"), Decimal("0.00"), Decimal("-0.01")]
    with pytest.raises(InvalidAmount):
        round_to_total(three, Decimal("0.06"), 2)


def test_decimals_print_plain_never_in_scientific_notation() -> None:
    from rating.cli.output import render
    from rating.money import plain

    assert format_decimal(Decimal("2.5E-7")) == "0.00000025" and format_decimal(Decimal("1.2E+4")) == "12,000"
    assert plain(Decimal("0E-8")) == "0.00000000" and plain(Decimal("2.5E-7")) == "0.00000025"
    rows = [{"unit_price": Decimal("2.5E-7"), "amount": Decimal("0E-8")}]
    assert '"unit_price": "0.00000025"' in render(rows, ["unit_price", "amount"], "json")
    assert render(rows, ["unit_price", "amount"], "csv").splitlines()[1] == "0.00000025,0.00000000"
