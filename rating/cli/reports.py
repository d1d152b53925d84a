"""Report commands over a time window: ``usage`` (quantities and cost per group) and ``margin``."""

from __future__ import annotations

import argparse

from rating.cli import args as values
from rating.cli.common import DEFAULT_DB, PRICEBOOK_HELP, Commands, add_command, open_storage, report_window
from rating.cli.output import render
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.reports.usage import margin_report, usage_report


def register(commands: Commands) -> None:
    """``usage`` and ``margin``."""
    usage = add_command(
        commands, "usage", cmd_usage, "usage and cost per group over a time window", db=DEFAULT_DB, output=True
    )
    usage.add_argument(
        "--period",
        default="30d",
        type=values.flag(values.window),
        help="30d, 24h, or a billing period such as 2026-11 (default 30d)",
    )
    usage.add_argument(
        "--group-by", default="agent", help="customer, event, agent, session, order or any property (default agent)"
    )
    usage.add_argument("--customer", help="only this customer")
    usage.add_argument(
        "--until",
        type=values.flag(values.timestamp),
        help="end of a relative window, ISO 8601 with a zone (default now)",
    )
    usage.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)

    margin = add_command(
        commands, "margin", cmd_margin, "revenue, provider cost and margin per group", db=DEFAULT_DB, output=True
    )
    margin.add_argument(
        "--below",
        type=values.flag(values.percentage),
        help="only groups whose margin is under this percentage, e.g. 20%%",
    )
    margin.add_argument(
        "--period",
        default="30d",
        type=values.flag(values.window),
        help="30d, 24h, or a billing period such as 2026-11 (default 30d)",
    )
    margin.add_argument("--group-by", default="model", help="customer, event, agent, model or any property")
    margin.add_argument(
        "--until",
        type=values.flag(values.timestamp),
        help="end of a relative window, ISO 8601 with a zone (default now)",
    )
    margin.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)


def cmd_usage(args: argparse.Namespace, registry: Registry) -> int:
    book = load_catalog(args.pricebook, registry).latest
    since, until = report_window(args, book)
    report = usage_report(open_storage(args, registry, "read"), book, since, until, args.group_by, args.customer)
    meters = sorted({m for row in report for m in row.quantities})
    assets = sorted({a for row in report for a in row.cost})
    rows = [
        {
            args.group_by: row.group,
            "events": row.events,
            **{m: row.quantities.get(m) for m in meters},
            **{f"cost_{a}": row.cost.get(a) for a in assets},
        }
        for row in report
    ]
    columns = [args.group_by, "events", *meters, *(f"cost_{a}" for a in assets)]
    print(render(rows, columns, args.output))
    return 0


def cmd_margin(args: argparse.Namespace, registry: Registry) -> int:
    book = load_catalog(args.pricebook, registry).latest
    since, until = report_window(args, book)
    report = margin_report(open_storage(args, registry, "read"), book, since, until, args.group_by, args.below)
    currency = book.currency
    rows = [
        {
            args.group_by: r.group,
            f"revenue_{currency}": r.revenue,
            f"cost_{currency}": r.cost,
            f"margin_{currency}": r.margin,
            "margin_%": r.margin_percent,
        }
        for r in report
    ]
    columns = [args.group_by, f"revenue_{currency}", f"cost_{currency}", f"margin_{currency}", "margin_%"]
    print(render(rows, columns, args.output))
    return 0
