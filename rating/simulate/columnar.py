"""Columnar re-pricing of history: totals per key in DuckDB, each key priced once in Python ``Decimal``.

A period's charge telescopes: over one key's events, the charges
``P(after) - P(before)`` add up to ``P(total)``. So re-pricing history needs a
total per (customer, meter, group, billing source, period), which DuckDB adds up
from Parquet at millions of events per second, and then one price per key, by
the very charge objects billing uses (caps and discounts apply to a charge's
period total the same way). Sums stay in the columns' own exact types
(DECIMAL or integer); nothing passes through a double.

Some customers' charges do not telescope over their history; they go through
the per-event pricer (:func:`rating.simulate.price_events`), in file order, and
both parts are merged before periods close:

- dated terms (``since``, ``until``, plan changes), a contract, a hard spend cap
  (what it refuses depends on event order), or a plan charge with rollover;
- a row the columnar checks cannot vouch for (an id outside plain ASCII, a
  missing, negative or absurd quantity, an empty group value, ...): the
  per-event pricer gives it its exact refusal;
- a billing period two pricebook versions share, or an event id used twice
  with different content (a replay with the same content is skipped in SQL).

When ``rating_enrich_event`` plugins are installed, or a meter reads a column
that is neither an exact number nor text, every customer goes per event (with
a notice): enrichment may change any value a
meter reads.

The Parquet layout: one row per event; columns ``id``, ``customer``, ``type``
(text) and ``timestamp`` (a UTC-adjusted timestamp, read as TIMESTAMP WITH TIME
ZONE); optional ``billing_source``, ``agent``, ``session`` and ``order`` (text);
every other column is a property (NULL: absent). A meter reads numbers from
DECIMAL (up to 38 digits) or integer columns and group, filter and unique
values from text columns; a FLOAT or DOUBLE column a meter reads is refused.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal, localcontext
from functools import partial
from pathlib import Path
from typing import Any

from rating.accounts import check_free_text, check_id
from rating.core.compiled import CompiledVersion
from rating.core.pipeline import Mode, acts_on
from rating.core.subscriptions import FOREVER, ORIGIN, spans
from rating.distribution import install_hint
from rating.errors import EventError, InvalidId, RatingError
from rating.events import EARLIEST, LATEST, UsageEvent, parse_event
from rating.money import MONEY_CONTEXT, ZERO
from rating.periods import period_bounds, zone
from rating.pricebook.catalog import Catalog
from rating.pricebook.meters import MAX_MAGNITUDE, Meter
from rating.pricebook.model import Pricebook
from rating.pricebook.pricing import PerEventModel, PricingModel
from rating.refusals import Refusal
from rating.registry import Registry
from rating.simulate import Scenario, price_events

INSTALL_HINT = f"the columnar engine needs DuckDB: {install_hint('simulate')}"
#: Event fields in the Parquet layout; every other column is a property.
FIELDS = ("id", "customer", "type", "timestamp", "billing_source", "agent", "session", "order")
REQUIRED = ("id", "customer", "type", "timestamp")
#: Columns DuckDB adds to keep file order.
ORDER_COLUMNS = ("filename", "file_row_number")
#: Rows whose ids match these are valid without asking Python: plain ASCII, no ':' or white space.
PLAIN_ID = "[!-9;-~]{1,128}"
PLAIN_TEXT = "[ -~]{1,256}"
EXACT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
               "UBIGINT", "UHUGEINT")  # fmt: skip
#: A DECIMAL column's type as DuckDB names it: DECIMAL(precision,scale).
DECIMAL_TYPE = re.compile(r"DECIMAL\((\d+),(\d+)\)")
LIMIT = 10 ** (MAX_MAGNITUDE + 1)


def quote(name: str) -> str:
    """``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def exact_number(kind: str) -> bool:
    """Whether a column of DuckDB type ``kind`` holds exact numbers: an integer or a DECIMAL (a list, a struct or a
    float of them does not)."""
    return kind in EXACT_TYPES or DECIMAL_TYPE.fullmatch(kind) is not None


def may_reach_limit(kind: str) -> bool:
    """Whether a number column of type ``kind`` can hold a value of :data:`LIMIT` or more (a DECIMAL(38,30) holds
    less than 10^8, and DuckDB cannot even cast the limit to compare with it)."""
    decimal = DECIMAL_TYPE.fullmatch(kind)
    return decimal is None or int(decimal[1]) - int(decimal[2]) > MAX_MAGNITUDE + 1


UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(moment: dt.datetime) -> int:
    """``moment`` in microseconds since the Unix epoch, as DuckDB's ``epoch_us`` gives it."""
    return (moment - UNIX_EPOCH) // dt.timedelta(microseconds=1)


class ParquetHistory:
    """Usage events in Parquet files, read by DuckDB in file order (files by name, rows in order)."""

    def __init__(self, paths: Sequence[str | Path], partition: tuple[int, int] | None = None) -> None:
        """``partition``: (i, n) keeps the customers whose hash leaves i modulo n (rows without one go to 0)."""
        try:
            import duckdb
        except ImportError:
            raise RatingError(INSTALL_HINT) from None
        files = sorted(str(path) for path in paths)
        self.name = files[0] if len(files) == 1 else f"{files[0] if files else 'no file'} (and {len(files) - 1:,} more)"
        for name in files:
            if not Path(name).is_file():
                raise RatingError(f"{name}: no such events file")
        self.connection = duckdb.connect()
        listed = ", ".join(literal(name) for name in files)
        only = "" if partition is None else f" WHERE coalesce(hash(customer) % {partition[1]}, 0) = {partition[0]}"
        try:
            self.connection.execute(
                f"CREATE VIEW src AS SELECT * FROM read_parquet([{listed}], filename=true, file_row_number=true){only}"
            )
        except duckdb.Error as error:
            raise RatingError(f"{files[0]}: not readable as Parquet ({str(error).splitlines()[0]})") from None
        self.columns = {row[0]: row[1] for row in self.connection.execute("DESCRIBE src").fetchall()}
        missing = [name for name in REQUIRED if name not in self.columns]
        if missing:
            raise RatingError(f"{files[0]}: the events need columns {', '.join(missing)}")
        if self.columns["timestamp"] != "TIMESTAMP WITH TIME ZONE":
            raise RatingError(
                f"{files[0]}: timestamp is {self.columns['timestamp']}; events need UTC-adjusted timestamps"
            )
        for name in FIELDS:
            if name != "timestamp" and self.columns.get(name, "VARCHAR") != "VARCHAR":
                raise RatingError(f"{files[0]}: column {name} is {self.columns[name]}; event fields are text (VARCHAR)")
        self.properties = [name for name in self.columns if name not in FIELDS + ORDER_COLUMNS]
        try:
            self.customers, self.suspects, self.span, checks = self._survey()
            self.suspects |= self._deduplicate()
        except duckdb.Error as error:
            raise RatingError(f"{self.name}: DuckDB cannot read these events ({str(error).splitlines()[0]})") from None
        self.row_ok = " AND ".join(
            [
                *checks,
                *(
                    f"({quote(name)} IS NULL OR regexp_full_match({quote(name)}, '{grammar}'))"
                    for name, grammar in (("agent", PLAIN_ID), ("session", PLAIN_TEXT), ("order", PLAIN_TEXT))
                    if name in self.columns
                ),
                "(billing_source IS NULL OR billing_source IN ('platform', 'byok'))"
                if "billing_source" in self.columns
                else "true",
            ]
        )

    def _survey(self) -> tuple[list[str], set[str | None], tuple[dt.datetime, dt.datetime] | None, list[str]]:
        """One pass over the rows: every customer, those whose rows must go per event, the time span, the row checks.

        Customer ids and event types are few: Python checks each distinct one with the event grammar itself.
        Event ids are many: SQL vouches for plain ASCII ones, and only if one is not does every row check it.
        """
        earliest, latest = (f"TIMESTAMPTZ '{moment.isoformat()}'" for moment in (EARLIEST, LATEST))
        in_range = f"timestamp >= {earliest} AND timestamp < {latest}"
        odd_ids, first, last = self.connection.execute(
            f"""SELECT count(*) FILTER (WHERE id IS NULL OR NOT regexp_full_match(id, '{PLAIN_TEXT}')),
                       min(epoch_us(timestamp)) FILTER (WHERE {in_range}),
                       max(epoch_us(timestamp)) FILTER (WHERE {in_range}) FROM src"""
        ).fetchone() or (0, None, None)
        rows = self.connection.execute("SELECT DISTINCT customer FROM src WHERE customer IS NOT NULL").fetchall()
        customers = sorted(customer for (customer,) in rows)
        suspects: set[str | None] = {None}
        suspects.update(c for c in customers if not _valid(partial(check_id, "customer"), c))
        odd_types = [
            kind
            for (kind,) in self.connection.execute("SELECT DISTINCT type FROM src").fetchall()
            if kind is None or not _valid(partial(check_free_text, "type"), kind)
        ]
        checks = [in_range, "customer IS NOT NULL", "type IS NOT NULL"]
        if odd_types:
            checks.append(f"type NOT IN ({', '.join(literal(kind) for kind in odd_types if kind is not None)} NULL)")
        if odd_ids:
            checks.append(f"regexp_full_match(id, '{PLAIN_TEXT}')")
        span = None if first is None else (_from_micros(first), _from_micros(last))
        return customers, suspects, span, checks

    def _deduplicate(self) -> set[str | None]:
        """Skip replays (an id again with the same content); return the customers of ids reused with other content."""
        total, distinct = self.connection.execute("SELECT count(id), count(DISTINCT id) FROM src").fetchone() or (0, 0)
        if total == distinct:
            self.connection.execute("CREATE VIEW events AS SELECT * FROM src")
            return set()
        content = "ROW(" + ", ".join(quote(name) for name in self.columns if name not in ORDER_COLUMNS) + ")"
        by_id = "OVER (PARTITION BY id)"
        self.connection.execute(
            f"""CREATE TEMP TABLE repeats AS SELECT * FROM (
                SELECT filename, file_row_number, customer,
                       row_number() OVER (PARTITION BY id ORDER BY filename, file_row_number) AS rank,
                       min(content) {by_id} IS DISTINCT FROM max(content) {by_id} AS conflict
                FROM (SELECT *, {content} AS content FROM src
                      WHERE id IN (SELECT id FROM src GROUP BY id HAVING count(*) > 1)))"""
        )
        self.connection.execute(
            """CREATE VIEW events AS SELECT * FROM src ANTI JOIN
               (SELECT filename, file_row_number FROM repeats WHERE rank > 1 AND NOT conflict)
               USING (filename, file_row_number)"""
        )
        customers = self.connection.execute("SELECT DISTINCT customer FROM repeats WHERE conflict").fetchall()
        return {row[0] for row in customers}

    def events_of(self, customers: Iterable[str | None], errors: list[EventError]) -> Iterator[UsageEvent]:
        """The events of ``customers``, in file order; invalid rows go to ``errors``.

        None in ``customers`` stands for the rows without a customer.
        """
        names = [name for name in customers if name is not None]
        self.connection.execute("CREATE OR REPLACE TEMP TABLE wanted (customer VARCHAR)")
        if names:
            self.connection.executemany("INSERT INTO wanted VALUES (?)", [(name,) for name in names])
        invalid = " OR customer IS NULL" if None in customers else ""
        fields = [name for name in FIELDS if name in self.columns and name != "timestamp"]
        selected = ", ".join([*(quote(name) for name in fields), "epoch_us(timestamp)", *map(quote, self.properties)])
        cursor = self.connection.execute(
            f"SELECT {selected} FROM events WHERE customer IN (SELECT customer FROM wanted){invalid}"
            " ORDER BY filename, file_row_number"
        )
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                try:
                    yield parse_event(self._record(fields, row))
                except EventError as error:
                    errors.append(error)

    def _record(self, fields: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
        values = dict(zip(fields, row, strict=False))
        micros = row[len(fields)]
        record: dict[str, Any] = {name: values[name] for name in ("id", "customer", "type") if values[name] is not None}
        if micros is not None:
            record["timestamp"] = _from_micros(micros)
        if values.get("billing_source") is not None:
            record["billing_source"] = values["billing_source"]
        attribution = {name: values[name] for name in ("agent", "session", "order") if values.get(name) is not None}
        if attribution:
            record["attribution"] = attribution
        properties = row[len(fields) + 1 :]
        record["properties"] = {
            name: value for name, value in zip(self.properties, properties, strict=True) if value is not None
        }
        return record


def write_parquet(events: Iterable[UsageEvent], path: str | Path) -> int:
    """Write ``events`` to ``path`` in the Parquet layout; returns how many were written.

    A property whose values are all numbers becomes a DECIMAL column (38 digits, as many after the point as the
    values need), one whose values are all text a text column; any other property (mixed, true/false, nested)
    is written as its JSON text.
    """
    try:
        import duckdb
    except ImportError:
        raise RatingError(INSTALL_HINT) from None
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "events.csv"
        kinds: dict[str, set[str]] = {}
        scales: dict[str, tuple[int, int]] = {}  # property -> (digits before the point, digits after)
        written = 0
        with staged.open("w", newline="", encoding="utf-8") as handle:
            rows = csv.writer(handle)
            for event in events:
                rows.writerow(_flat(event, kinds, scales))
                written += 1
        properties = sorted(kinds)
        columns = {"id": "VARCHAR", "customer": "VARCHAR", "type": "VARCHAR", "timestamp": "TIMESTAMPTZ",
                   "billing_source": "VARCHAR", "agent": "VARCHAR", "session": "VARCHAR", "order": "VARCHAR",
                   "properties": "VARCHAR"}  # fmt: skip
        selected = [f"{quote(name)}" for name in FIELDS]
        for name in properties:
            value = f"json_extract_string(properties, {literal('$.' + json.dumps(name))})"
            whole, places = scales.get(name, (0, 0))
            if kinds[name] == {"number"} and whole + places <= 38:
                selected.append(f"CAST({value} AS DECIMAL(38, {places})) AS {quote(name)}")
            else:
                selected.append(f"{value} AS {quote(name)}")
        connection = duckdb.connect()
        spec = "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in columns.items()) + "}"
        connection.execute(
            f"""COPY (SELECT {", ".join(selected)} FROM read_csv({literal(str(staged))}, header = false,
                      columns = {spec}, quote = '"', escape = '"', nullstr = '\\N', sample_size = -1))
                TO {literal(str(path))} (FORMAT parquet)"""
        )
    return written


