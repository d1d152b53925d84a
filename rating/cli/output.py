"""Tabular output for people (``table``) and programs (``json``, ``csv``).

Decimals are written as their exact text in every format: JSON gets strings,
never numbers a reader might parse as floats.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from rating.money import format_decimal, plain

OutputFormat = Literal["table", "json", "csv"]
FORMATS: tuple[OutputFormat, ...] = ("table", "json", "csv")


def as_text(value: Any) -> str:
    """A cell as people read it: decimals with separators, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _plain(value: Any) -> Any:
    return plain(value) if isinstance(value, Decimal) else value


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: OutputFormat = "table") -> str:
    """``rows`` (dicts keyed by ``columns``) as an aligned table, JSON array or CSV."""
    if fmt == "json":
        return json.dumps([{c: _plain(row.get(c)) for c in columns} for row in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])
        return buffer.getvalue().rstrip("\n")
    cells = [[as_text(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (Decimal, int)) for row in rows if row.get(c) is not None) for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule] + [line(values) for values in cells])
