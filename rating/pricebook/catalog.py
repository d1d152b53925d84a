"""Pricebook versions: each version is in force from its ``version`` date until the next one.

An event is rated by the version in force at its timestamp. A version starts at
local midnight of its date in its own time zone. Posted charges never change
when a later version is added: they are ledger history.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rating.errors import PricebookError
from rating.periods import UTC, zone
from rating.pricebook.model import CustomerSpec, ModelSource, Pricebook, installed_models, load_pricebook

#: A customer's earlier terms: each spec with the instant (UTC) until which it was in force, oldest first.
Eras = Sequence[tuple[dt.datetime, CustomerSpec]]


def takes_effect(book: Pricebook) -> dt.datetime:
    """The instant (UTC) from which ``book`` is in force."""
    day = book.version
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone(book.timezone)).astimezone(UTC)


def unfit(book: Pricebook, spec: CustomerSpec) -> str | None:
    """Why ``book`` cannot rate a customer of ``spec`` (a plan it lacks, plans of several period kinds), or None."""
    missing = [plan for plan in spec.plans() if plan not in book.plans]
    if missing:
        return f"unknown plan {missing[0]!r}; plans: {', '.join(sorted(book.plans))}"
    kinds = {book.plans[plan].period for plan in spec.plans()}
    return f"plan changes must keep one period kind, found {sorted(kinds)}" if len(kinds) > 1 else None


class Catalog:
    """The versions of one pricebook, ordered by the date they take effect.

    ``eras``: for customers kept as data whose terms changed (:mod:`rating.customers`), the specs they had
    before their current one, each until the instant the next took effect. The versions hold each customer's
    current spec; an event before the last of those instants is priced by the spec in force at its time.
    """

    def __init__(self, versions: Sequence[Pricebook], eras: Mapping[str, Eras] | None = None) -> None:
        if not versions:
            raise PricebookError(["a catalog needs at least one pricebook version"])
        names = sorted({book.pricebook for book in versions})
        if len(names) > 1:
            raise PricebookError([f"a catalog holds versions of one pricebook, found: {', '.join(names)}"])
        ordered = sorted(versions, key=takes_effect)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if earlier.version == later.version:
                raise PricebookError([f"two versions of {names[0]} take effect on {later.version.isoformat()}"])
        self.versions: tuple[Pricebook, ...] = tuple(ordered)
        self._starts = [takes_effect(book) for book in ordered]
        self.eras: dict[str, tuple[tuple[dt.datetime, CustomerSpec], ...]] = {
            customer: tuple(earlier) for customer, earlier in (eras or {}).items() if earlier
        }

    @property
    def name(self) -> str:
        """The pricebook's name."""
        return self.versions[0].pricebook

    @property
    def latest(self) -> Pricebook:
        """The version that takes effect last."""
        return self.versions[-1]

    def index_at(self, timestamp: dt.datetime) -> int | None:
        """Position of the version in force at ``timestamp``, or None before the first one."""
        index = bisect.bisect_right(self._starts, timestamp) - 1
        return index if index >= 0 else None

    def in_force(self, timestamp: dt.datetime) -> Pricebook | None:
        """The version in force at ``timestamp``, or None before the first one takes effect."""
        index = self.index_at(timestamp)
        return None if index is None else self.versions[index]

    def starts(self, index: int) -> dt.datetime:
        """When version ``index`` takes effect."""
        return self._starts[index]


def pricebook_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files behind ``paths``: files as given, directories as their ``*.yaml`` and ``*.yml`` files."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not found:
                raise PricebookError([f"{path}: no .yaml pricebooks in this directory"])
            files.extend(found)
        else:
            files.append(path)
    return files


def load_catalog(paths: Iterable[str | Path], models: ModelSource | None = None) -> Catalog:
    """Load every version from pricebook files or directories; all their problems at once.

    ``models`` is the model map (or the registry supplying it); by default the installed models.
    """
    source = installed_models() if models is None else models
    books, problems = [], []
    for path in pricebook_files(paths):
        try:
            books.append(load_pricebook(path, source))
        except PricebookError as error:
            problems.extend(error.problems)
    if problems:
        raise PricebookError(problems)
    return Catalog(books)
