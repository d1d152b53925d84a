"""A self-contained HTML page for a simulation that says why revenue moves: scope, per-change impact, charts, tables.

The page has no outside references (charts are PNG data URIs, the script that
sorts and filters the per-customer table is inlined), so it can be mailed or
attached to a pricing review as one file. Amounts are shown at their asset's
scale (two places for USD, none for JPY, a custom asset's declared ``scale``);
every rounded figure carries its exact decimal in its ``title`` and its
``data-v`` attribute, which the table sorts by, comparing decimal text exactly.
The charts convert amounts to floats only to place bars on a picture, never to
compute anything.

What the page says comes from the simulation itself: the revenue and the
per-customer rows of :class:`~rating.simulate.SimulationResult`, and the
per-change impacts of :func:`rating.simulate.summary.change_impacts`, the very
function ``rating diff --events`` prints. :func:`change_candidates` and
:func:`itemise` prepare and split the extra pricebooks (one per change, applied
alone) that those impacts need, so that one pass over the events prices all.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rating.distribution import install_hint
from rating.errors import InvalidAmount, RatingError
from rating.events import UsageEvent
from rating.money import ZERO, currency_scale, format_decimal, plain, quantize
from rating.pricebook.catalog import Catalog
from rating.reports.diff import Edit, separable_edits
from rating.simulate import Scenario, SimulationResult, percent_change
from rating.simulate.summary import change_impacts

if TYPE_CHECKING:
    from rating.simulate.columnar import ParquetHistory

#: Revenue up (good for the seller) and down, in the tables and the charts; and the neutral bar colour.
UP, DOWN, NEUTRAL, FEES = "#0b6b3a", "#a1260d", "#3b6fd4", "#9db6e8"

#: How many customers the top-mover tables and charts show.
TOP = 10

STYLE = f"""
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d2330; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.15rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; }}
caption {{ text-align: left; font-weight: 600; padding: 0.25rem 0; }}
th, td {{ padding: 0.25rem 0.75rem; border-bottom: 1px solid #dde1e8; }}
th {{ text-align: left; background: #f3f5f8; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
th button {{ font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; }}
th button::after {{ content: " \\2195" / ""; color: #8a93a3; }}
th[aria-sort="ascending"] button::after {{ content: " \\2191" / ""; color: inherit; }}
th[aria-sort="descending"] button::after {{ content: " \\2193" / ""; color: inherit; }}
.up {{ color: {UP}; }} .down {{ color: {DOWN}; }} .note {{ color: #5b6474; font-size: 0.9rem; }}
dl.scope {{ display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }}
dl.scope dt {{ font-weight: 600; }} dl.scope dd {{ margin: 0; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); gap: 1rem; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: 0.25rem; }}
img {{ max-width: 100%; }}
input[type=search] {{ font: inherit; padding: 0.25rem 0.5rem; min-width: 18rem; }}
"""

#: Sorts the per-customer table on a header click (numbers by their exact decimal text) and filters it as one types.
SCRIPT = """
(function () {
  "use strict";
  function magnitude(a, b) {
    var pa = a.split("."), pb = b.split(".");
    var ia = pa[0].replace(/^0+/, ""), ib = pb[0].replace(/^0+/, "");
    if (ia.length !== ib.length) { return ia.length < ib.length ? -1 : 1; }
    if (ia !== ib) { return ia < ib ? -1 : 1; }
    var fa = pa[1] || "", fb = pb[1] || "", n = Math.max(fa.length, fb.length);
    fa = fa.padEnd(n, "0"); fb = fb.padEnd(n, "0");
    return fa < fb ? -1 : fa > fb ? 1 : 0;
  }
  function decimal(a, b) {
    var na = a.charAt(0) === "-", nb = b.charAt(0) === "-";
    if (na !== nb) { return na ? -1 : 1; }
    var r = magnitude(na ? a.slice(1) : a, nb ? b.slice(1) : b);
    return na ? -r : r;
  }
  function value(row, column) {
    var cell = row.cells[column];
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var body = table.tBodies[0], headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, column) {
      var button = header.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var ascending = header.getAttribute("aria-sort") !== "ascending";
        var numeric = header.getAttribute("data-type") === "number";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (x, y) {
          var a = value(x, column), b = value(y, column);
          if (a === "" || b === "") { return a === b ? 0 : a === "" ? 1 : -1; }
          var order = numeric ? decimal(a, b) : a.localeCompare(b);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  document.querySelectorAll("input[data-filters]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filters"));
    var status = document.getElementById(input.getAttribute("data-status"));
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
        if (!row.hidden) { shown += 1; }
      });
      status.textContent = shown + " of " + table.tBodies[0].rows.length + " rows shown";
    });
  });
})();
"""


@dataclass(frozen=True)
class Scope:
    """What a simulation covered, for the top of its report; None where it was not counted."""

    #: Per scenario label: where its pricebook came from (file, name and version).
    pricebooks: Mapping[str, str] = field(default_factory=dict)
    #: Events read (valid ones; a replayed id counts once more).
    events: int | None = None
    #: Distinct customers among them.
    customers: int | None = None
    #: The first and the last event's time.
    first: dt.datetime | None = None
    last: dt.datetime | None = None


class Tally:
    """The events of ``events``, passed through as they are read, counted: how many, whose, from when to when."""

    def __init__(self, events: Iterable[UsageEvent]) -> None:
        self.events = events
        self.count = 0
        self.customers: set[str] = set()
        self.first: dt.datetime | None = None
        self.last: dt.datetime | None = None

    def __iter__(self) -> Iterator[UsageEvent]:
        for event in self.events:
            self.count += 1
            self.customers.add(event.customer)
            moment = event.timestamp
            if self.first is None or moment < self.first:
                self.first = moment
            if self.last is None or moment > self.last:
                self.last = moment
            yield event

    def scope(self, pricebooks: Mapping[str, str]) -> Scope:
        """The scope of what was read so far, with ``pricebooks`` described."""
        return Scope(pricebooks, self.count, len(self.customers), self.first, self.last)


def parquet_scope(history: ParquetHistory, pricebooks: Mapping[str, str]) -> Scope:
    """The scope of Parquet history, from DuckDB's survey of it: rows, customers, the first and last time."""
    first, last = history.span or (None, None)
    counted = history.connection.execute("SELECT count(*) FROM src").fetchone()
    return Scope(pricebooks, counted[0] if counted else None, len(history.customers), first, last)


def describe(catalog: Catalog, source: str) -> str:
    """How the report names a pricebook: its file, its name and its versions."""
    versions = ", ".join(book.version.isoformat() for book in catalog.versions)
    return f"{source}: {catalog.name}, version {versions}"


def scales_of(catalogs: Sequence[Catalog]) -> dict[str, int]:
    """Decimal places of every asset the pricebooks declare (the first pricebook that declares an asset wins)."""
    scales: dict[str, int] = {}
    for catalog in catalogs:
        book = catalog.latest
        for asset in sorted(book.declared_assets()):
            if asset not in scales:
                try:
                    scales[asset] = book.scale_of(asset)
                except InvalidAmount:
                    continue
    return scales


def change_candidates(baseline: Catalog, candidates: Sequence[Catalog]) -> list[list[Edit]]:
    """Per candidate, each change from the baseline that can stand alone (:func:`~rating.reports.diff.separable_edits`).

    None for a candidate when either pricebook has more than one dated version: a change applied alone to
    one version would not say what the dated versions do together.
    """
    if len(baseline.versions) != 1:
        return [[] for _ in candidates]
    return [separable_edits(baseline.latest, c.latest) if len(c.versions) == 1 else [] for c in candidates]


def edit_catalogs(edits: Sequence[Sequence[Edit]]) -> list[Catalog]:
    """The pricebooks to simulate after the candidates: each edit applied alone, candidate by candidate."""
    return [Catalog([edit.alone]) for per_candidate in edits for edit in per_candidate]


def itemise(
    result: SimulationResult, edits: Sequence[Sequence[Edit]]
) -> tuple[SimulationResult, dict[str, list[dict[str, object]]]]:
    """Split a simulation of the candidates followed by :func:`edit_catalogs`: the candidates' result alone, and
    per candidate label its per-change impacts (:func:`~rating.simulate.summary.change_impacts`, as ``rating diff
    --events`` gives them)."""
    count = len(edits)
    kept = result.only(count)
    impacts: dict[str, list[dict[str, object]]] = {}
    extra = iter(result.candidates[count:])
    for candidate, per_candidate in zip(kept.candidates, edits, strict=True):
        alone = [next(extra) for _ in per_candidate]
        if per_candidate:
            impacts[candidate.label] = change_impacts(
                SimulationResult(result.baseline, [candidate, *alone]), per_candidate
            )
    return kept, impacts


def _pyplot() -> Any:  # matplotlib.pyplot, imported on demand
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RatingError(f"the HTML report draws charts with matplotlib: {install_hint('charts')}") from None
    return plt


def _png(figure: object) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    _pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def require_charts() -> None:
    """Refuse at once, before a long simulation, when matplotlib (the extra ``[charts]``) is not installed."""
    _pyplot()


class _Figures:
    """Amounts as people read them: at each asset's scale, signed where they are changes."""

    def __init__(self, scales: Mapping[str, int]) -> None:
        self.scales = dict(scales)

    def scale(self, asset: str) -> int | None:
        """Decimal places of ``asset``: declared, else an ISO currency's, else None (shown exactly)."""
        if asset not in self.scales:
            try:
                self.scales[asset] = currency_scale(asset)
            except InvalidAmount:
                return None
        return self.scales[asset]

    def rounded(self, amount: Decimal, asset: str) -> Decimal:
        """``amount`` at ``asset``'s scale."""
        scale = self.scale(asset)
        return amount if scale is None else quantize(amount, scale)

    def money(self, amount: Decimal, asset: str, signed: bool = False) -> str:
        """``amount`` at ``asset``'s scale, with thousands separators (and ``+`` before a rise when ``signed``)."""
        shown = self.rounded(amount, asset)
        shown = shown.copy_abs() if shown.is_zero() else shown  # never "-0.00"
        text = format_decimal(shown)
        return f"+{text}" if signed and shown > 0 else text


@dataclass(frozen=True)
class _Cell:
    """A table cell: its text, its exact value (sorting and ``title``), its classes."""

    text: str
    exact: str | None = None
    css: str = ""


def _change_css(shown: Decimal | None) -> str:
    return "n up" if shown is not None and shown > 0 else "n down" if shown is not None and shown < 0 else "n"


def _money_cell(figures: _Figures, amount: Decimal | None, asset: str, change: bool = False) -> _Cell:
    if amount is None:
        return _Cell("", "", "n")
    css = _change_css(figures.rounded(amount, asset)) if change else "n"
    return _Cell(figures.money(amount, asset, signed=change), plain(amount), css)


def _percent_cell(percent: Decimal | None, change: bool = True) -> _Cell:
    if percent is None:
        return _Cell("", "", "n")  # from nothing: no percentage
    if not change:
        return _Cell(f"{format_decimal(percent)} %", plain(percent), "n")
    text = f"+{format_decimal(percent)} %" if percent > 0 else f"{format_decimal(percent)} %"
    return _Cell(text, plain(percent), _change_css(percent))


def _count_cell(count: int) -> _Cell:
    return _Cell(f"{count:,}", str(count), "n")


def _text_cell(value: object) -> _Cell:
    return _Cell("" if value is None else str(value))


def _td(cell: _Cell) -> str:
    attributes = f' class="{cell.css}"' if cell.css else ""
    if cell.exact is not None:
        attributes += f' data-v="{html.escape(cell.exact)}"'
        if cell.exact and cell.exact != cell.text.lstrip("+").replace(",", "").removesuffix(" %"):
            attributes += f' title="exactly {html.escape(cell.exact)}"'
    return f"<td{attributes}>{html.escape(cell.text)}</td>"


def _table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[_Cell]],
    *,
    sortable: str | None = None,
    empty: str = "Nothing was charged.",
) -> str:
    """A table with a caption and column headers; ``sortable``: its id, and every header a sort button."""
    if not rows:
        return f'<p class="note">{html.escape(empty)}</p>'
    heads = []
    for number, column in enumerate(columns):
        numeric = all(row[number].exact is not None for row in rows)
        kind = ' data-type="number"' if numeric else ""
        label = html.escape(column)
        inner = f'<button type="button">{label}</button>' if sortable else label
        heads.append(f'<th scope="col"{kind}>{inner}</th>')
    body = "".join("<tr>" + "".join(_td(cell) for cell in row) + "</tr>" for row in rows)
    table_id = f' id="{sortable}" class="sortable"' if sortable else ""
    return (
        f"<table{table_id}><caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{''.join(heads)}</tr></thead><tbody>{body}</tbody></table>"
    )


