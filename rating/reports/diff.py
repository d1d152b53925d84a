"""What changed between two pricebook versions: charges matched by their stable identity, field by field.

``rating diff A.yaml B.yaml`` lists, per plan, contract and the cost profiles,
the charges added, removed and changed (each changed parameter with its old
and new value), and the changes to plans' fees, minimums and periods, to
meters, assets, customers and the top-level settings. Charges are matched by
their identity (``id:``, or meter, model and asset), so a reordered plan shows
no change.

:func:`separable_edits` gives, for each change that can stand alone (a charge
added, removed or changed; a plan's or contract's own fields), the current
pricebook with only that change applied: ``rating diff --events`` simulates
each to state the money impact of each change. What the changes do together
beyond the sum of their parts (and changes to meters, customers, settings) is
reported as one remainder, so that the impacts always add up to the total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from rating.pricebook.model import Pricebook
from rating.pricebook.pricing import PricingModel


@dataclass(frozen=True)
class Change:
    """One difference: ``what`` changed (``added``, ``removed`` or ``changed``), ``where``, and how."""

    what: str
    where: str
    detail: str


def _fields(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def _field_changes(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``name: old -> new`` for every field that differs (absent reads as the default); nested mappings
    (an ``llm`` charge's models and their prices) by the path of what changed in them."""
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changes += _field_changes(old, new, f"{prefix}{name}.")
        else:
            changes.append(f"{prefix}{name}: {_shown(old)} -> {_shown(new)}")
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


@dataclass(frozen=True)
class Edit:
    """One change that can be applied alone: where it is, what it is, and ``before`` with only it applied."""

    where: str
    what: str
    alone: Pricebook


def _swap_charge(
    charges: tuple[PricingModel, ...], identity: str, new: PricingModel | None, currency: str
) -> tuple[PricingModel, ...]:
    """``charges`` with the charge ``identity`` replaced by ``new`` (dropped when None, appended when absent)."""
    kept = [new if c.identity(currency) == identity else c for c in charges]
    if new is not None and all(c.identity(currency) != identity for c in charges):
        kept.append(new)
    return tuple(c for c in kept if c is not None)


def _charge_edits(
    where: str, before: tuple[PricingModel, ...], after: tuple[PricingModel, ...], currency: str
) -> list[tuple[str, str, tuple[PricingModel, ...]]]:
    """(what, identity, the ``before`` charges with only that charge changed) per charge that differs."""
    old = {c.identity(currency): c for c in before}
    new = {c.identity(currency): c for c in after}
    edits = []
    for identity in sorted(old.keys() | new.keys()):
        if old.get(identity) != new.get(identity):
            what = "added" if identity not in old else "removed" if identity not in new else "changed"
            edits.append(
                (what, f"{where}: charge {identity}", _swap_charge(before, identity, new.get(identity), currency))
            )
    return edits


def separable_edits(before: Pricebook, after: Pricebook) -> list[Edit]:
    """Each change of charges, plan fields and contract fields, applied alone to ``before``.

    Charges and plans are compared only where both versions have the plan or
    contract, in the same currency; everything else counts in the remainder.
    """
    if before.currency != after.currency:
        return []
    currency = before.currency
    # A charge on a new meter needs that meter to price at all; a new meter alone charges nothing.
    base = before.model_copy(
        update={"meters": {**after.meters, **before.meters}, "assets": {**after.assets, **before.assets}}
    )
    edits: list[Edit] = []
    for kind, holders in (("plans", "plan"), ("contracts", "contract")):
        old_holders, new_holders = getattr(before, kind), getattr(after, kind)
        for name in sorted(old_holders.keys() & new_holders.keys()):
            old, new = old_holders[name], new_holders[name]

            def with_holder(holder: Any, kind: str = kind, name: str = name) -> Pricebook:
                return base.model_copy(update={kind: {**getattr(base, kind), name: holder}})

            for what, where, charges in _charge_edits(f"{holders} {name}", old.charges, new.charges, currency):
                edits.append(Edit(where, what, with_holder(old.model_copy(update={"charges": charges}))))
            own_fields_changed = new.model_copy(update={"charges": old.charges})
            if own_fields_changed != old:
                edits.append(Edit(f"{holders} {name}", "changed", with_holder(own_fields_changed)))
    for what, where, charges in _charge_edits("costs", before.costs, after.costs, currency):
        edits.append(Edit(where, what, base.model_copy(update={"costs": charges})))
    return edits


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
