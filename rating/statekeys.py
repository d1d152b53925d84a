"""Period state keys: one typed key, in namespaces that no pricebook name can reach.

Period state is the only state rating needs: cumulative quantities per
customer, state name, group and period. Three kinds of state share it, each in
a namespace of its own, so that a pricebook can never make two of them meet
(a meter named ``spend`` once shared its state with the spend cap):

- **meter**: a meter's aggregate, named by the meter (``tokens``; BYOK usage in
  ``tokens:byok``). Pricebook names never contain ``:``
  (:data:`rating.pricebook.model.Name`), so a bare name is always a meter's;
- **total**: a charge's running period total, for caps and discounts
  (``total:HOLDER:IDENTITY``);
- **policy**: what policies keep (``policy:spend``, ``policy:prepaid:CONTRACT``,
  ``policy:latest``).

Names are built and read here only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Namespace(StrEnum):
    """The kinds of period state."""

    METER = "meter"
    TOTAL = "total"
    POLICY = "policy"


#: How period state of BYOK usage is told apart: the meter's name with this suffix.
BYOK_SUFFIX = ":byok"


class StateKey(NamedTuple):
    """The unit of period state: (customer, state name, group values, period label)."""

    customer: str
    name: str
    group: tuple[str, ...]
    period: str


def state_suffix(billing_source: str) -> str:
    """What follows a meter's name (and a charge total's) in its state name: BYOK usage is metered in state
    of its own, so it never moves platform usage up a tier."""
    return "" if billing_source == "platform" else BYOK_SUFFIX


def total_state(holder: str, identity: str) -> str:
    """The state name of the running total of charge ``identity`` of plan or contract ``holder``."""
    return f"{Namespace.TOTAL}:{holder}:{identity}"


def kept_state(total: str, part: str) -> str:
    """The state name of a period quantity a charge keeps (``part``), beside its running total ``total``."""
    return f"{total}:{part}"


def policy_state(policy: str, *parts: str) -> str:
    """The state name a policy keeps (``policy:spend``, ``policy:prepaid:CONTRACT``)."""
    return ":".join((Namespace.POLICY, policy, *parts))


#: The customer's charges in a period, in the asset its plan bills in (spend caps and alerts).
SPEND = policy_state("spend")
#: The latest event time rated in a customer's period, in microseconds since the epoch (arrival order).
LATEST = policy_state("latest")


#: The period of a prepaid draw-down's state: the contract's whole term, not a billing period.
TERM = "term"


def prepaid_state(contract: str) -> str:
    """What has been spent under a contract with a prepaid commitment, over its whole term."""
    return policy_state("prepaid", contract)


def prepaid_contract(name: str) -> str | None:
    """The contract whose prepaid draw-down state ``name`` is, or None."""
    prefix = prepaid_state("")
    return name[len(prefix) :] if name.startswith(prefix) else None


def namespace_of(name: str) -> Namespace:
    """The namespace of a state name."""
    head, colon, _ = name.partition(":")
    if colon and head in (Namespace.TOTAL, Namespace.POLICY):
        return Namespace(head)
    return Namespace.METER


def meter_of(name: str) -> str | None:
    """The meter a state name aggregates (without the BYOK suffix), or None for totals and policies."""
    if namespace_of(name) is not Namespace.METER:
        return None
    return name.removesuffix(BYOK_SUFFIX)


__all__ = [
    "BYOK_SUFFIX",
    "LATEST",
    "SPEND",
    "Namespace",
    "kept_state",
    "StateKey",
    "meter_of",
    "namespace_of",
    "policy_state",
    "prepaid_contract",
    "prepaid_state",
    "state_suffix",
    "total_state",
]