def _plans(scenario: Scenario) -> dict[str, list[str]]:
    """Per customer, the plans its usage was priced on, sorted."""
    plans: dict[str, set[str]] = {}
    for customer, plan, _, _ in scenario.lines:
        plans.setdefault(customer, set()).add(plan)
    return {customer: sorted(names) for customer, names in plans.items()}


def _plan_of(customer: str, before: Mapping[str, list[str]], after: Mapping[str, list[str]]) -> str:
    old, new = ", ".join(before.get(customer, [])), ", ".join(after.get(customer, []))
    return old if old == new or not new else new if not old else f"{old} \u2192 {new}"


def _by_plan(scenario: Scenario, asset: str) -> dict[str, tuple[Decimal, Decimal]]:
    """Per plan: (usage, period close) in ``asset``; a customer's fees and close count under its plan
    (``several plans`` for one whose usage was priced on more than one, ``no usage`` for one without)."""
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for (_, plan, _, line_asset), amount in scenario.lines.items():
        if line_asset == asset:
            usage, close = totals.get(plan, (ZERO, ZERO))
            totals[plan] = (usage + amount, close)
    plans = _plans(scenario)
    for customer, per_asset in scenario.closing.items():
        if asset not in per_asset:
            continue
        names = plans.get(customer, [])
        plan = names[0] if len(names) == 1 else "several plans" if names else "no usage"
        usage, close = totals.get(plan, (ZERO, ZERO))
        totals[plan] = (usage, close + per_asset[asset])
    return totals


