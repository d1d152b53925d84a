"""What a simulation says in words and rows: the summary ``rating simulate`` prints, the impacts ``rating diff`` lists.

For embedders that run :func:`rating.simulate.simulate` themselves and want the
same lines and figures as the command line, computed from the same exact decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rating.money import ZERO, format_decimal
from rating.reports.diff import Edit
from rating.simulate import SimulationResult, percent_change


def _text(value: object) -> str:
    """A figure as people read it, like the command line's tables
    (``rating.cli.output`` is an interface, above here)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def simulation_summary(result: SimulationResult, invalid: int) -> list[str]:
    """Revenue under each pricebook, the change, who pays more or less, the biggest movers, what was refused.

    ``invalid`` is the number of input records that were not events (skipped before pricing).
    """
    lines = []
    base = result.baseline.revenue()
    for scenario in result.scenarios:
        revenue = ", ".join(f"{format_decimal(v)} {a}" for a, v in sorted(scenario.revenue().items())) or "nothing"
        lines.append(f"{scenario.label}: revenue {revenue}")
    for candidate in result.candidates:
        for asset, amount in sorted(candidate.revenue().items()):
            change = percent_change(base.get(asset, ZERO), amount)
            shown = f" ({change:+}%)" if change is not None else ""
            delta = amount - base.get(asset, ZERO)
            lines.append(f"{candidate.label} vs {result.baseline.label}: {format_decimal(delta)} {asset}{shown}")
        movers = result.movers(candidate)
        lines.append(f"  customers paying more: {movers['more']}, less: {movers['less']}, the same: {movers['same']}")
        key = f"delta {candidate.label}"
        biggest = sorted(result.rows(), key=lambda row: -abs(row[key]))[:5]  # type: ignore[arg-type]
        for row in biggest:
            if row[key]:
                lines.append(f"  mover {row['customer']}: {format_decimal(row[key])} {row['asset']}")  # type: ignore[arg-type]
    for margin in result.margins():
        text = {name: _text(value) for name, value in margin.items()}
        changed = f", change {text['change']}" if text["change"] else ""
        percent = f" ({text['margin %']}%)" if text["margin %"] else ""
        lines.append(
            f"{text['pricebook']}: margin {text['margin']} {text['asset']}{percent} on cost {text['cost']}{changed}"
        )
    for scenario in result.scenarios:
        for code, count in sorted(scenario.unpriced.items()):
            lines.append(f"{scenario.label}: {count:,} events not priced ({code})")
        for customer, (count, amount) in sorted(scenario.capped.items()):
            lines.append(
                f"{scenario.label}: {customer}'s spend cap would have refused {count:,} events"
                f" ({format_decimal(amount)}); the totals include them"
            )
    if invalid:
        lines.append(f"{invalid:,} invalid records skipped")
    return lines


def change_impacts(result: SimulationResult, edits: Sequence[Edit]) -> list[dict[str, object]]:
    """Per asset: each separable change's revenue impact alone, the remainder, and all changes together.

    ``result`` holds the baseline (the pricebook before), then the pricebook after with every
    change, then one candidate per edit of ``edits`` applied alone, in that order (as ``rating diff
    --events`` simulates them). Assets on which nothing changed are left out.
    """
    base = result.baseline.revenue()
    together, *alone = result.candidates
    rows: list[dict[str, object]] = []
    for asset in sorted(set(base) | {a for s in result.candidates for a in s.revenue()}):
        total = together.revenue().get(asset, ZERO) - base.get(asset, ZERO)
        itemised = ZERO
        for edit, scenario in zip(edits, alone, strict=True):
            impact = scenario.revenue().get(asset, ZERO) - base.get(asset, ZERO)
            itemised += impact
            rows.append({"change": edit.what, "where": edit.where, "asset": asset, "impact": impact})
        if total != itemised:
            remainder = {"change": "other", "where": "changes not itemised, and how the changes combine"}
            rows.append({**remainder, "asset": asset, "impact": total - itemised})
        rows.append({"change": "all", "where": "every change together", "asset": asset, "impact": total})
    return [row for row in rows if any(r["impact"] for r in rows if r["asset"] == row["asset"])]
