"""Billing periods: which period an event's timestamp falls in, in the pricebook's time zone.

Periods are calendar periods labelled ``2026-11-23`` (day), ``2026-W47`` (ISO
week, Monday to Sunday), ``2026-11`` (month) and ``2026`` (year). A period
starts at local midnight of its first day, so a day across a daylight-saving
change lasts 23 or 25 hours.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache
from typing import Literal

PeriodKind = Literal["day", "week", "month", "year"]
UTC = dt.UTC


@lru_cache(maxsize=64)
def zone(name: str) -> dt.tzinfo:
    """The tz database zone ``name`` (cached: a lookup per event would be wasteful)."""
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def _first_day(day: dt.date, kind: PeriodKind) -> dt.date:
    if kind == "day":
        return day
    if kind == "week":
        return day - dt.timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def _next_first_day(first: dt.date, kind: PeriodKind) -> dt.date:
    if kind == "day":
        return first + dt.timedelta(days=1)
    if kind == "week":
        return first + dt.timedelta(days=7)
    if kind == "month":
        return dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return dt.date(first.year + 1, 1, 1)


def _label(first: dt.date, kind: PeriodKind) -> str:
    if kind == "day":
        return first.isoformat()
    if kind == "week":
        year, week, _ = first.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if kind == "month":
        return f"{first.year:04d}-{first.month:02d}"
    return f"{first.year:04d}"


def period_bounds(
    timestamp: dt.datetime, kind: PeriodKind, timezone: dt.tzinfo
) -> tuple[str, dt.datetime, dt.datetime]:
    """Label, start (inclusive) and end (exclusive), in UTC, of the period ``timestamp`` falls in."""
    first = _first_day(timestamp.astimezone(timezone).date(), kind)
    following = _next_first_day(first, kind)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=timezone).astimezone(UTC)
    end = dt.datetime(following.year, following.month, following.day, tzinfo=timezone).astimezone(UTC)
    return _label(first, kind), start, end


def period_label(timestamp: dt.datetime, kind: PeriodKind, timezone: dt.tzinfo) -> str:
    """The label of the ``kind`` period that ``timestamp`` falls in, seen in ``timezone``."""
    return period_bounds(timestamp, kind, timezone)[0]


class PeriodClock:
    """Labels timestamps with their period, remembering the bounds of the last one.

    Events mostly arrive in time order, so two comparisons usually replace a
    time-zone conversion per event.
    """

    __slots__ = ("kind", "timezone", "_label", "_start", "_end")

    def __init__(self, kind: PeriodKind, timezone: dt.tzinfo) -> None:
        self.kind, self.timezone = kind, timezone
        self._label, self._start, self._end = period_bounds(dt.datetime(2000, 1, 1, tzinfo=UTC), kind, timezone)

    def label(self, timestamp: dt.datetime) -> str:
        """The label of the period ``timestamp`` falls in."""
        if not (self._start <= timestamp < self._end):
            self._label, self._start, self._end = period_bounds(timestamp, self.kind, self.timezone)
        return self._label


def parse_period(label: str) -> tuple[PeriodKind, dt.date]:
    """The kind and first day of a period label (``2026-11-23``, ``2026-W47``, ``2026-11``, ``2026``)."""
    try:
        if len(label) == 10:
            return "day", dt.date.fromisoformat(label)
        if len(label) == 8 and label[4:6] == "-W":
            return "week", dt.date.fromisocalendar(int(label[:4]), int(label[6:]), 1)
        if len(label) == 7 and label[4] == "-":
            return "month", dt.date(int(label[:4]), int(label[5:]), 1)
        if len(label) == 4:
            return "year", dt.date(int(label), 1, 1)
    except ValueError:
        pass
    raise ValueError(f"{label!r} is not a period: use 2026-11-23, 2026-W47, 2026-11 or 2026")


def bounds_of(label: str, timezone: dt.tzinfo) -> tuple[PeriodKind, dt.datetime, dt.datetime]:
    """Kind, start and end (UTC) of the period ``label`` in ``timezone``."""
    kind, first = parse_period(label)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=timezone)
    return (kind, *period_bounds(start.astimezone(UTC), kind, timezone)[1:])