def _main_asset(result: SimulationResult) -> str | None:
    """The asset the charts show: the baseline pricebook's currency, when anything was charged in it."""
    currency = result.baseline.currency
    charged = {asset for s in result.scenarios for per_asset in s.charged.values() for asset in per_asset}
    return currency if currency in charged else min(charged, default=None)


def _charts(result: SimulationResult, asset: str) -> list[tuple[str, str]]:
    """(title, data URI) of each chart.

    Every text is drawn as it is: customer ids, labels and plan names are data,
    and matplotlib would read ``$...$`` in them as mathtext (and fail on ``$$``).
    """
    with _pyplot().rc_context({"text.parse_math": False, "font.size": 9}):
        return _draw_charts(result, asset)


def _histogram(values: list[float], xlabel: str) -> str:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3))
    _, edges, patches = axes.hist(values, bins=min(30, max(5, len(values))), color=NEUTRAL, edgecolor="white")
    for left, right, patch in zip(edges, edges[1:], patches, strict=False):
        middle = (left + right) / 2
        patch.set_facecolor(UP if middle > 0 else DOWN if middle < 0 else NEUTRAL)
    axes.axvline(0, color="#5b6474", linewidth=0.8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("customers")
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _movers_chart(names: list[str], values: list[float], xlabel: str) -> str:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 0.6 + 0.32 * len(names)))
    axes.barh(names, values, color=[UP if v > 0 else DOWN for v in values])
    axes.axvline(0, color="#5b6474", linewidth=0.8)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _draw_charts(result: SimulationResult, asset: str) -> list[tuple[str, str]]:
    plt = _pyplot()
    charts = []
    rows = [row for row in result.rows() if row["asset"] == asset]
    for candidate in result.candidates:
        key, percent = f"delta {candidate.label}", f"% {candidate.label}"
        changes = [float(row[key]) for row in rows]  # type: ignore[arg-type]
        charts.append(
            (
                f"Change per customer in {asset}: {candidate.label}",
                _histogram(changes, f"change per customer under {candidate.label} ({asset})"),
            )
        )
        percents = [float(row[percent]) for row in rows if row[percent] is not None]  # type: ignore[arg-type]
        if percents:
            charts.append(
                (
                    f"Change per customer in percent: {candidate.label}",
                    _histogram(percents, f"change per customer under {candidate.label} (%)"),
                )
            )
    per_scenario = [_by_plan(scenario, asset) for scenario in result.scenarios]
    plans = sorted({plan for totals in per_scenario for plan in totals})
    if plans:
        count = len(result.scenarios)
        figure, axes = plt.subplots(figsize=(6, 0.8 + 0.4 * len(plans) * count))
        height = 0.8 / count
        for number, (scenario, totals) in enumerate(zip(result.scenarios, per_scenario, strict=True)):
            positions = [i + number * height for i in range(len(plans))]
            usage = [float(totals.get(p, (ZERO, ZERO))[0]) for p in plans]
            fees = [float(totals.get(p, (ZERO, ZERO))[1]) for p in plans]
            colour = plt.cm.tab10(number % 10)
            axes.barh(positions, usage, height=height, color=colour, label=f"{scenario.label}: usage")
            axes.barh(
                positions,
                fees,
                left=usage,
                height=height,
                color=colour,
                alpha=0.45,
                hatch="//",
                label=f"{scenario.label}: fees and close",
            )
        axes.set_yticks([i + (count - 1) * height / 2 for i in range(len(plans))], plans)
        axes.invert_yaxis()
        axes.set_xlabel(f"revenue ({asset})")
        axes.legend(fontsize=8, loc="lower right")
        axes.spines[["top", "right"]].set_visible(False)
        charts.append(("Revenue by plan under each pricebook, usage and fees", _png(figure)))
    for candidate in result.candidates:
        key, percent = f"delta {candidate.label}", f"% {candidate.label}"
        by_money = sorted((row for row in rows if row[key]), key=lambda row: -abs(row[key]))[:TOP]  # type: ignore[arg-type]
        if by_money:
            names = [str(row["customer"]) for row in by_money]
            values = [float(row[key]) for row in by_money]  # type: ignore[arg-type]
            chart = _movers_chart(names, values, f"change under {candidate.label} ({asset})")
            charts.append((f"Top movers in {asset}: {candidate.label}", chart))
        by_percent = _top_by_percent(rows, percent)
        if by_percent:
            names = [str(row["customer"]) for row in by_percent]
            values = [float(row[percent]) for row in by_percent]  # type: ignore[arg-type]
            chart = _movers_chart(names, values, f"change under {candidate.label} (%)")
            charts.append((f"Top movers in percent: {candidate.label}", chart))
    return charts


