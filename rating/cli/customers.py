"""Customer commands: ``customer add|show|list|subscribe`` keep customers and subscriptions as data in ``--db``.

The database wins over the pricebook's ``customers:`` block (the seed); every change is a new version
(:mod:`rating.customers`). Refusals (an invalid spec, a change dated before usage already rated in the open
period, a time-zone or anchor change inside the current period) exit 3 with one line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rating.cli import args as values
from rating.cli.common import PRICEBOOK_HELP, Commands, UsageError, add_db, open_storage
from rating.cli.output import FORMATS, render
from rating.customers import Customers, spec_json
from rating.pricebook.catalog import load_catalog
from rating.pricebook.model import CustomerSpec
from rating.records import CustomerVersion
from rating.registry import Registry

LIST_COLUMNS = ["customer", "plan", "billing", "timezone", "source", "version"]
VERSION_COLUMNS = ["customer", "version", "effective", "recorded_at", "spec"]
#: Flags that set one field of the spec each (over ``--spec``): (flag, field, parse).
_FIELDS = (
    ("--plan", "plan", str),
    ("--since", "since", values.date),
    ("--until", "until", values.date),
    ("--timezone", "timezone", str),
    ("--billing", "billing", str),
    ("--spend-cap", "spend_cap", values.amount),
    ("--spend-alert", "spend_alert", values.amount),
)


def register(commands: Commands) -> None:
    """``customer`` (add, show, list, subscribe)."""
    customer = commands.add_parser(
        "customer",
        help="customers and subscriptions kept as data in the database (over the pricebook's customers:)",
        description="Customers kept as data in --db, each change a new version; they win over the pricebook's"
        " customers: block, which stays a seed. Engines on the same database see a change at their next chunk.",
    )
    actions = customer.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a customer, or replace its spec from --effective (default now)")
    add.add_argument("customer", metavar="CUSTOMER")
    add.add_argument("--spec", metavar="JSON", help="the whole spec as a JSON object (the flags below override it)")
    for flag, field, parse in _FIELDS:
        kind = values.flag(parse) if parse is not str else str
        add.add_argument(flag, dest=field, type=kind, help=f"the spec's {field}")
    add.add_argument("--anniversary", action="store_true", default=None, help="periods from the anniversary of since")
    add.add_argument(
        "--effective", type=values.flag(values.timestamp), help="when the change takes effect (default: now)"
    )
    show = actions.add_parser("show", help="a customer's spec and its stored versions")
    show.add_argument("customer", metavar="CUSTOMER")
    actions.add_parser("list", help="every customer: stored ones over the pricebook's")
    subscribe = actions.add_parser("subscribe", help="put a customer on a plan from a date (a plan change)")
    subscribe.add_argument("customer", metavar="CUSTOMER")
    subscribe.add_argument("plan", metavar="PLAN")
    subscribe.add_argument(
        "--from", dest="on", required=True, type=values.flag(values.date), help="first day on the plan (local)"
    )
    for action in actions.choices.values():
        action.set_defaults(handler=cmd_customer)
        add_db(action)
        action.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
        action.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")


def cmd_customer(args: argparse.Namespace, registry: Registry) -> int:
    catalog = load_catalog(args.pricebook, registry)
    writes = args.action in ("add", "subscribe")
    customers = Customers(open_storage(args, registry, "existing" if writes else "read"), catalog)
    if args.action == "list":
        stored = customers.storage.latest_customers()
        rows = [_row(name, spec, stored.get(name)) for name, spec in sorted(customers.all().items())]
        print(render(rows, LIST_COLUMNS, args.output))
        return 0
    if args.action == "show":
        spec = customers.get(args.customer)
        if spec is None:
            raise UsageError(f"no customer {args.customer!r} in the database nor the pricebook")
        versions = customers.history(args.customer)
        rows = [_version_row(v) for v in versions] or [
            {"customer": args.customer, "version": "pricebook", "spec": spec_json(spec)}
        ]
        print(render(rows, VERSION_COLUMNS, args.output))
        return 0
    if args.action == "subscribe":
        version, _ = customers.subscribe(args.customer, args.plan, args.on)
    else:
        version, _ = customers.put(args.customer, _spec(args), args.effective)
    print(render([_version_row(version)], VERSION_COLUMNS, args.output))
    return 0


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    """The spec of ``customer add``: ``--spec`` with the flags given over it."""
    data: dict[str, Any] = {}
    if args.spec is not None:
        try:
            data = json.loads(args.spec)
        except ValueError as error:
            raise UsageError(f"--spec is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise UsageError('--spec must be a JSON object, e.g. \'{"plan": "pro"}\'')
    for _, field, _ in _FIELDS:
        if getattr(args, field) is not None:
            data[field] = getattr(args, field)
    if args.anniversary:
        data["anniversary"] = True
    return data


def _row(name: str, spec: CustomerSpec, version: CustomerVersion | None) -> dict[str, Any]:
    return {
        "customer": name,
        "plan": spec.plan,
        "billing": spec.billing,
        "timezone": spec.timezone or "",
        "source": "database" if version is not None else "pricebook",
        "version": version.sequence if version is not None else "",
    }


def _version_row(version: CustomerVersion) -> dict[str, Any]:
    return {
        "customer": version.customer,
        "version": version.sequence,
        "effective": version.effective.isoformat(),
        "recorded_at": version.recorded_at.isoformat(),
        "spec": version.spec,
    }
