"""Rating commands: ``quote`` prices without posting, ``rate`` posts a file or a stream, ``demo`` rates an example."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rating.accounts import customer_account
from rating.cli import args as values
from rating.cli.common import (
    DEFAULT_DB,
    NOTHING_DONE,
    PRICEBOOK_HELP,
    STDIN,
    Commands,
    Progress,
    add_command,
    count_lines,
    events_file,
    open_engine,
    outcome,
)
from rating.cli.demo import example_pricebook, write_demo_events
from rating.cli.output import OutputFormat, render
from rating.core.charges import Charge
from rating.engine import BatchReport
from rating.errors import RatingError
from rating.events import Pause, Sourced, follow, parse_event, parse_json, read_events, read_jsonl
from rating.registry import Registry
from rating.storage import Storage, masked

#: ``rate`` refuses events stamped further ahead than this unless told otherwise (``--future-tolerance none``).
DEFAULT_FUTURE_TOLERANCE = "5m"

CHARGE_COLUMNS = ["event", "meter", "group", "quantity", "unit_price", "amount", "asset", "explanation"]
REJECTION_COLUMNS = ["location", "code", "reason"]


def register(commands: Commands) -> None:
    """``quote``, ``rate`` and ``demo``."""
    quote = add_command(
        commands, "quote", cmd_quote, "price events without posting anything", db=DEFAULT_DB, output=True
    )
    quote.add_argument(
        "event",
        metavar="EVENT",
        help="an event as JSON text, a .jsonl/.csv file of events, or - for JSON Lines on stdin",
    )
    quote.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)

    rate = add_command(
        commands, "rate", cmd_rate, "rate a file of events and post the charges", db=DEFAULT_DB, output=True
    )
    rate.add_argument(
        "events", metavar="EVENTS", help="a .jsonl or .csv file of events, or - for JSON Lines on standard input"
    )
    rate.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    rate.add_argument("--strict", action="store_true", help="post nothing if any record is rejected")
    rate.add_argument(
        "--future-tolerance",
        metavar="DURATION",
        type=values.flag(values.tolerance),
        default=DEFAULT_FUTURE_TOLERANCE,
        help=f"refuse events stamped later than now + this, e.g. 90s, 2h, 1d (default {DEFAULT_FUTURE_TOLERANCE});"
        " none accepts any time (back-office imports)",
    )

    demo = add_command(
        commands, "demo", cmd_demo, "rate generated events with the example pricebook", db="rating-demo.db", output=True
    )
    demo.add_argument(
        "--events", type=values.flag(values.count), default=2_000, help="how many events to generate (default 2000)"
    )
    demo.add_argument(
        "--events-file", default="demo-events.jsonl", type=values.flag(values.output_file), help="where to write them"
    )
    demo.add_argument("--pricebook", "-p", action="append", help="default: the shipped ai-gateway example")


def quote_inputs(source: str) -> Iterator[Sourced]:
    """The records of ``source``: one event given as JSON text, JSON Lines on standard input (``-``), or the
    records of a .jsonl/.csv file."""
    if source == STDIN:
        yield from read_jsonl(sys.stdin.buffer, "<stdin>")
    elif source.lstrip().startswith("{"):
        try:
            yield Sourced("argument", event=parse_event(parse_json(source)))
        except RatingError as error:
            yield Sourced("argument", error=str(error))
    else:
        yield from read_events(source)


def charge_rows(event_id: str, charges: Iterable[Charge]) -> list[dict[str, Any]]:
    """One row per charge of an event, as ``quote`` and ``request complete`` print them."""
    return [
        {
            "event": event_id,
            "meter": charge.meter,
            "group": "/".join(charge.group),
            "quantity": charge.quantity,
            "unit_price": charge.unit_price,
            "amount": charge.amount,
            "asset": charge.asset,
            "explanation": charge.explanation,
        }
        for charge in charges
    ]


def cmd_quote(args: argparse.Namespace, registry: Registry) -> int:
    engine = open_engine(args, registry, args.pricebook, "empty")
    rows: list[dict[str, Any]] = []
    quoted = refused = 0
    for record in quote_inputs(args.event):
        if record.event is None:
            print(f"{record.location}: {record.error}", file=sys.stderr)
            refused += 1
            continue
        try:
            rating = engine.quote(record.event)
        except RatingError as error:
            print(f"{record.location}: {error}", file=sys.stderr)
            refused += 1
            continue
        quoted += 1
        rows += charge_rows(record.event.id, rating.charges)
    print(render(rows, CHARGE_COLUMNS, args.output))
    return outcome(quoted, refused)


def cmd_rate(args: argparse.Namespace, registry: Registry) -> int:
    engine = open_engine(args, registry, args.pricebook, "create")
    engine.pause_gc = True  # a command owns its process: the collector's pauses cost a third of a batch
    records: Iterable[Sourced | Pause]
    if args.events == STDIN and not args.strict:
        records, progress = follow(sys.stdin.buffer, "<stdin>"), Progress(None)
    else:
        path = events_file(args, args.events)
        records, progress = read_events(path), Progress(count_lines(path))
    report = engine.rate_batch(records, strict=args.strict, progress=progress)
    print_report(report, args.output, engine.storage)
    if args.strict and report.rejected:
        print(f"strict: nothing posted because {len(report.rejected):,} records were rejected", file=sys.stderr)
        return NOTHING_DONE
    return outcome(report.posted + report.duplicates, len(report.rejected))


def print_report(report: BatchReport, fmt: OutputFormat, storage: Storage) -> None:
    """Totals per customer on stdout; rejections with their codes (JSON: in the same document, CSV: on stderr)."""
    rows = [
        {"customer": customer, "events": report.events.get(customer, 0), "asset": asset, "charged": amount}
        for (customer, asset), amount in sorted(report.totals.items())
    ]
    rejected = [{"location": r.location, "code": str(r.code), "reason": r.reason} for r in report.rejected]
    if fmt == "json":
        document = {
            "posted": report.posted,
            "already_posted": report.duplicates,
            "totals": json.loads(render(rows, ["customer", "events", "asset", "charged"], "json")),
            "rejected": rejected,
        }
        print(json.dumps(document, indent=2))
    else:
        if fmt == "csv" and rejected:
            print(render(rejected, REJECTION_COLUMNS, "csv"), file=sys.stderr)
        else:
            for rejection in report.rejected:
                print(rejection, file=sys.stderr)
        print(render(rows, ["customer", "events", "asset", "charged"], fmt))
    print(
        f"posted {report.posted:,} events, {report.duplicates:,} already posted, "
        f"{len(report.rejected):,} rejected (storage: {masked(storage.url)})",
        file=sys.stderr,
    )


def cmd_demo(args: argparse.Namespace, registry: Registry) -> int:
    pricebook = args.pricebook or [example_pricebook()]
    events = write_demo_events(Path(args.events_file), args.events)
    names = ", ".join(map(str, pricebook))
    print(f"demo: {args.events:,} events in {events}, pricebook {names}, database {masked(args.db)}", file=sys.stderr)
    engine = open_engine(args, registry, pricebook, "create")
    report = engine.rate_batch(read_events(events), progress=Progress(args.events))
    for rejection in report.rejected:
        print(rejection, file=sys.stderr)
    rows = [
        {"customer": owner[0], "asset": asset, "charged": amount}
        for (account, asset), amount in engine.storage.balances().items()
        if (owner := customer_account(account)) is not None and owner[1] == "receivable"
    ]
    print(render(rows, ["customer", "asset", "charged"], args.output))
    print(
        f"posted {report.posted:,} events, {report.duplicates:,} already posted, {len(report.rejected):,} rejected",
        file=sys.stderr,
    )
    print(f"next: rating balance --db {masked(args.db)}", file=sys.stderr)
    return outcome(report.posted + report.duplicates, len(report.rejected))
