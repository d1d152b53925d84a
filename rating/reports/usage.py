"""Usage and margin reports: events, meter quantities, cost and margin per group over a time window.

``usage_report(storage, book, since, until, group_by="agent")`` answers the
marketplace's "what did each agent use and cost over the last 30 days": for each
value of ``group_by`` (a property or an attribution field), the number of
events, the total of each summing or counting meter, and the charges per asset.
BYOK events are reported like any other (their meter readings count; their
model cost is not charged).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, Inexact, localcontext

from rating.errors import RatingError
from rating.events import UsageEvent
from rating.money import MONEY_CONTEXT, ZERO, exact, to_decimal
from rating.periods import bounds_of
from rating.pricebook.model import Pricebook
from rating.statekeys import meter_of
from rating.storage.base import Storage

NONE = "(none)"
_RELATIVE = re.compile(r"^(\d+)([dh])$")


@dataclass
class UsageRow:
    """One group's usage over the window."""

    group: str
    events: int = 0
    quantities: dict[str, Decimal] = field(default_factory=dict)
    cost: dict[str, Decimal] = field(default_factory=dict)


def window(period: str, timezone: dt.tzinfo, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``30d`` or ``24h`` back from ``now``, or a billing period label such as ``2026-11``."""
    relative = _RELATIVE.match(period)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now - (dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount)), now
    try:
        _, start, end = bounds_of(period, timezone)
    except ValueError:
        raise RatingError(f"{period!r} is not a window: use 30d, 24h or a period such as 2026-11") from None
    return start, end


@exact
def usage_report(
    storage: Storage,
    book: Pricebook,
    since: dt.datetime,
    until: dt.datetime,
    group_by: str,
    customer: str | None = None,
) -> list[UsageRow]:
    """Usage per value of ``group_by`` between ``since`` (inclusive) and ``until`` (exclusive)."""
    summed = {name for name, meter in book.meters.items() if meter.aggregation in ("sum", "count")}
    rows: dict[str, UsageRow] = {}
    for activity in storage.activity(since, until, customer):
        key = _dimension(activity.event, group_by)
        row = rows.get(key) or rows.setdefault(key, UsageRow(key))
        row.events += 1
        for state_name, reading in activity.readings:
            meter = meter_of(state_name)
            if meter in summed:
                row.quantities[meter] = row.quantities.get(meter, ZERO) + to_decimal(reading)
        for asset, amount in activity.amounts:
            row.cost[asset] = row.cost.get(asset, ZERO) + amount
    return sorted(rows.values(), key=lambda row: row.group)


@dataclass
class MarginRow:
    """Revenue, provider cost and margin of one group, in the pricebook currency."""

    group: str
    revenue: Decimal = ZERO
    cost: Decimal = ZERO

    @property
    def margin(self) -> Decimal:
        """Revenue less cost."""
        return self.revenue - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        """Margin as a percentage of revenue, to one decimal (a report figure); None without revenue."""
        if not self.revenue:
            return None
        with localcontext(MONEY_CONTEXT) as context:
            context.traps[Inexact] = False
            return (self.margin * 100 / self.revenue).quantize(Decimal("0.1"))


def _dimension(event: UsageEvent, name: str) -> str:
    value = {"customer": event.customer, "event": event.id}.get(name) or event.dimension(name)
    return NONE if value is None else str(value)


@exact
def margin_report(
    storage: Storage,
    book: Pricebook,
    since: dt.datetime,
    until: dt.datetime,
    group_by: str,
    below: Decimal | None = None,
) -> list[MarginRow]:
    """Margin per value of ``group_by`` (``customer``, ``event``, a property or attribution field).

    Amounts in other assets count at what they sell for (credits at their price);
    with ``below``, only groups whose margin percentage is under it (or that earn nothing) are listed.
    """
    rows: dict[str, MarginRow] = {}
    for activity in storage.activity(since, until):
        key = _dimension(activity.event, group_by)
        row = rows.get(key) or rows.setdefault(key, MarginRow(key))
        row.revenue += sum((book.value_of(a, asset) or ZERO for asset, a in activity.amounts), ZERO)
        row.cost += sum((book.value_of(a, asset) or ZERO for asset, a in activity.costs), ZERO)
    listed = sorted(rows.values(), key=lambda row: row.group)
    if below is None:
        return listed
    return [row for row in listed if row.margin_percent is None or row.margin_percent < below]
