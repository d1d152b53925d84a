"""Pricebook commands: ``check`` validates, ``schema`` prints the format, ``diff`` compares two versions."""

from __future__ import annotations

import argparse
import json
import sys

from rating.cli import args as values
from rating.cli.common import Commands, add_command, open_storage
from rating.cli.output import render
from rating.cli.simulate import history, simulation_status
from rating.customers import spec_of, unfit
from rating.errors import PricebookError
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook, json_schema, load_pricebook, summary
from rating.registry import Registry
from rating.reports.diff import diff, separable_edits
from rating.simulate import EventFile, simulate
from rating.simulate.summary import change_impacts, simulation_summary


def register(commands: Commands) -> None:
    """``check``, ``schema`` and ``diff``."""
    check = add_command(commands, "check", cmd_check, "validate pricebooks and summarise them")
    check.add_argument("pricebooks", nargs="+", metavar="PRICEBOOK")
    check.add_argument(
        "--db",
        type=values.flag(values.database),
        help="and the customers stored in this database: each must be one the pricebooks can rate",
    )
    add_command(commands, "schema", cmd_schema, "print the JSON Schema of the pricebook format")
    differences = add_command(commands, "diff", cmd_diff, "what changed between two pricebook versions", output=True)
    differences.add_argument("before", metavar="BEFORE", help="the current pricebook file")
    differences.add_argument("after", metavar="AFTER", help="the changed pricebook file")
    differences.add_argument(
        "--events", metavar="EVENTS", help="and what the change does to this history's revenue (- : standard input)"
    )


def cmd_check(args: argparse.Namespace, registry: Registry) -> int:
    status = 0
    for path in args.pricebooks:
        try:
            book = load_pricebook(path, registry)
        except PricebookError as error:
            for problem in error.problems:
                print(problem, file=sys.stderr)
            status = 1
            continue
        info = summary(book)
        print(
            f"{path}: ok: pricebook {info['pricebook']} version {info['version']}, {info['currency']}, "
            f"{info['meters']} meters, {len(info['plans'])} plans, {info['customers']} customers, "
            f"{info['contracts']} contracts"
        )
        for plan, charges in info["plans"].items():
            print(f"  plan {plan}: {', '.join(charges)}")
        if args.db is not None:
            status = max(status, _check_stored_customers(args, registry, path, book))
    return status


def _check_stored_customers(args: argparse.Namespace, registry: Registry, path: str, book: Pricebook) -> int:
    """One line per customer stored in ``--db`` that ``book`` cannot rate (it rates them as if not stored); 1 if any."""
    stored = open_storage(args, registry, "read").latest_customers()
    problems = 0
    for customer, version in sorted(stored.items()):
        reason = unfit(book, spec_of(version))
        if reason is not None:
            print(f"{path}: customers.{customer} (stored, version {version.sequence}): {reason}", file=sys.stderr)
            problems += 1
    print(f"{path}: {len(stored) - problems:,} of {len(stored):,} stored customers rated by it")
    return 1 if problems else 0


def cmd_schema(args: argparse.Namespace, registry: Registry) -> int:
    print(json.dumps(json_schema(registry), indent=2))
    return 0


def cmd_diff(args: argparse.Namespace, registry: Registry) -> int:
    before, after = (load_pricebook(path, registry) for path in (args.before, args.after))
    rows = [{"change": c.what, "where": c.where, "detail": c.detail} for c in diff(before, after)]
    columns = ["change", "where", "detail"]
    if not args.events:
        print(render(rows, columns, args.output))
        return 0
    events = history(args, registry, after)
    edits = separable_edits(before, after)
    candidates = [Catalog([after])] + [Catalog([edit.alone]) for edit in edits]
    labels = ["before", "after"] + [f"edit {number}" for number, _ in enumerate(edits, start=1)]
    result = simulate(events, Catalog([before]), candidates, registry, labels)
    invalid = events.invalid if isinstance(events, EventFile) else 0
    for line in simulation_summary(result.only(1), invalid):
        print(line, file=sys.stderr)
    impacts = change_impacts(result, edits)
    impact_columns = ["change", "where", "asset", "impact"]
    if args.output == "json":
        document = {"changes": rows, "impacts": json.loads(render(impacts, impact_columns, "json"))}
        print(json.dumps(document, indent=2))
    else:  # two tables, a blank line apart
        print(render(rows, columns, args.output) + "\n\n" + render(impacts, impact_columns, args.output))
    return simulation_status(result, invalid)
