"""Test data and helpers shared by the test modules."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from rating.events import UsageEvent
from rating.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "pricebooks" / "ai-gateway.yaml"
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
#: A clock for engines that close the test periods: every period the tests rate in has ended by then.
LATER = dt.datetime(2028, 1, 1, tzinfo=dt.UTC)


def later() -> dt.datetime:
    return LATER


SIMPLE_PRICEBOOK = """\
pricebook: test
version: 2026-11-01
currency: USD
meters:
  requests: {event: api.call, count: true}
  tokens: {event: api.call, sum: tokens, group_by: [model]}
plans:
  basic:
    charges:
      - {meter: requests, model: per_call, price: "0.01"}
      - meter: tokens
        model: tiered
        mode: graduated
        tiers:
          - {up_to: 1000, unit_price: "0.001"}
          - {unit_price: "0.0005"}
customers:
  acme: {plan: basic}
"""


def event(
    id: str, customer: str = "acme", type: str = "api.call", at: dt.datetime = NOV, **properties: Any
) -> UsageEvent:
    """A test event; properties as keyword arguments."""
    return UsageEvent(id=id, customer=customer, type=type, timestamp=at, properties=properties)


def total(amounts: Any) -> Decimal:
    return sum(amounts, Decimal(0))


def balances_under(storage: Storage, prefix: str) -> dict[tuple[str, str], Decimal]:
    """The stored balances of accounts whose name starts with ``prefix`` (tests look around; storage never does)."""
    return {key: amount for key, amount in storage.balances().items() if key[0].startswith(prefix)}
