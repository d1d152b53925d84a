import calendar
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.periods import PeriodClock, bounds_of, period_bounds, period_label, zone

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


@given(
    st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["week", "month", "year"]),
    st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31)),
    st.sampled_from(["UTC", "Europe/Paris", "Pacific/Auckland"]),
)
def test_anniversary_periods_contain_their_instant_and_are_found_by_label(
    stamp: dt.datetime, kind: str, anchor: dt.date, name: str
) -> None:
    timezone = zone(name)
    label, start, end = period_bounds(stamp, kind, timezone, anchor)  # type: ignore[arg-type]
    assert start <= stamp < end
    assert bounds_of(label, timezone, anchor)[1:] == (start, end)
    local_start = start.astimezone(timezone).date()
    if kind == "month":  # the anniversary day, or the last day of a shorter month
        assert local_start.day == min(anchor.day, calendar.monthrange(local_start.year, local_start.month)[1])
    if kind == "week":
        assert local_start.weekday() == anchor.weekday()
    assert PeriodClock(kind, timezone, anchor).label(stamp) == label  # type: ignore[arg-type]


def test_monthly_anniversary_on_the_31st_uses_the_last_day_of_short_months() -> None:
    anchor = dt.date(2026, 1, 31)
    starts = [bounds_of(m, UTC, anchor)[1].date() for m in ("2026-01", "2026-02", "2026-03", "2026-04")]
    assert starts == [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31), dt.date(2026, 4, 30)]
