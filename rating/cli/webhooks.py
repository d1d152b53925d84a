"""Webhook commands: ``webhooks add|list|remove|deliver|replay`` (:mod:`rating.webhooks`).

Secrets never travel on the command line (where ``ps`` shows them): ``--secret-env VAR`` names the environment
variable holding one (``whsec_`` and base64), repeated during a rotation (every delivery is then signed with
each). ``list`` never prints a secret.
"""

from __future__ import annotations

import argparse
import os

from rating.cli.common import Commands, UsageError, add_db, open_storage
from rating.cli.output import FORMATS, render
from rating.outbox import EVENT_TYPES
from rating.registry import Registry
from rating.webhooks import add_endpoint, deliver, endpoints, remove_endpoint, replay

LIST_COLUMNS = ["id", "url", "events", "secrets", "version"]


def register(commands: Commands) -> None:
    """``webhooks`` (add, list, remove, deliver, replay)."""
    webhooks = commands.add_parser(
        "webhooks",
        help="webhook endpoints and delivery of the outbox (signed per Standard Webhooks)",
        description="Webhook endpoints kept in --db, and delivery of the messages the ledger's writes put in its"
        " outbox (invoice.issued, invoice.paid, credit_note.issued, ...), signed per Standard Webhooks.",
    )
    actions = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add an endpoint (or, with --id, replace one's URL, secrets and events)")
    add.add_argument("url", metavar="URL")
    add.add_argument(
        "--secret-env",
        action="append",
        required=True,
        metavar="VAR",
        help="the environment variable holding a secret (whsec_...); repeat it to sign with several (rotation)",
    )
    add.add_argument("--events", nargs="+", choices=EVENT_TYPES, default=[], help="event types (default: all)")
    add.add_argument("--id", help="the endpoint to replace (a secret rotation)")
    actions.add_parser("list", help="the endpoints (never their secrets)")
    remove = actions.add_parser("remove", help="remove an endpoint (its delivery log stays)")
    remove.add_argument("id", metavar="ID")
    actions.add_parser("deliver", help="one delivery pass: send what is due, retry what failed after its backoff")
    again = actions.add_parser("replay", help="send outbox message ID again (at the next delivery pass)")
    again.add_argument("id", metavar="ID")
    again.add_argument("--endpoint", help="only to this endpoint")
    for action in actions.choices.values():
        action.set_defaults(handler=cmd_webhooks)
        add_db(action)
        action.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")


def _secrets(names: list[str]) -> list[str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise UsageError(f"--secret-env: {', '.join(missing)} not set in the environment")
    return [os.environ[name] for name in names]


def cmd_webhooks(args: argparse.Namespace, registry: Registry) -> int:
    storage = open_storage(args, registry, "read" if args.action == "list" else "existing")
    if args.action == "add":
        print(add_endpoint(storage, args.url, _secrets(args.secret_env), args.events, id=args.id).id)
    elif args.action == "list":
        rows = [
            {
                "id": e.id,
                "url": e.url,
                "events": " ".join(e.events) or "all",
                "secrets": len(e.secrets),
                "version": e.version,
            }
            for e in endpoints(storage)
        ]
        print(render(rows, LIST_COLUMNS, args.output))
    elif args.action == "remove":
        remove_endpoint(storage, args.id)
        print(f"removed {args.id}")
    elif args.action == "deliver":
        report = deliver(storage)
        for message, endpoint, detail in report.failed:
            print(f"{message} to {endpoint}: failed ({detail}), retried later")
        for message, endpoint in report.gave_up:
            print(f"{message} to {endpoint}: gave up (rating webhooks replay {message})")
        print(f"{len(report.delivered)} delivered, {len(report.failed)} failed, {len(report.gave_up)} gave up")
        return 1 if report.failed or report.gave_up else 0
    else:
        targets = replay(storage, args.id, args.endpoint)
        print(f"{args.id}: replayed to {', '.join(targets) or 'no endpoint'}")
    return 0
