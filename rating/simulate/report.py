"""A self-contained HTML page for a simulation: exact figures in tables, charts inline (extra ``[charts]``).

The page has no outside references (charts are PNG data URIs), so it can be
mailed or attached to a pricing review as one file. Every amount in its tables
is the exact decimal the simulation computed; the charts convert amounts to
floats only to place bars on a picture, never to compute anything.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rating.distribution import install_hint
from rating.errors import RatingError
from rating.money import ZERO, format_decimal
from rating.simulate import Scenario, SimulationResult, percent_change

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1d2330; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { padding: 0.25rem 0.75rem; border-bottom: 1px solid #dde1e8; }
th { text-align: left; background: #f3f5f8; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #a1260d; } .down { color: #0b6b3a; } .note { color: #5b6474; font-size: 0.9rem; }
img { max-width: 100%; }
"""


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


def _main_asset(result: SimulationResult) -> str | None:
    """The asset the charts show: the baseline pricebook's currency, when anything was charged in it."""
    currency = result.baseline.currency
    charged = {asset for s in result.scenarios for per_asset in s.charged.values() for asset in per_asset}
    return currency if currency in charged else min(charged, default=None)


def _by_plan(scenario: Scenario, asset: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for (_, plan, _, line_asset), amount in scenario.lines.items():
        if line_asset == asset:
            totals[plan] = totals.get(plan, ZERO) + amount
    return totals


def require_charts() -> None:
    """Refuse at once, before a long simulation, when matplotlib (the extra ``[charts]``) is not installed."""
    _pyplot()


def _charts(result: SimulationResult, asset: str) -> list[tuple[str, str]]:
    """(title, data URI) of each chart.

    Every text is drawn as it is: customer ids, labels and plan names are data,
    and matplotlib would read ``$...$`` in them as mathtext (and fail on ``$$``).
    """
    with _pyplot().rc_context({"text.parse_math": False}):
        return _draw_charts(result, asset)


def _draw_charts(result: SimulationResult, asset: str) -> list[tuple[str, str]]:
    plt = _pyplot()
    charts = []
    rows = [row for row in result.rows() if row["asset"] == asset]
    for candidate in result.candidates:
        changes = [float(row[f"delta {candidate.label}"]) for row in rows]  # type: ignore[arg-type]
        figure, axes = plt.subplots(figsize=(7, 3.2))
        axes.hist(changes, bins=min(30, max(5, len(changes))), color="#3b6fd4")
        axes.set_xlabel(f"change per customer under {candidate.label} ({asset})")
        axes.set_ylabel("customers")
        charts.append((f"Distribution of per-customer change: {candidate.label}", _png(figure)))
    plans = sorted({plan for s in result.scenarios for plan in _by_plan(s, asset)})
    if plans:
        figure, axes = plt.subplots(figsize=(7, 0.5 + 0.45 * len(plans) * len(result.scenarios)))
        height = 0.8 / len(result.scenarios)
        for number, scenario in enumerate(result.scenarios):
            totals = _by_plan(scenario, asset)
            positions = [i + number * height for i in range(len(plans))]
            axes.barh(positions, [float(totals.get(p, ZERO)) for p in plans], height=height, label=scenario.label)
        axes.set_yticks([i + 0.4 - height / 2 for i in range(len(plans))], plans)
        axes.set_xlabel(f"usage revenue ({asset})")
        axes.legend()
        charts.append(("Usage revenue by plan under each pricebook", _png(figure)))
    for candidate in result.candidates:
        key = f"delta {candidate.label}"
        movers = sorted((row for row in rows if row[key]), key=lambda row: -abs(row[key]))[:10]  # type: ignore[arg-type]
        if movers:
            figure, axes = plt.subplots(figsize=(7, 0.6 + 0.35 * len(movers)))
            values = [float(row[key]) for row in movers]  # type: ignore[arg-type]
            axes.barh(
                [str(row["customer"]) for row in movers],
                values,
                color=["#a1260d" if v > 0 else "#0b6b3a" for v in values],
            )
            axes.invert_yaxis()
            axes.set_xlabel(f"change under {candidate.label} ({asset})")
            charts.append((f"Top movers: {candidate.label}", _png(figure)))
    return charts


def _cell(column: str, value: object) -> str:
    if isinstance(value, Decimal):
        change = column.startswith(("delta", "change", "%"))
        css = "n up" if change and value > 0 else "n down" if change and value < 0 else "n"
        return f'<td class="{css}">{html.escape(format_decimal(value))}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(rows: Sequence[dict[str, object]]) -> str:
    if not rows:
        return '<p class="note">Nothing was charged.</p>'
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(c, row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(result: SimulationResult, title: str = "Pricebook simulation") -> str:
    """The HTML page: summary, charts, per-customer table, what was not priced or would have been capped."""
    summary: list[dict[str, object]] = []
    base = result.baseline.revenue()
    for scenario in result.scenarios:
        for asset, amount in sorted(scenario.revenue().items()):
            baseline = scenario is result.baseline
            change = None if baseline else amount - base.get(asset, ZERO)
            percent = None if baseline else percent_change(base.get(asset, ZERO), amount)
            summary.append(
                {"pricebook": scenario.label, "asset": asset, "revenue": amount, "change": change, "change %": percent}
            )
    movers: list[dict[str, object]] = []
    for candidate in result.candidates:
        counts = result.movers(candidate)
        movers.append({"pricebook": candidate.label, **counts})
    refused: list[dict[str, object]] = [
        {"pricebook": s.label, "not priced": str(code), "events": n}
        for s in result.scenarios
        for code, n in s.unpriced.items()
    ]
    refused += [
        {"pricebook": s.label, "not priced": f"{customer}: spend cap would refuse (charged here)", "events": n}
        for s in result.scenarios
        for customer, (n, _) in s.capped.items()
    ]
    charted = _main_asset(result)
    charts = _charts(result, charted) if charted is not None and result.candidates else []
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Baseline {html.escape(result.baseline.label)}; candidates: '
        f"{html.escape(', '.join(c.label for c in result.candidates) or 'none')}. Totals include period close "
        "(fees, minimums, commitments, rounding); every amount is exact.</p>",
        "<h2>Revenue</h2>",
        _table(summary),
        _table(movers) if movers else "",
    ]
    if result.margins():
        parts += ["<h2>Margin</h2>", _table(result.margins())]
    parts += [f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="{uri}">' for name, uri in charts]
    parts += ["<h2>Per customer</h2>", _table(result.rows())]
    if refused:
        parts += ["<h2>Not priced, or capped</h2>", _table(refused)]
    parts.append("</body></html>")
    return "\n".join(parts)
