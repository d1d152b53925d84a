"""Adopting the running totals of a database from before charges had identities: a migration step.

``rating db migrate`` (and ``rating rate``, which migrates too) calls :func:`adopt_legacy_totals`
with the pricebook; an :class:`~rating.engine.Engine` never migrates anything when it is built.
"""

from __future__ import annotations

import re

from rating.core.compiled import running_total_key
from rating.periods import bounds_of, zone
from rating.pricebook.catalog import Catalog
from rating.storage.base import Storage

#: How running totals were named before charges had identities: ``total:HOLDER[INDEX]``, then ``:byok`` or not.
LEGACY_TOTAL = re.compile(r"total:([A-Za-z0-9_.\-]+)\[(\d+)\](:byok)?")


def adopt_legacy_totals(storage: Storage, catalog: Catalog) -> None:
    """Give running totals of a migrated database (kept as ``total:HOLDER[INDEX]``) their charge identities.

    The index is read in the version in force when the total's period started; a total
    whose charge that version does not have is left aside, never guessed.
    """
    renames = legacy_renames(storage, catalog)
    if renames:
        storage.adopt_running_totals(renames)


def legacy_renames(storage: Storage, catalog: Catalog) -> dict[tuple[str, str, str], str]:
    """The running totals :func:`adopt_legacy_totals` would give identities: (customer, old name, period) ->
    the new name; empty for every database written since (one read of an empty table)."""
    renames = {}
    for customer, old, period, _ in storage.legacy_running_totals():
        match = LEGACY_TOTAL.fullmatch(old)
        if match is None:
            continue
        holder, index, suffix = match.group(1), int(match.group(2)), match.group(3) or ""
        book = catalog.latest
        try:
            _, start, _ = bounds_of(period, zone(book.timezone_of(customer)), book.anchor_of(customer))
        except ValueError:
            continue
        version = catalog.in_force(start) or catalog.versions[0]
        holding = version.plans.get(holder) or version.contracts.get(holder)
        if holding is not None and index < len(holding.charges):
            renames[customer, old, period] = running_total_key(holder, holding.charges[index], version) + suffix
    return renames