def _top_by_percent(rows: Sequence[dict[str, object]], key: str) -> list[dict[str, object]]:
    moved = [row for row in rows if row[key]]
    return sorted(moved, key=lambda row: -abs(row[key]))[:TOP]  # type: ignore[arg-type]


def _scope(result: SimulationResult, scope: Scope | None, figures: _Figures) -> str:
    scope = scope or Scope()
    rows = result.rows()
    items: list[tuple[str, str]] = []
    for scenario in result.scenarios:
        role = "baseline" if scenario is result.baseline else "candidate"
        where = scope.pricebooks.get(scenario.label)
        items.append((f"{role} {scenario.label}", where or scenario.label))
    if scope.first is not None and scope.last is not None:
        span = f"{scope.first.isoformat(timespec='seconds')} to {scope.last.isoformat(timespec='seconds')}"
    else:
        periods = sorted({period for s in result.scenarios for period in s.periods})
        span = f"billing periods {periods[0]} to {periods[-1]}" if periods else "no event"
    items.append(("events from", span))
    items.append(("events", "not counted" if scope.events is None else f"{scope.events:,}"))
    customers = scope.customers if scope.customers is not None else len({row["customer"] for row in rows})
    charged = len({row["customer"] for row in rows})
    items.append(("customers", f"{customers:,} ({charged:,} charged by a pricebook)"))
    shown = ", ".join(
        f"{asset} at {scale} places" if scale is not None else f"{asset} exactly"
        for asset in sorted({str(row["asset"]) for row in rows})
        for scale in [figures.scale(asset)]
    )
    if shown:
        items.append(("amounts shown", f"{shown}; hover a figure for its exact value"))
    body = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>" for name, value in items)
    return f'<section aria-labelledby="scope"><h2 id="scope">Scope</h2><dl class="scope">{body}</dl></section>'


