"""Billing periods: which period an event's timestamp falls in, in the pricebook's time zone.

Periods are calendar periods labelled ``2026-11-23`` (day), ``2026-W47`` (ISO
week, Monday to Sunday), ``2026-11`` (month) and ``2026`` (year).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache
from typing import Literal

PeriodKind = Literal["day", "week", "month", "year"]


@lru_cache(maxsize=64)
def zone(name: str) -> dt.tzinfo:
    """The tz database zone ``name`` (cached: a lookup per event would be wasteful)."""
    return dt.timezone.utc if name == "UTC" else zoneinfo.ZoneInfo(name)


def period_label(timestamp: dt.datetime, kind: PeriodKind, timezone: dt.tzinfo) -> str:
    """The label of the ``kind`` period that ``timestamp`` falls in, seen in ``timezone``."""
    local = timestamp.astimezone(timezone)
    if kind == "month":
        return f"{local.year:04d}-{local.month:02d}"
    if kind == "day":
        return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
    if kind == "week":
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{local.year:04d}"
