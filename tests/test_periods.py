import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.periods import PeriodClock, period_bounds, period_label, zone

UTC = dt.UTC
PARIS = zone("Europe/Paris")


@pytest.mark.parametrize(
    "kind, label",
    [("day", "2026-11-23"), ("week", "2026-W48"), ("month", "2026-11"), ("year", "2026")],
)
def test_labels(kind: str, label: str) -> None:
    assert period_label(dt.datetime(2026, 11, 23, 12, tzinfo=UTC), kind, UTC) == label  # type: ignore[arg-type]


def test_iso_week_belongs_to_its_iso_year() -> None:
    assert period_label(dt.datetime(2027, 1, 1, tzinfo=UTC), "week", UTC) == "2026-W53"


def test_a_day_across_a_daylight_saving_change_lasts_25_hours() -> None:
    _, start, end = period_bounds(dt.datetime(2026, 10, 25, 12, tzinfo=UTC), "day", PARIS)
    assert end - start == dt.timedelta(hours=25)
    assert start == dt.datetime(2026, 10, 24, 22, tzinfo=UTC)


def test_month_follows_the_time_zone() -> None:
    just_before = dt.datetime(2026, 10, 31, 22, 59, tzinfo=UTC)  # 23:59 in Paris
    assert period_label(just_before, "month", PARIS) == "2026-10"
    assert period_label(just_before + dt.timedelta(minutes=1), "month", PARIS) == "2026-11"


@given(
    st.lists(
        st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)),
        max_size=50,
    ),
    st.sampled_from(["day", "week", "month", "year"]),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_the_clock_agrees_with_a_fresh_computation(stamps: list[dt.datetime], kind: str, name: str) -> None:
    clock = PeriodClock(kind, zone(name))  # type: ignore[arg-type]
    for stamp in stamps + sorted(stamps):
        label, start, end = period_bounds(stamp, kind, zone(name))  # type: ignore[arg-type]
        assert start <= stamp < end
        assert clock.label(stamp) == label
