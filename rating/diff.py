"""What changed between two pricebook versions: charges matched by their stable identity, field by field.

``rating diff A.yaml B.yaml`` lists, per plan, contract and the cost profiles,
the charges added, removed and changed (each changed parameter with its old
and new value), and the changes to plans' fees, minimums and periods, to
meters, assets, customers and the top-level settings. Charges are matched by
their identity (``id:``, or meter, model and asset), so a reordered plan shows
no change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from rating.pricebook import Pricebook
from rating.pricing import PricingModel


@dataclass(frozen=True)
class Change:
    """One difference: ``what`` changed (``added``, ``removed`` or ``changed``), ``where``, and how."""

    what: str
    where: str
    detail: str


def _fields(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def _field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``name: old -> new`` for every field that differs (absent reads as the default)."""
    changes = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append(f"{name}: {_shown(before.get(name))} -> {_shown(after.get(name))}")
    return changes


def _shown(value: Any) -> str:
    return "(default)" if value is None else str(value)


def _charges(
    where: str, before: Iterable[PricingModel], after: Iterable[PricingModel], currency: tuple[str, str]
) -> list[Change]:
    old = {charge.identity(currency[0]): charge for charge in before}
    new = {charge.identity(currency[1]): charge for charge in after}
    changes = [Change("removed", where, f"charge {identity}") for identity in old if identity not in new]
    changes += [Change("added", where, f"charge {identity}") for identity in new if identity not in old]
    for identity in old.keys() & new.keys():
        for detail in _field_changes(_fields(old[identity]), _fields(new[identity])):
            changes.append(Change("changed", where, f"charge {identity}: {detail}"))
    return sorted(changes, key=lambda c: (c.detail, c.what))


def _named(where: str, before: Mapping[str, BaseModel], after: Mapping[str, BaseModel], skip: set[str]) -> list[Change]:
    changes = [Change("removed", f"{where} {name}", "") for name in sorted(before.keys() - after.keys())]
    changes += [Change("added", f"{where} {name}", "") for name in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        old = {k: v for k, v in _fields(before[name]).items() if k not in skip}
        new = {k: v for k, v in _fields(after[name]).items() if k not in skip}
        changes += [Change("changed", f"{where} {name}", detail) for detail in _field_changes(old, new)]
    return changes


def diff(before: Pricebook, after: Pricebook) -> list[Change]:
    """Every difference between two versions of a pricebook, plans and charges first."""
    currencies = (before.currency, after.currency)
    changes = [
        Change("changed", "pricebook", detail)
        for detail in _field_changes(
            {k: v for k, v in _fields(before).items() if k in ("pricebook", "version", "currency", "timezone")},
            {k: v for k, v in _fields(after).items() if k in ("pricebook", "version", "currency", "timezone")},
        )
    ]
    changes += _named("plan", before.plans, after.plans, skip={"charges"})
    for name in sorted(before.plans.keys() & after.plans.keys()):
        changes += _charges(f"plan {name}", before.plans[name].charges, after.plans[name].charges, currencies)
    changes += _named("contract", before.contracts, after.contracts, skip={"charges"})
    for name in sorted(before.contracts.keys() & after.contracts.keys()):
        changes += _charges(
            f"contract {name}", before.contracts[name].charges, after.contracts[name].charges, currencies
        )
    changes += _charges("costs", before.costs, after.costs, currencies)
    changes += _named("meter", before.meters, after.meters, skip=set())
    changes += _named("asset", before.assets, after.assets, skip=set())
    changes += _named("customer", before.customers, after.customers, skip=set())
    changes += _named("agent", before.agents, after.agents, skip=set())
    if before.default_plan != after.default_plan:
        changes.append(Change("changed", "pricebook", f"default_plan: {before.default_plan} -> {after.default_plan}"))
    if before.revenue_split != after.revenue_split:
        old = _fields(before.revenue_split) if before.revenue_split else {}
        new = _fields(after.revenue_split) if after.revenue_split else {}
        changes += [Change("changed", "revenue_split", detail) for detail in _field_changes(old, new)]
    return changes
