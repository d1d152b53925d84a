"""Period-end billing runs: ``close-period`` posts fees and minimums, ``payouts`` pays creators, ``rerate`` corrects."""

from __future__ import annotations

import argparse
import json
import sys

from rating.billing.close import close_period
from rating.billing.payouts import pay_creators
from rating.billing.rerate import rerate
from rating.cli import args as values
from rating.cli.common import (
    DEFAULT_DB,
    PRICEBOOK_HELP,
    Commands,
    add_command,
    date_range,
    open_engine,
    open_storage,
    outcome,
)
from rating.cli.output import render
from rating.customers import Customers
from rating.ids import TransactionKind
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry


def register(commands: Commands) -> None:
    """``close-period``, ``payouts`` and ``rerate``."""
    close = add_command(
        commands,
        "close-period",
        cmd_close_period,
        "post fees, minimums and rounding of a period, once",
        db=DEFAULT_DB,
        output=True,
    )
    close.add_argument(
        "--period",
        required=True,
        type=values.flag(values.period),
        help="2026-11 (month), 2026-W47 (week), 2026-11-23 (day) or 2026",
    )
    close.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    close.add_argument("--customer", action="append", help="only these customers (repeatable)")

    payouts = add_command(
        commands, "payouts", cmd_payouts, "pay creators their earnings of a week", db=DEFAULT_DB, output=True
    )
    payouts.add_argument(
        "--week", required=True, type=values.flag(values.week), help="an ISO week, e.g. 2026-W47 (Monday to Sunday)"
    )
    payouts.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)

    correction = add_command(
        commands,
        "rerate",
        cmd_rerate,
        "re-price whole billing periods with a fixed pricebook and post the differences",
        db=DEFAULT_DB,
        output=True,
    )
    correction.add_argument(
        "--from",
        dest="since",
        required=True,
        metavar="DATE",
        type=values.flag(values.date),
        help="the billing periods that start on or after it",
    )
    correction.add_argument(
        "--to", dest="until", required=True, metavar="DATE", type=values.flag(values.date), help="and before this day"
    )
    correction.add_argument("--pricebook", "-p", required=True, action="append", help="the fixed " + PRICEBOOK_HELP)
    correction.add_argument("--dry-run", action="store_true", help="show the differences, post nothing")


def cmd_close_period(args: argparse.Namespace, registry: Registry) -> int:
    engine = open_engine(args, registry, args.pricebook)
    report = close_period(engine, args.period, args.customer)
    rows = [
        {
            "transaction": t.id,
            "customer": t.metadata.get("customer"),
            "asset": p.asset,
            "amount": p.amount,
            "description": t.description,
        }
        for t in report.posted
        for p in t.postings[:1]
    ]
    print(render(rows, ["transaction", "customer", "asset", "amount", "description"], args.output))
    closed = len({t.metadata.get("customer") for t in report.posted if t.kind == TransactionKind.CLOSE})
    for skipped in report.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    print(f"closed {args.period} for {closed:,} customers; posted {len(report.posted):,} transactions", file=sys.stderr)
    if report.skipped:
        return 1 if closed or report.already_closed else 3  # some closed and some refused; or nothing done
    if args.customer and not (closed or report.already_closed):
        print(f"rating: error: nothing of {args.period} to close for {', '.join(args.customer)}", file=sys.stderr)
        return 3
    return 0


def cmd_payouts(args: argparse.Namespace, registry: Registry) -> int:
    book = load_catalog(args.pricebook, registry).latest
    fresh, earlier = pay_creators(open_storage(args, registry), book, args.week)
    rows = [
        {
            "creator": p.creator,
            "amount": p.amount,
            "asset": p.asset,
            "pay_on": p.pay_on.isoformat(),
            "transaction": p.transaction_id,
        }
        for p in fresh + earlier
    ]
    print(render(rows, ["creator", "amount", "asset", "pay_on", "transaction"], args.output))
    print(f"{args.week}: posted {len(fresh):,} payouts, {len(earlier):,} already posted", file=sys.stderr)
    return 0


def cmd_rerate(args: argparse.Namespace, registry: Registry) -> int:
    catalog = load_catalog(args.pricebook, registry)
    since, until = date_range(args, catalog.latest)
    storage = open_storage(args, registry)
    catalog = Customers(storage, catalog).catalog_now()  # the customers kept in --db win over the pricebook's
    report = rerate(storage, catalog, registry, since, until, dry_run=args.dry_run)
    status = outcome(report.repriced, len(report.refused))
    rows = report.rows()
    columns = ["customer", "asset", "posted", "rerated", "difference"]
    refused = [{"location": r.location, "code": str(r.code), "reason": r.reason} for r in report.refused]
    if args.output == "json":
        document = {
            "customers": json.loads(render(rows, columns, "json")),
            "corrections": [c.transaction.id for c in report.corrections],
            "refused": refused,
            "dry_run": args.dry_run,
        }
        print(json.dumps(document, indent=2))
    else:
        print(render(rows, columns, args.output))
        for rejection in report.refused:
            print(rejection, file=sys.stderr)
    adjusting = sum(1 for c in report.corrections if "adjusts" in c.transaction.metadata)
    verb = "would post" if args.dry_run else "posted"
    print(
        f"re-priced {report.repriced:,} events; {verb} {len(report.corrections):,} corrections"
        f" ({adjusting:,} of closed periods, into the current one); {len(report.refused):,} refused",
        file=sys.stderr,
    )
    return status
