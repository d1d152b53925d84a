"""Customers and subscriptions as data: kept in the ledger's database, versioned, over a pricebook's seed.

A pricebook's ``customers:`` block stays the seed (and the way to write pricebooks as code); a customer
stored here (:meth:`Customers.put`, :meth:`Customers.subscribe`) wins over its YAML entry. Each change is a
new version appended to storage (:class:`~rating.records.CustomerVersion`): the whole
:class:`~rating.pricebook.model.CustomerSpec` as canonical JSON, with the instant it takes effect. Storage
never sees the spec's type, only its text.

A change is refused (:class:`~rating.errors.CustomerError`, one line, a named code) when

- the spec is not a valid customer of the pricebook (``invalid_customer``: the pricebook's own message,
  located as in YAML, ``customers.ID.FIELD: ...``);
- it would take effect at or before the latest event already rated in one of the customer's open periods
  from its effective instant on (``before_rated_usage``: the engine keeps that instant as the period state
  ``policy:latest``): what was rated stays rated by the terms it was rated by;
- it moves the customer's time zone or period anchor (``anniversary``/``since``) before its current period
  ends (``mid_period_anchor``): a period is cut by one set of bounds.

The engine (:class:`~rating.engine.Engine`) rates with these customers merged over the pricebook's
(:func:`with_customers`) and compares :meth:`~rating.storage.Storage.customers_version` once per chunk to
notice a change another process made.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rating.accounts import CustomerId
from rating.core.policies import EPOCH
from rating.core.pricer import Pricer
from rating.errors import CustomerError, EventError
from rating.periods import ONE_TICK, zone
from rating.pricebook.catalog import Catalog, Eras, unfit
from rating.pricebook.model import CustomerSpec, PlanChange, Pricebook, Problems, _check_references
from rating.records import CustomerVersion
from rating.refusals import CustomerRefusal
from rating.statekeys import LATEST
from rating.storage.base import Storage

#: How many billing periods a change's check walks from its effective instant to now (a change dated years
#: back in a daily plan is refused by its first rated period long before).
MAX_PERIODS_CHECKED = 1_000

_CUSTOMER_ID: TypeAdapter[str] = TypeAdapter(CustomerId)


def spec_json(spec: CustomerSpec) -> str:
    """``spec`` as storage keeps it: canonical JSON (sorted keys, no defaults), equal text for equal specs."""
    body = spec.model_dump(mode="json", exclude_defaults=True)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_of(version: CustomerVersion) -> CustomerSpec:
    """The spec a stored version holds."""
    return CustomerSpec.model_validate_json(version.spec)


def with_customers(
    catalog: Catalog, customers: Mapping[str, CustomerSpec], eras: Mapping[str, Eras] | None = None
) -> Catalog:
    """``catalog`` with ``customers`` (kept as data) over each version's ``customers:`` block: they win.

    A version is given only the stored customers it can rate (every plan they are ever on is one of its plans,
    of one period kind): a version that lacks one rates that customer as if it were not stored (its seed, the
    default plan, or ``unknown_customer``), never by a plan it does not have. ``rating check --db`` names them.
    ``eras``: the specs the customers had before their current ones (:func:`eras_of`), for events dated then.
    """
    if not customers:
        return catalog
    versions = []
    for book in catalog.versions:
        fit = {name: spec for name, spec in customers.items() if unfit(book, spec) is None}
        versions.append(book.model_copy(update={"customers": {**book.customers, **fit}}))
    return Catalog(versions, eras)


def eras_of(seed: CustomerSpec | None, history: Sequence[CustomerVersion]) -> list[tuple[dt.datetime, CustomerSpec]]:
    """The specs a customer had before its latest stored version, each with the instant it ended.

    ``seed`` (its entry in the pricebook, if any) is in force until the first stored version takes effect; a
    customer added as data has no terms before its first version, which is then in force from the start
    (its ``since`` bounds it), so an event stamped a moment before it was added is still rated.
    """
    specs = [spec_of(version) for version in history]
    ends = [version.effective for version in history]
    if seed is None:
        ends = ends[1:]
    else:
        specs = [seed, *specs]
    return list(zip(ends, specs[:-1], strict=True))


class _Lines(Problems):
    """Problems as one-line messages located as in YAML (``customers.ID.FIELD: ...``), without a document."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        where = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        self.lines.append(f"{where}: {message}" if where else message)

    def raise_if_any(self) -> None:
        if self.lines:
            raise CustomerError(CustomerRefusal.INVALID_CUSTOMER, "; ".join(self.lines))


