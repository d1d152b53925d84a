"""Subscriptions: which plan a customer is on at an instant, and over which spans of a period.

Dates in a subscription (``since``, ``until``, a change's ``on``) mean local
midnight in the customer's time zone. A customer not listed in the pricebook is
on ``default_plan`` at every instant, with no fee (pay as you go).

On a plan change the period's usage so far stays: the meters' period state is
per customer, not per plan, so the new plan's allowance and tiers apply to the
whole period's usage from the change on (the allowance is not prorated). The
fees of both plans are prorated by time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext

from rating.errors import EventError
from rating.money import MONEY_CONTEXT, quantize
from rating.periods import UTC, zone
from rating.pricebook.catalog import Eras, unfit
from rating.pricebook.model import CustomerSpec, Pricebook
from rating.refusals import Refusal

FOREVER = dt.datetime.max.replace(tzinfo=UTC)
ORIGIN = dt.datetime.min.replace(tzinfo=UTC)


def local_midnight(day: dt.date, timezone: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) at which ``day`` begins in ``timezone``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=timezone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Span:
    """A customer on ``plan`` from ``start`` (inclusive) to ``end`` (exclusive), in UTC."""

    plan: str
    start: dt.datetime
    end: dt.datetime


def spans(book: Pricebook, customer: str) -> list[Span]:
    """The customer's whole subscription history as consecutive spans (one open span for default-plan customers)."""
    spec = book.customers.get(customer)
    if spec is None:
        return [Span(book.default_plan, ORIGIN, FOREVER)] if book.default_plan else []
    timezone = zone(book.timezone_of(customer))
    starts = [(spec.plan, local_midnight(spec.since, timezone) if spec.since else ORIGIN)]
    starts += [(change.plan, local_midnight(change.on, timezone)) for change in spec.changes]
    end = local_midnight(spec.until, timezone) if spec.until else FOREVER
    ends = [start for _, start in starts[1:]] + [end]
    return [Span(plan, start, stop) for (plan, start), stop in zip(starts, ends, strict=True)]


def plan_at(book: Pricebook, customer: str, timestamp: dt.datetime) -> str:
    """The plan ``customer`` is on at ``timestamp``; an :class:`EventError` outside any subscription."""
    history = spans(book, customer)
    if not history:
        raise EventError(
            Refusal.UNKNOWN_CUSTOMER, f"unknown customer {customer!r}: not under customers and no default_plan"
        )
    for span in history:
        if span.start <= timestamp < span.end:
            return span.plan
    if timestamp < history[0].start:
        raise EventError(
            Refusal.NOT_SUBSCRIBED, f"customer {customer!r} is not subscribed yet at {timestamp.isoformat()}"
        )
    raise EventError(
        Refusal.NOT_SUBSCRIBED, f"the subscription of customer {customer!r} ended before {timestamp.isoformat()}"
    )


def spans_within(book: Pricebook, customer: str, start: dt.datetime, end: dt.datetime, eras: Eras = ()) -> list[Span]:
    """The parts of the customer's subscription inside ``[start, end)``.

    ``eras``: the customer's earlier specs (:attr:`Catalog.eras <rating.pricebook.catalog.Catalog.eras>`),
    each in force until its instant, ``book``'s own entry after the last; a plan that runs on across a change
    of another field stays one part (one fee, prorated once)."""
    result: list[Span] = []
    begin = ORIGIN
    for until, book_then in [*((until, with_spec(book, customer, spec)) for until, spec in eras), (FOREVER, book)]:
        for span in spans(book_then, customer):
            low, high = max(span.start, start, begin), min(span.end, end, until)
            if low >= high:
                continue
            if result and result[-1].plan == span.plan and result[-1].end == low:
                result[-1] = Span(span.plan, result[-1].start, high)
            else:
                result.append(Span(span.plan, low, high))
        begin = until
    return result


def with_spec(book: Pricebook, customer: str, spec: CustomerSpec) -> Pricebook:
    """``book`` with ``spec`` as ``customer``'s entry (``book`` itself when it cannot rate that spec)."""
    if unfit(book, spec):
        return book
    return book.model_copy(update={"customers": {**book.customers, customer: spec}})


def prorated(amount: Decimal, part: Span, start: dt.datetime, end: dt.datetime, scale: int) -> Decimal:
    """``amount`` for the share of ``[start, end)`` that ``part`` covers, by time, rounded to ``scale`` places.

    A proration is the one division in rating; its result is rounded half-even to
    the asset's scale (cents for USD) there and then. A whole period is exact.
    """
    covered = (part.end - part.start) // dt.timedelta(microseconds=1)
    whole = (end - start) // dt.timedelta(microseconds=1)
    if covered == whole:
        return amount
    with localcontext(MONEY_CONTEXT) as context:
        context.traps[Inexact] = False
        share = amount * Decimal(covered) / Decimal(whole)
    return quantize(share, scale)


def contract_span(book: Pricebook, name: str) -> Span:
    """When contract ``name`` is in force (its dates at local midnight in the customer's time zone)."""
    contract = book.contracts[name]
    timezone = zone(book.timezone_of(contract.customer))
    end = local_midnight(contract.until, timezone) if contract.until else FOREVER
    return Span(name, local_midnight(contract.starts, timezone), end)
