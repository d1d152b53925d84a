from decimal import Decimal

import pytest

from rating.pricebook.yamlstrict import YamlError, load


def test_norway_problem_does_not_happen() -> None:
    data = load("country: NO\nflags: [yes, no, on, off, y, n]\nreal: [true, false]\n").data
    assert data == {"country": "NO", "flags": ["yes", "no", "on", "off", "y", "n"], "real": [True, False]}


def test_numbers_are_decimals_from_their_source_text() -> None:
    data = load("a: 0.1\nb: 1_000_000\nc: 1e-7\nd: -2.50\ne: '3'\n").data
    assert data == {"a": Decimal("0.1"), "b": Decimal(1000000), "c": Decimal("1E-7"), "d": Decimal("-2.50"), "e": "3"}
    assert str(data["d"]) == "-2.50"
    assert not any(isinstance(v, float) for v in data.values())


def test_dates_stay_text() -> None:
    assert load("version: 2026-11-01\n").data == {"version": "2026-11-01"}


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    with pytest.raises(YamlError) as error:
        load("a: 1\nb:\n  c: 2\n  c: 3\n")
    assert (error.value.line, error.value.column) == (4, 3)
    assert "duplicate key 'c' (first given on line 3)" in str(error.value)


def test_merge_keys_are_refused() -> None:
    with pytest.raises(YamlError, match="merge keys"):
        load("base: &b {x: 1}\nother:\n  <<: *b\n")


def test_syntax_errors_have_a_position() -> None:
    with pytest.raises(YamlError) as error:
        load("a: [1, 2\nb: 3\n")
    assert error.value.line >= 2


def test_positions_point_at_keys_and_items() -> None:
    document = load("plans:\n  basic:\n    charges:\n      - {meter: m}\n")
    assert document.position(("plans", "basic", "charges", 0, "meter")) == (4, 10)
    assert document.position(("plans", "basic", "charges", 0)) == (4, 9)
    assert document.position(("plans", "basic", "nothing", "here")) == (2, 3)