def _flat(event: UsageEvent, kinds: dict[str, set[str]], scales: dict[str, tuple[int, int]]) -> list[str]:
    """One event as a CSV row of text (``\\N`` for absent), noting each property's kind and decimal places."""
    properties: dict[str, str] = {}
    for name, value in event.properties.items():
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            number = Decimal(value)
            kinds.setdefault(name, set()).add("number")
            places = max(0, -number.as_tuple().exponent)  # type: ignore[operator]
            whole = max(0, number.adjusted() + 1)
            known = scales.get(name, (0, 0))
            scales[name] = (max(known[0], whole), max(known[1], places))
            properties[name] = str(number)
        elif isinstance(value, str):
            kinds.setdefault(name, set()).add("text")
            properties[name] = value
        else:
            kinds.setdefault(name, set()).add("json")
            properties[name] = json.dumps(value, default=str)
    missing = "\\N"
    attribution = event.attribution
    return [event.id, event.customer, event.type, event.timestamp.isoformat(), event.billing_source,
            attribution.agent or missing, attribution.session or missing, attribution.order or missing,
            json.dumps(properties)]  # fmt: skip


def _valid(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except InvalidId:
        return False
    return True


def _from_micros(micros: int) -> dt.datetime:
    return UNIX_EPOCH + dt.timedelta(microseconds=micros)


# -- which customers telescope -----------------------------------------------------------


def plan_of(book: Pricebook, customer: str | None) -> str | None:
    """The plan a customer with constant terms is on: its own, or (None: any customer not listed) the default."""
    spec = book.customers.get(customer) if customer is not None else None
    return spec.plan if spec is not None else book.default_plan


def constant_terms(version: CompiledVersion, customer: str | None) -> bool:
    """Whether ``customer`` (None: any customer not named) is priced by one plan, uncapped, for all of the version,
    by period prices alone."""
    book = version.book
    if customer is not None and customer in version.contracts:
        return False
    spec = book.customers.get(customer) if customer is not None else None
    if customer is not None and spec is not None:
        history = spans(book, customer)
        if acts_on(Mode.SIMULATE, book, customer):  # a policy decides per event: the pipeline's way
            return False
        if len(history) != 1 or (history[0].start, history[0].end) != (ORIGIN, FOREVER):
            return False
    plan = plan_of(book, customer)
    if plan is None:
        return False
    charges = [pricing for priced in version.charges_by_plan[plan].values() for _, pricing in priced]
    costs = [cost for priced in version.costs_by_meter.values() for cost in priced]
    # Per-event models price each row, not a key's total: those customers go the per-event way.
    return not any(p.rollover or isinstance(p, PerEventModel) for p in charges + costs)


# -- SQL -------------------------------------------------------------------------------


def _periods_case(bounds: list[tuple[str, int, int]]) -> str:
    """A CASE expression labelling ``us`` (epoch microseconds) with its period, by bisection over ``bounds``."""
    if len(bounds) == 1:
        return literal(bounds[0][0])
    middle = len(bounds) // 2
    before, after = _periods_case(bounds[:middle]), _periods_case(bounds[middle:])
    return f"CASE WHEN us < {bounds[middle][1]} THEN {before} ELSE {after} END"


def calendar(kind: str, timezone: str, first: dt.datetime, last: dt.datetime) -> list[tuple[str, int, int]]:
    """Every ``kind`` period in ``timezone`` from the one holding ``first`` to the one holding ``last``."""
    bounds = []
    moment = first
    while moment <= last:
        label, start, end = period_bounds(moment, kind, zone(timezone))  # type: ignore[arg-type]
        bounds.append((label, _micros(start), _micros(end)))
        moment = end
    return bounds


def price_columnar(
    history: ParquetHistory, catalog: Catalog, registry: Registry, label: str
) -> tuple[Scenario, list[str]]:
    """Price the events of ``history`` under ``catalog``: by key where charges telescope, else per event.

    Returns the scenario (its periods not closed yet) and notices of what went per event and why.
    """
    import duckdb

    try:
        return _price_columnar(history, catalog, registry, label)
    except duckdb.Error as error:  # a layout the checks above did not foresee: one line, never a traceback
        raise RatingError(f"{history.name}: DuckDB cannot read these events ({str(error).splitlines()[0]})") from None


def _price_columnar(
    history: ParquetHistory, catalog: Catalog, registry: Registry, label: str
) -> tuple[Scenario, list[str]]:
    scenario = Scenario(label, catalog.latest.currency)
    notices: list[str] = []
    totals = _Totals(history, catalog)
    reason = totals.blocker(registry)
    if reason is None:
        try:
            per_event = totals.price(scenario)
        except ColumnarRange as overflow:
            scenario, reason = Scenario(label, catalog.latest.currency), f"a total is out of range ({overflow})"
    if reason is not None:
        notices.append(f"{label}: every event priced one by one: {reason}")
        per_event = totals.every_customer()
    elif len(per_event) > 1:
        notices.append(f"{label}: {len(per_event) - 1:,} customers priced event by event")
    errors: list[EventError] = []
    scenario.merge(price_events(history.events_of(per_event, errors), catalog, registry, label))
    for error in errors:
        scenario.not_priced(error.code)
    return scenario, notices


#: A key's total: (customer, version, period, billing source, meter, group) -> total quantity.
Totals = dict[tuple[str, int, str, str, str, tuple[str, ...]], Decimal]


class _Totals:
    """One catalog over one history: the SQL that totals each key, and the pricing of those totals."""

    def __init__(self, history: ParquetHistory, catalog: Catalog) -> None:
        self.history, self.catalog = history, catalog
        self.sql = history.connection
        self.versions = [CompiledVersion(book) for book in catalog.versions]

    def every_customer(self) -> list[str | None]:
        """Every customer in the history, and None for rows without one."""
        return [None, *self.history.customers]

    def blocker(self, registry: Registry) -> str | None:
        """Why no customer can be priced by key, or None."""
        if registry.enriches_events:
            return "rating_enrich_event plugins may change any value a meter reads"
        for version in self.versions:
            for name, meter in version.book.meters.items():
                for column, needs in _reads(meter):
                    kind = self.history.columns.get(column)
                    if kind is None:
                        continue
                    if kind in ("FLOAT", "DOUBLE") and needs == "number":
                        raise RatingError(
                            f"column {column!r} is {kind}: meter {name} needs exact numbers (DECIMAL or integer)"
                        )
                    exact = exact_number(kind) if needs == "number" else kind == "VARCHAR"
                    if not exact:
                        return f"meter {name} reads column {column!r} of type {kind}, which holds no exact {needs}"
        return None

    # -- routing ---------------------------------------------------------------------

    def _route(self, first: dt.datetime, last: dt.datetime) -> tuple[list[int], dict[str, list[int]], list[list]]:
        """Calendars (period bounds) per version for unlisted customers and for each listed one; -1: per event.

        Returns the default calendar per version, each named customer's calendar per version, and the calendars.
        """
        calendars: dict[tuple[str, str], int] = {}
        bounds: list[list[tuple[str, int, int]]] = []

        def calendar_of(kind: str, timezone: str) -> int:
            if (kind, timezone) not in calendars:
                calendars[kind, timezone] = len(bounds)
                bounds.append(calendar(kind, timezone, first, last))
            return calendars[kind, timezone]

        def cal(version: CompiledVersion, customer: str | None) -> int:
            if not constant_terms(version, customer):
                return -1
            book, plan = version.book, plan_of(version.book, customer)
            assert plan is not None
            return calendar_of(book.plans[plan].period, book.timezone_of(customer or ""))

        named = {c for v in self.versions for c in (*v.book.customers, *v.contracts)}
        default = [cal(version, None) for version in self.versions]
        special = {customer: [cal(version, customer) for version in self.versions] for customer in sorted(named)}
        return default, special, bounds

    def price(self, scenario: Scenario) -> list[str | None]:
        """Price every customer whose charges telescope into ``scenario``; return those left for per-event pricing."""
        span = self.history.span
        if span is None:
            return self.every_customer()
        default, special, calendars = self._route(*span)
        self.sql.execute("CREATE OR REPLACE TEMP TABLE special (customer VARCHAR, ver INTEGER, cal INTEGER)")
        rows = [(c, v, cal) for c, cals in special.items() for v, cal in enumerate(cals)]
        if rows:
            self.sql.executemany("INSERT INTO special VALUES (?, ?, ?)", rows)
        starts = [_micros(self.catalog.starts(i)) for i in range(len(self.versions))]
        version_case = " ".join(f"WHEN us < {start} THEN {i - 1}" for i, start in enumerate(starts))
        default_case = " ".join(f"WHEN {i} THEN {cal}" for i, cal in enumerate(default))
        period_case = " ".join(f"WHEN {i} THEN {_periods_case(b)}" for i, b in enumerate(calendars)) or "WHEN 0 THEN ''"
        self.sql.execute(
            f"""CREATE OR REPLACE TEMP VIEW routed AS
            SELECT r.*, CASE r.cal {period_case} END AS period FROM (
                SELECT b.*, CASE WHEN b.ver < 0 THEN 0 ELSE coalesce(s.cal, CASE b.ver {default_case} END) END AS cal
                FROM (SELECT *, epoch_us(timestamp) AS us,
                             CASE {version_case} ELSE {len(starts) - 1} END AS ver,
                             coalesce({self.history.row_ok}, false) AS ok,
                             {
                "coalesce(billing_source, 'platform')" if "billing_source" in self.history.columns else "'platform'"
            } AS source
                      FROM events) b
                LEFT JOIN special s ON s.customer = b.customer AND s.ver = b.ver
            ) r WHERE r.cal >= 0"""
        )
        left: set[str | None] = {c for c, cals in special.items() if min(cals) < 0}
        if min(default) < 0:  # customers not named do not telescope: only named ones may
            left |= set(self.history.customers) - {c for c, cals in special.items() if min(cals) >= 0}
        totals, refused, versions_of, labels = self._totals(left, span)
        left |= {c for c, periods in versions_of.items() if any(len(vs) > 1 for vs in periods.values())}
        left |= self.history.suspects - {None}
        with localcontext(MONEY_CONTEXT):
            left |= self._charge(scenario, totals, left)
        for (customer, code), count in refused.items():
            if customer not in left:
                scenario.unpriced[code] = scenario.unpriced.get(code, 0) + count
        for customer, seen in labels.items():
            if customer not in left:
                scenario.periods |= seen
        return [None, *sorted(c for c in left if c is not None)]

    # -- totals ----------------------------------------------------------------------

    def _totals(
        self, left: set[str | None], span: tuple[dt.datetime, dt.datetime]
    ) -> tuple[Totals, dict[tuple[str, Refusal], int], dict[str, dict[str, set[int]]], dict[str, set[str]]]:
        """Each key's total, the events refused per customer and code, the versions each customer-period saw,
        and each customer's billing periods by every period kind the plans use (what period close closes).

        Customers with a row the columnar checks cannot vouch for join ``left``.
        """
        columns = self.history.columns
        dims = sorted({name for v in self.versions for m in v.book.meters.values() for name in m.group_by})
        dims = [name for name in dims if name in columns]
        measures: list[tuple[int, str, str, Meter, str | None]] = []  # (version, type, meter name, meter, property)
        select, bad, excluded = [], [], []
        for index, version in enumerate(self.versions):
            for kind, meters in version.meters_by_type.items():
                where = f"ver = {index} AND type = {literal(kind)}"
                counting = [(name, meter, _counts(meter, columns)) for name, meter in meters]
                if version.filtered:
                    excluded.append(f"({where} AND NOT ({' OR '.join(c for _, _, c in counting)}))")
                for name, meter, counts in counting:
                    bad.append(f"({where} AND {counts} AND ({_anomalous(meter, columns)}))")
                    if meter.unique is not None:
                        continue  # distinct counts do not add up across groups: totalled apart
                    for prop, sql in _aggregates(meter, columns):
                        select.append(f"{sql} FILTER (WHERE {where} AND {counts})")
                        measures.append((index, kind, name, meter, prop))
        kinds = sorted({plan.period for version in self.versions for plan in version.book.plans.values()})
        closes = []
        for kind in kinds:  # the labels period close uses: the pricebook's time zone, the version in force or the first
            cases = " ".join(
                f"WHEN {i} THEN {_periods_case(calendar(kind, v.book.timezone, *span))}"
                for i, v in enumerate(self.versions)
                if kind in {plan.period for plan in v.book.plans.values()}
            )
            closes.append(f", CASE greatest(ver, 0) {cases} END")
        query = f"""SELECT customer, ver, period, source, type{"".join(", " + quote(d) for d in dims)}{"".join(closes)},
                count(*) AS events, count(*) FILTER (WHERE NOT ok OR {" OR ".join(bad) or "false"}) AS bad,
                count(*) FILTER (WHERE {" OR ".join(excluded) or "false"}) AS excluded
                {"".join(", " + m for m in select)}
            FROM routed GROUP BY ALL"""
        totals: Totals = {}
        refused: dict[tuple[str, Refusal], int] = {}
        versions_of: dict[str, dict[str, set[int]]] = {}

        def refuse(customer: str, code: Refusal, count: int) -> None:
            refused[customer, code] = refused.get((customer, code), 0) + count

        width = 5 + len(dims) + len(kinds)
        labels: dict[str, set[str]] = {}
        for row in self._fetch(query):
            customer, ver, period, source, kind = row[:5]
            events, anomalies, filtered = row[width : width + 3]
            if anomalies:
                left.add(customer)
                continue
            labels.setdefault(customer, set()).update(label for label in row[5 + len(dims) : width] if label)
            if ver < 0:
                refuse(customer, Refusal.NO_VERSION_IN_FORCE, events)
                continue
            versions_of.setdefault(customer, {}).setdefault(period, set()).add(ver)
            if kind not in self.versions[ver].meters_by_type:
                refuse(customer, Refusal.UNKNOWN_EVENT_TYPE, events)
                continue
            if filtered:
                refuse(customer, Refusal.EXCLUDED_BY_FILTER, filtered)
            values = dict(zip(dims, row[5 : 5 + len(dims)], strict=True))
            for (index, of_type, name, meter, prop), value in zip(measures, row[width + 3 :], strict=True):
                if index != ver or of_type != kind or value is None or (meter.count and not value):
                    continue
                quantity = Decimal(value)
                if prop is not None:
                    assert isinstance(meter.sum, dict)
                    quantity = meter.sum[prop] * quantity
                key = (customer, ver, period, source, name, tuple(values[g] for g in meter.group_by))
                known = totals.get(key)
                if known is None:
                    totals[key] = quantity
                else:
                    totals[key] = max(known, quantity) if meter.max is not None else known + quantity
        for index, version in enumerate(self.versions):
            for kind, meters in version.meters_by_type.items():
                for name, meter in meters:
                    if meter.unique is not None:
                        self._distinct(totals, index, kind, name, meter)
        return totals, refused, versions_of, labels

    def _distinct(self, totals: Totals, index: int, kind: str, name: str, meter: Meter) -> None:
        """Total a unique meter: distinct values per key."""
        columns = self.history.columns
        groups = "".join(", " + quote(g) for g in meter.group_by)
        assert meter.unique is not None
        for customer, period, source, *rest in self._fetch(
            f"""SELECT customer, period, source{groups}, count(DISTINCT {_column(meter.unique, columns)})
                FROM routed WHERE ver = {index} AND type = {literal(kind)} AND {_counts(meter, columns)}
                GROUP BY ALL"""
        ):
            totals[customer, index, period, source, name, tuple(rest[:-1])] = Decimal(rest[-1])

    def _fetch(self, query: str) -> list[tuple[Any, ...]]:
        import duckdb

        try:
            return self.sql.execute(query).fetchall()
        except duckdb.OutOfRangeException as error:
            raise ColumnarRange(str(error).splitlines()[0]) from None

    # -- pricing -----------------------------------------------------------------------

    def _charge(self, scenario: Scenario, totals: Totals, left: set[str | None]) -> set[str | None]:
        """Price every key's total into ``scenario``, customer by customer; return customers that must go per event."""
        by_customer: dict[str, list[tuple[int, str, str, str, tuple[str, ...], Decimal]]] = {}
        for (customer, ver, period, source, meter, group), quantity in totals.items():
            if customer not in left:
                by_customer.setdefault(customer, []).append((ver, period, source, meter, group, quantity))
        inexact: set[str | None] = set()
        for customer, keys in by_customer.items():
            try:
                charges, costs = self._customer(customer, keys)
            except ArithmeticError:  # the per-event pricer refuses exactly the events that cannot be priced
                inexact.add(customer)
                continue
            for plan, meter, period, asset, amount in charges:
                scenario.add_charge(customer, plan, meter, period, asset, amount)
            for asset, amount in costs:
                scenario.add_cost(customer, asset, amount)
        return inexact

    def _customer(
        self, customer: str, keys: list[tuple[int, str, str, str, tuple[str, ...], Decimal]]
    ) -> tuple[list[tuple[str, str, str, str, Decimal]], list[tuple[str, Decimal]]]:
        """One customer's charges (plan, meter, period, asset, amount) and costs (asset, amount), from its totals."""
        charges: list[tuple[str, str, str, str, Decimal]] = []
        costs: list[tuple[str, Decimal]] = []
        running: dict[tuple[int, str, str, str], tuple[PricingModel, str, str, list[tuple[str, Decimal]]]] = {}
        plans = [plan_of(version.book, customer) for version in self.versions]
        for ver, period, source, name, group, quantity in sorted(keys):
            version, plan = self.versions[ver], plans[ver]
            book = version.book
            assert plan is not None
            for cost in version.costs_by_meter.get(name, ()):
                if source in cost.billing_sources:
                    costs.append((cost.asset or book.currency, cost.for_group(group).charge(ZERO, quantity)))
            for total_key, charge in version.charges_by_plan[plan].get(name, ()):
                if source not in charge.billing_sources:
                    continue
                pricing = charge.for_group(group)
                amount = pricing.charge(ZERO, quantity)
                asset = pricing.asset or book.currency
                if charge.tracks_total:  # discounts and caps apply to the charge's period total over its groups
                    parts = running.setdefault((ver, period, source, total_key), (charge, plan, name, []))[3]
                    parts.append((asset, amount))
                else:
                    charges.append((plan, name, period, asset, amount))
        for (_, period, _, _), (charge, plan, name, parts) in running.items():
            assets = {asset for asset, _ in parts}
            if len(assets) > 1:
                raise ArithmeticError("a capped charge whose groups bill in several assets")
            uncapped = sum((amount for _, amount in parts), ZERO)
            charges.append((plan, name, period, assets.pop(), charge.adjusted_total(uncapped)))
        return charges, costs


class ColumnarRange(RatingError):
    """A total left the range DuckDB's exact types hold."""


def _column(name: str, columns: dict[str, str]) -> str:
    return quote(name) if name in columns else "NULL"


def _counts(meter: Meter, columns: dict[str, str]) -> str:
    """SQL: whether a row of the meter's type passes its ``where`` filter."""
    tests = [
        f"coalesce({_column(name, columns)} IN ({', '.join(literal(v) for v in allowed)}), false)"
        for name, allowed in meter.where.items()
    ]
    return " AND ".join(tests) or "true"


def _anomalous(meter: Meter, columns: dict[str, str]) -> str:
    """SQL: whether a counted row is one the per-event pricer refuses (a missing group, a bad quantity)."""
    tests = [f"coalesce({_column(name, columns)}, '') = ''" for name in meter.group_by]

    def bad_number(name: str, may_be_absent: bool) -> str:
        column = _column(name, columns)
        absent = "false" if may_be_absent else f"{column} IS NULL"
        too_large = f" OR {column} >= {LIMIT}" if may_reach_limit(columns.get(name, "")) else ""
        return f"{absent} OR coalesce({column} < 0{too_large}, false)"

    if isinstance(meter.sum, dict):
        tests += [bad_number(name, may_be_absent=True) for name in meter.sum]
    elif meter.unique is not None:
        tests.append(f"{_column(meter.unique, columns)} IS NULL")
    elif meter.source is not None:
        tests.append(bad_number(meter.source, may_be_absent=False))
    return " OR ".join(f"({t})" for t in tests) or "false"


def _aggregates(meter: Meter, columns: dict[str, str]) -> list[tuple[str | None, str]]:
    """The SQL aggregates that total a meter: (the weighted property or None, the aggregate)."""
    if meter.count:
        return [(None, "count(*)")]
    if isinstance(meter.sum, dict):
        return [(name, f"sum({_column(name, columns)})") for name in meter.sum]
    assert meter.source is not None
    return [(None, f"{'max' if meter.max is not None else 'sum'}({_column(meter.source, columns)})")]


def _reads(meter: Meter) -> list[tuple[str, str]]:
    """The columns ``meter`` reads and what it needs them to be: ``number`` or ``text``."""
    needs = [(name, "text") for name in (*meter.group_by, *meter.where)]
    if isinstance(meter.sum, dict):
        needs += [(name, "number") for name in meter.sum]
    elif meter.unique is not None:
        needs.append((meter.unique, "text"))
    elif meter.source is not None:
        needs.append((meter.source, "number"))
    return needs