def _revenue(result: SimulationResult, figures: _Figures) -> str:
    base = result.baseline.revenue()
    rows = []
    for scenario in result.scenarios:
        for asset, amount in sorted(scenario.revenue().items()):
            baseline = scenario is result.baseline
            change = None if baseline else amount - base.get(asset, ZERO)
            percent = None if baseline else percent_change(base.get(asset, ZERO), amount)
            rows.append(
                [
                    _text_cell(scenario.label),
                    _text_cell(asset),
                    _money_cell(figures, amount, asset),
                    _money_cell(figures, change, asset, change=True),
                    _percent_cell(percent),
                ]
            )
    table = _table("Revenue per pricebook", ["pricebook", "asset", "revenue", "change", "change %"], rows)
    movers = [[_text_cell(c.label), *(_count_cell(n) for n in result.movers(c).values())] for c in result.candidates]
    counts = _table("Customers paying more, less, the same", ["pricebook", "more", "less", "same"], movers)
    return table + (counts if movers else "")


def _impacts(impacts: Mapping[str, list[dict[str, object]]], figures: _Figures) -> str:
    parts = []
    for label, rows in impacts.items():
        cells = [
            [
                _text_cell(row["change"]),
                _text_cell(row["where"]),
                _text_cell(row["asset"]),
                _money_cell(figures, row["impact"], str(row["asset"]), change=True),  # type: ignore[arg-type]
            ]
            for row in rows
        ]
        parts.append(
            _table(
                f"What each change does to revenue: {label}",
                ["change", "where", "asset", "impact"],
                cells,
                empty=f"{label}: no change moves revenue on these events.",
            )
        )
    return "".join(parts)


