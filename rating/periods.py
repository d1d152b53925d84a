"""Billing periods: which period an event's timestamp falls in, in the pricebook's time zone.

Periods are calendar periods labelled ``2026-11-23`` (day), ``2026-W47`` (ISO
week, Monday to Sunday), ``2026-11`` (month) and ``2026`` (year). A period
starts at local midnight of its first day, so a day across a daylight-saving
change lasts 23 or 25 hours.
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from functools import lru_cache
from typing import Literal

PeriodKind = Literal["day", "week", "month", "year"]
#: The smallest step of time: the instant before a period's end is its last.
ONE_TICK = dt.timedelta(microseconds=1)
UTC = dt.UTC


@lru_cache(maxsize=64)
def zone(name: str) -> dt.tzinfo:
    """The tz database zone ``name`` (cached: a lookup per event would be wasteful)."""
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def _on_day(year: int, month: int, day: int) -> dt.date:
    """``day`` of the month, or the month's last day when it is shorter (an anniversary on the 31st)."""
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _first_day(day: dt.date, kind: PeriodKind, anchor: dt.date | None = None) -> dt.date:
    if kind == "day":
        return day
    if kind == "week":
        weekday = anchor.weekday() if anchor else 0
        return day - dt.timedelta(days=(day.weekday() - weekday) % 7)
    if kind == "month":
        first = _on_day(day.year, day.month, anchor.day if anchor else 1)
        if first > day:
            year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
            first = _on_day(year, month, anchor.day if anchor else 1)
        return first
    month, dom = (anchor.month, anchor.day) if anchor else (1, 1)
    first = _on_day(day.year, month, dom)
    return first if first <= day else _on_day(day.year - 1, month, dom)


def _next_first_day(first: dt.date, kind: PeriodKind, anchor: dt.date | None = None) -> dt.date:
    if kind == "day":
        return first + dt.timedelta(days=1)
    if kind == "week":
        return first + dt.timedelta(days=7)
    if kind == "month":
        year, month = (first.year, first.month + 1) if first.month < 12 else (first.year + 1, 1)
        return _on_day(year, month, anchor.day if anchor else 1)
    return _on_day(first.year + 1, anchor.month if anchor else 1, anchor.day if anchor else 1)


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
    timestamp: dt.datetime, kind: PeriodKind, timezone: dt.tzinfo, anchor: dt.date | None = None
) -> tuple[str, dt.datetime, dt.datetime]:
    """Label, start (inclusive) and end (exclusive), in UTC, of the period ``timestamp`` falls in.

    With an ``anchor`` (a subscription's start), periods run from anniversary to
    anniversary: monthly from its day of the month (the last day in shorter
    months), weekly from its weekday, yearly from its date. A period is labelled
    by the calendar period it starts in.
    """
    first = _first_day(timestamp.astimezone(timezone).date(), kind, anchor)
    following = _next_first_day(first, kind, anchor)
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

    __slots__ = ("kind", "timezone", "anchor", "_label", "_start", "_end")

    def __init__(self, kind: PeriodKind, timezone: dt.tzinfo, anchor: dt.date | None = None) -> None:
        self.kind, self.timezone, self.anchor = kind, timezone, anchor
        origin = dt.datetime(2000, 1, 1, tzinfo=UTC)
        self._label, self._start, self._end = period_bounds(origin, kind, timezone, anchor)

    def label(self, timestamp: dt.datetime) -> str:
        """The label of the period ``timestamp`` falls in."""
        if not (self._start <= timestamp < self._end):
            self._label, self._start, self._end = period_bounds(timestamp, self.kind, self.timezone, self.anchor)
        return self._label

    def previous(self, timestamp: dt.datetime) -> str:
        """The label of the period before the one ``timestamp`` falls in."""
        self.label(timestamp)
        return period_bounds(self._start - dt.timedelta(microseconds=1), self.kind, self.timezone, self.anchor)[0]


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


def bounds_of(
    label: str, timezone: dt.tzinfo, anchor: dt.date | None = None
) -> tuple[PeriodKind, dt.datetime, dt.datetime]:
    """Kind, start and end (UTC) of the period ``label`` (the one that starts in it, with an ``anchor``)."""
    kind, first = parse_period(label)
    if anchor is not None:
        first = _next_first_day(_first_day(first - dt.timedelta(days=1), kind, anchor), kind, anchor)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=timezone)
    return (kind, *period_bounds(start.astimezone(UTC), kind, timezone, anchor)[1:])