def validate(book: Pricebook, customer: str, data: Mapping[str, Any] | CustomerSpec) -> CustomerSpec:
    """``data`` as a customer of ``book``, or ``invalid_customer`` with the pricebook's own messages on one line."""
    lines = _Lines()
    try:
        _CUSTOMER_ID.validate_python(customer)
    except ValidationError as error:
        lines.add(("customers",), f"customer id {customer!r}: {error.errors()[0]['msg']}")
        lines.raise_if_any()
    try:
        spec = data if isinstance(data, CustomerSpec) else CustomerSpec.model_validate(dict(data))
    except ValidationError as error:
        lines.add_validation(("customers", customer), error)
        lines.raise_if_any()
        raise
    _check_references(book.model_copy(update={"customers": {customer: spec}, "contracts": {}}), lines)
    lines.raise_if_any()
    return spec


class Customers:
    """The customers of one ledger: those stored as data over a pricebook's seed."""

    def __init__(
        self,
        storage: Storage,
        pricebook: Pricebook | Catalog,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.storage = storage
        self.catalog = pricebook if isinstance(pricebook, Catalog) else Catalog([pricebook])
        self.clock = clock

    # -- reads -------------------------------------------------------------------------------

    def stored(self) -> dict[str, CustomerSpec]:
        """The customers kept as data (their latest versions), by id."""
        return {customer: spec_of(version) for customer, version in self.storage.latest_customers().items()}

    def all(self) -> dict[str, CustomerSpec]:
        """Every customer: the pricebook's seed with the stored ones over it, by id."""
        return {**self.catalog.latest.customers, **self.stored()}

    def get(self, customer: str) -> CustomerSpec | None:
        """``customer``'s spec: its latest stored version, else its pricebook entry, else None."""
        versions = self.storage.customer_versions(customer)
        return spec_of(versions[-1]) if versions else self.catalog.latest.customers.get(customer)

    def history(self, customer: str) -> list[CustomerVersion]:
        """Every stored version of ``customer``, oldest first."""
        return self.storage.customer_versions(customer)

    def catalog_now(self) -> Catalog:
        """The pricebook's versions with the stored customers merged over their seeds, and their earlier specs
        for events dated before their latest change."""
        histories = self.storage.customer_histories()
        seeds = self.catalog.latest.customers
        current = {customer: spec_of(history[-1]) for customer, history in histories.items()}
        eras = {customer: eras_of(seeds.get(customer), history) for customer, history in histories.items()}
        return with_customers(self.catalog, current, eras)

    # -- changes -----------------------------------------------------------------------------

    def put(
        self, customer: str, data: Mapping[str, Any] | CustomerSpec, effective: dt.datetime | None = None
    ) -> tuple[CustomerVersion, bool]:
        """Add ``customer`` or replace its spec from ``effective`` on (now by default); the version and whether
        it is new (the same spec again stores nothing and returns the latest version)."""
        spec = validate(self.catalog.latest, customer, data)
        return self._append(customer, spec, effective or self.clock())

    def subscribe(self, customer: str, plan: str, on: dt.date) -> tuple[CustomerVersion, bool]:
        """Put ``customer`` on ``plan`` from ``on`` (local midnight in its time zone): a plan change appended to
        its spec. Scheduled changes from that day on are replaced by it; a date at or before its ``since``
        restarts the subscription on ``plan`` from that date."""
        current = self.get(customer)
        if current is None:
            raise CustomerError(CustomerRefusal.UNKNOWN_CUSTOMER, f"no customer {customer!r}: add it first")
        data = current.model_dump(mode="json", exclude_defaults=True)
        if current.since is not None and on <= current.since:
            data.update(plan=plan, since=on.isoformat(), changes=[])
        else:
            kept = [change for change in current.changes if change.on < on]
            data["changes"] = [c.model_dump(mode="json") for c in [*kept, PlanChange(plan=plan, on=on)]]
        spec = validate(self.catalog.latest, customer, data)
        timezone = zone(spec.timezone or self.catalog.latest.timezone)
        effective = dt.datetime(on.year, on.month, on.day, tzinfo=timezone).astimezone(dt.UTC)
        return self._append(customer, spec, effective)

    def _append(self, customer: str, spec: CustomerSpec, effective: dt.datetime) -> tuple[CustomerVersion, bool]:
        text = spec_json(spec)
        with self.storage.writing():  # read, check and append in one write: a concurrent change waits
            versions = self.storage.customer_versions(customer)
            if versions and versions[-1].spec == text:
                return versions[-1], False
            previous = spec_of(versions[-1]) if versions else self.catalog.latest.customers.get(customer)
            if previous is None or spec_json(previous) != text:
                self.check_effective(customer, previous, spec, effective)
            version = CustomerVersion(customer, len(versions) + 1, effective, text, self.clock())
            return version, self.storage.append_customer_version(version)

    # -- the rule ----------------------------------------------------------------------------

    def check_effective(
        self, customer: str, previous: CustomerSpec | None, spec: CustomerSpec, effective: dt.datetime
    ) -> None:
        """Refuse a change of ``customer`` from ``previous`` to ``spec`` at ``effective`` that would reprice
        rated usage (``before_rated_usage``) or move period bounds mid-period (``mid_period_anchor``)."""
        others = {c: s for c, s in self.stored().items() if c != customer}
        seeds = {customer: previous} if previous is not None else {}
        catalog = with_customers(self.catalog, {**others, **seeds})  # the terms its rated usage was rated by
        pricer = Pricer(catalog)
        now = self.clock()
        periods = self._open_periods(pricer, customer, effective, max(now, effective))
        latest = self._latest_rated(customer, periods)
        if latest is not None and latest >= effective:
            raise CustomerError(
                CustomerRefusal.BEFORE_RATED_USAGE,
                f"customer {customer!r}: a change from {effective.isoformat()} is before the latest event already"
                f" rated in its open period ({latest.isoformat()}); date it later",
            )
        book = catalog.latest
        before = (previous.timezone if previous else None) or book.timezone, _anchor(previous)
        after = spec.timezone or book.timezone, _anchor(spec)
        if before != after:
            current = self._period_at(pricer, customer, now)
            at = self._period_at(pricer, customer, effective)
            starts_one = at is not None and at[1] == effective
            if current is not None and _rated_from(previous, effective) and (effective < current[2] or not starts_one):
                raise CustomerError(
                    CustomerRefusal.MID_PERIOD_ANCHOR,
                    f"customer {customer!r}: a time-zone or anchor change takes effect at the start of a period after"
                    f" the current one (its period {current[0]} ends {current[2].isoformat()})",
                )

    @staticmethod
    def _period_at(pricer: Pricer, customer: str, at: dt.datetime) -> tuple[str, dt.datetime, dt.datetime] | None:
        """``customer``'s billing period at ``at`` under ``pricer``'s terms (label, start, end), None if none."""
        try:
            version = pricer.version_at(at)
            return version.period_bounds(version.plan_at(customer, at), customer, at)
        except EventError:  # not subscribed then, or before the first version: no period to protect
            return None

    def _open_periods(self, pricer: Pricer, customer: str, since: dt.datetime, until: dt.datetime) -> list[str]:
        """The labels of ``customer``'s periods from the one at ``since`` to the one at ``until``."""
        labels: list[str] = []
        at = since
        for _ in range(MAX_PERIODS_CHECKED):
            found = self._period_at(pricer, customer, at)
            if found is not None:
                labels.append(found[0])
                at = found[2]
            else:
                at += dt.timedelta(days=1)
            if at > until:
                break
        return labels

    def _latest_rated(self, customer: str, periods: list[str]) -> dt.datetime | None:
        """The latest event time rated in the open ones of ``customer``'s ``periods`` (``policy:latest``)."""
        closed = self.storage.closed_periods((customer, period) for period in periods)
        keys = [(customer, LATEST, (), period) for period in periods if (customer, period) not in closed]
        states = self.storage.period_states(keys)  # type: ignore[arg-type]
        if not states:
            return None
        return EPOCH + ONE_TICK * int(max(state.quantity for state in states.values()))


def _anchor(spec: CustomerSpec | None) -> dt.date | None:
    """The date ``spec``'s periods are anchored to (None: calendar periods)."""
    return spec.since if spec is not None and spec.anniversary else None


def _rated_from(previous: CustomerSpec | None, effective: dt.datetime) -> bool:
    """Whether a customer could have had a period in progress at ``effective`` (a new one could not)."""
    return previous is not None and (previous.since is None or _midnight_utc(previous.since) <= effective)


def _midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