def _customers(result: SimulationResult, figures: _Figures) -> str:
    before = _plans(result.baseline)
    after = [_plans(candidate) for candidate in result.candidates]
    single = len(result.candidates) == 1
    columns = ["customer", "plan", "asset", result.baseline.label]
    for candidate in result.candidates:
        columns += [
            candidate.label,
            *(["change", "change %"] if single else [f"change {candidate.label}", f"% {candidate.label}"]),
        ]
    rows = []
    for row in result.rows():
        customer, asset = str(row["customer"]), str(row["asset"])
        plan = _plan_of(customer, before, after[0] if after else before)
        cells = [_text_cell(customer), _text_cell(plan), _text_cell(asset)]
        cells.append(_money_cell(figures, row[result.baseline.label], asset))  # type: ignore[arg-type]
        for candidate in result.candidates:
            cells.append(_money_cell(figures, row[candidate.label], asset))  # type: ignore[arg-type]
            cells.append(_money_cell(figures, row[f"delta {candidate.label}"], asset, change=True))  # type: ignore[arg-type]
            cells.append(_percent_cell(row[f"% {candidate.label}"]))  # type: ignore[arg-type]
        rows.append(cells)
    if not rows:
        return '<p class="note">Nothing was charged.</p>'
    search = (
        '<p><label for="filter">Filter rows </label>'
        '<input type="search" id="filter" data-filters="customers" data-status="shown" '
        'placeholder="customer, plan or asset" autocomplete="off"> '
        f'<span id="shown" class="note" aria-live="polite">{len(rows):,} of {len(rows):,} rows shown</span></p>'
    )
    note = '<p class="note">Click a column header to sort by it; click again to reverse.</p>'
    table = _table("Per customer and asset", columns, rows, sortable="customers")
    return search + note + table


def _movers(result: SimulationResult, figures: _Figures) -> str:
    parts = []
    rows = result.rows()
    for candidate in result.candidates:
        key, percent = f"delta {candidate.label}", f"% {candidate.label}"
        by_money = sorted((row for row in rows if row[key]), key=lambda row: -abs(row[key]))[:TOP]  # type: ignore[arg-type]
        if not by_money:
            parts.append(f'<p class="note">No customer pays differently under {html.escape(candidate.label)}.</p>')
            continue
        by_percent = _top_by_percent(rows, percent)
        for caption, chosen in (("by money", by_money), ("by percent", by_percent)):
            cells = [
                [
                    _text_cell(row["customer"]),
                    _text_cell(row["asset"]),
                    _money_cell(figures, row[key], str(row["asset"]), change=True),  # type: ignore[arg-type]
                    _percent_cell(row[percent]),  # type: ignore[arg-type]
                ]
                for row in chosen
            ]
            parts.append(
                _table(
                    f"Top movers {caption}: {candidate.label}",
                    ["customer", "asset", "change", "change %"],
                    cells,
                    empty=f"No customer pays differently under {candidate.label}.",
                )
            )
    return "".join(parts)


def _by_plan_table(result: SimulationResult, asset: str, figures: _Figures) -> str:
    rows = []
    for scenario in result.scenarios:
        for plan, (usage, close) in sorted(_by_plan(scenario, asset).items()):
            rows.append(
                [
                    _text_cell(plan),
                    _text_cell(scenario.label),
                    _money_cell(figures, usage, asset),
                    _money_cell(figures, close, asset),
                    _money_cell(figures, usage + close, asset),
                ]
            )
    rows.sort(key=lambda cells: cells[0].text)
    return _table(f"Revenue by plan in {asset}", ["plan", "pricebook", "usage", "fees and close", "total"], rows)


def render_report(
    result: SimulationResult,
    title: str = "Pricebook simulation",
    *,
    scope: Scope | None = None,
    impacts: Mapping[str, list[dict[str, object]]] | None = None,
    scales: Mapping[str, int] | None = None,
) -> str:
    """The HTML page: scope, revenue, what each change does, charts, top movers, the per-customer table
    (sorts and filters in the page), margins, what was not priced or would have been capped.

    ``scope``: what was simulated (else what the result itself tells: customers charged, billing periods).
    ``impacts``: per candidate label, its :func:`~rating.simulate.summary.change_impacts` rows (see
    :func:`itemise`). ``scales``: decimal places per asset (see :func:`scales_of`; an ISO currency not in
    it is shown at its own scale, another asset exactly).
    """
    figures = _Figures(scales or {})
    refused = [
        [_text_cell(s.label), _text_cell(str(code)), _count_cell(n)]
        for s in result.scenarios
        for code, n in s.unpriced.items()
    ]
    refused += [
        [_text_cell(s.label), _text_cell(f"{customer}: spend cap would refuse (charged here)"), _count_cell(n)]
        for s in result.scenarios
        for customer, (n, _) in s.capped.items()
    ]
    charted = _main_asset(result)
    charts = _charts(result, charted) if charted is not None and result.candidates else []
    candidates = ", ".join(c.label for c in result.candidates) or "none"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Baseline {html.escape(result.baseline.label)}; candidates: {html.escape(candidates)}. '
        "Totals include period close (fees, minimums, commitments, rounding). "
        f'Revenue up is shown in <span class="up">green (+)</span>, down in <span class="down">red (-)</span>.</p>',
        _scope(result, scope, figures),
        "<h2>Revenue</h2>",
        _revenue(result, figures),
    ]
    if impacts:
        parts += [
            "<h2>What each change does</h2>",
            '<p class="note">Each change applied alone to the baseline, on the same events (as '
            "<code>rating diff --events</code> computes it); what the changes do together beyond their sum is the "
            "remainder, so the impacts add up to the total.</p>",
            _impacts(impacts, figures),
        ]
    if result.margins():
        margin_rows = [
            [
                _text_cell(row["pricebook"]),
                _text_cell(row["asset"]),
                *(_money_cell(figures, row[name], str(row["asset"])) for name in ("revenue", "cost", "margin")),  # type: ignore[arg-type]
                _percent_cell(row["margin %"], change=False),  # type: ignore[arg-type]
                _money_cell(figures, row["change"], str(row["asset"]), change=True),  # type: ignore[arg-type]
            ]
            for row in result.margins()
        ]
        columns = ["pricebook", "asset", "revenue", "cost", "margin", "margin %", "change"]
        parts += ["<h2>Margin</h2>", _table("Margin on provider cost", columns, margin_rows)]
    if charted is not None:
        parts += ["<h2>By plan</h2>", _by_plan_table(result, charted, figures)]
    if charts:
        figures_html = "".join(
            f'<figure><figcaption>{html.escape(name)}</figcaption><img alt="{html.escape(name)}" src="{uri}"></figure>'
            for name, uri in charts
        )
        parts += ["<h2>Charts</h2>", f'<div class="charts">{figures_html}</div>']
    if result.candidates:
        parts += ["<h2>Top movers</h2>", _movers(result, figures)]
    parts += ["<h2>Per customer</h2>", _customers(result, figures)]
    if refused:
        parts += [
            "<h2>Not priced, or capped</h2>",
            _table("Events not priced, or capped", ["pricebook", "not priced", "events"], refused),
        ]
    parts.append(f"</main><script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)
