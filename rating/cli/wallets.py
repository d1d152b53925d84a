"""Wallet commands: ``balance`` shows funds and what is owed; ``request`` holds, pays and releases reservations;
``wallet`` shows a customer's funds and grants, gives a grant, or deposits a signed payment confirmation."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, get_args

from rating.cli import args as values
from rating.cli.common import DEFAULT_DB, PRICEBOOK_HELP, Commands, add_command, add_db, open_engine, open_storage
from rating.cli.output import FORMATS, render
from rating.cli.rate import CHARGE_COLUMNS, charge_rows, quote_inputs
from rating.errors import RatingError
from rating.events import UsageEvent
from rating.money import ZERO, plain
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.storage import Storage, masked
from rating.wallet.balances import customer_balances, reservation_used
from rating.wallet.wallets import GrantKind, Wallets

CUSTOMER_COLUMNS = ["asset", "available", "reserved", "posted", "owed"]
GRANT_COLUMNS = ["grant", "asset", "amount", "remaining", "kind", "priority", "starts", "expires", "in_force"]
#: Where the secrets verifying payment confirmations are read from, comma-separated (as ``rating serve`` reads them).
#: The actions of ``rating wallet``.
WALLET_ACTIONS = {
    "show": "a customer's funds per asset and the grants given to it",
    "grant": "give a customer a grant, spent before purchased funds (idempotent by --id)",
    "deposit": "book a payment confirmation signed by the processor (never an unsigned amount)",
}
RESERVATION_COLUMNS = ["reservation", "customer", "asset", "amount", "expires_at"]


def register(commands: Commands) -> None:
    """``balance``, ``request`` (authorize, complete, void, expire) and ``wallet`` (show, grant, deposit)."""
    _register_wallet(commands)
    balance = add_command(
        commands, "balance", cmd_balance, "ledger balances, or one customer's wallet", db=DEFAULT_DB, output=True
    )
    balance.add_argument(
        "customer", nargs="?", metavar="CUSTOMER", help="per asset: available, reserved, posted and owed"
    )
    balance.add_argument("--pricebook", "-p", action="append", help="add each balance's value in its currency")

    request = commands.add_parser(
        "request",
        help="a metered request: hold its estimate before the work, then rate it and pay from the hold",
        description="A metered request in two durable commits: authorize holds the quoted price of the"
        " request as expected before the work runs; complete rates the request as it ran and pays it from"
        " the hold in one commit, releasing the rest; void releases the hold of work that did not run;"
        " expire releases every hold past its timeout.",
    )
    phases = request.add_subparsers(dest="phase", required=True, metavar="PHASE")
    for phase, handler, help in [
        ("authorize", cmd_request_authorize, "hold the quoted price of the event as expected (before the work)"),
        ("complete", cmd_request_complete, "rate the event as it ran, paid from its hold, in one commit"),
        ("void", cmd_request_void, "release the whole hold: the work did not run"),
        ("expire", cmd_request_expire, "release every hold past its timeout"),
    ]:
        step = phases.add_parser(phase, help=help, description=help)
        step.set_defaults(handler=handler)
        add_db(step)
        if phase == "void":
            step.add_argument("reservation", metavar="RESERVATION", help="the reservation id")
            step.add_argument("--reason", default="voided", help="recorded on the release (default: voided)")
            continue
        step.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")
        if phase == "expire":
            continue
        step.add_argument(
            "event", metavar="EVENT", help="the event as JSON text, a .jsonl/.csv file of one event, or - (stdin)"
        )
        step.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
        step.add_argument("--reservation", metavar="ID", help="the reservation id (default: the event id)")
        if phase == "authorize":
            step.add_argument(
                "--timeout",
                default="5m",
                type=values.flag(values.duration),
                help="the hold expires after this, e.g. 90s, 5m, 2h (default 5m); request expire releases it",
            )


def _register_wallet(commands: Commands) -> None:
    """``wallet show|grant|deposit``."""
    help = "a customer's wallet: show it, give a grant, deposit a signed payment confirmation"
    wallet = commands.add_parser("wallet", help=help, description=help)
    actions = wallet.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler in (("show", cmd_wallet_show), ("grant", cmd_wallet_grant), ("deposit", cmd_wallet_deposit)):
        action = actions.add_parser(name, help=WALLET_ACTIONS[name], description=WALLET_ACTIONS[name])
        action.set_defaults(handler=handler)
        add_db(action)
        action.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")
        if name != "deposit":
            action.add_argument("customer", metavar="CUSTOMER", help="the customer")
    grant = actions.choices["grant"]
    grant.add_argument("--asset", required=True, help="the asset granted, e.g. USD or CREDITS")
    grant.add_argument("--amount", required=True, type=values.flag(values.amount), help="how much, e.g. 5.00")
    grant.add_argument("--id", required=True, help="the grant's id: granting it again gives nothing more")
    grant.add_argument("--kind", choices=get_args(GrantKind), default="promotional", help="(default: promotional)")
    grant.add_argument("--priority", type=int, default=0, help="spent by priority, then earliest expiry (default 0)")
    grant.add_argument("--starts", type=values.flag(values.timestamp), help="in force from (default now)")
    grant.add_argument("--expires", type=values.flag(values.timestamp), help="expires at (default never)")
    deposit = actions.choices["deposit"]
    deposit.add_argument("confirmation", metavar="FILE", help="the payment confirmation, exactly as signed")
    deposit.add_argument(
        "--signature", required=True, metavar="FILE", help="the file holding its hex HMAC-SHA256 signature"
    )
    deposit.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    deposit.add_argument(
        "--tolerance",
        default="5m",
        type=values.flag(values.duration),
        help="how far its created time may be from now (default 5m, as the server's)",
    )


def wallet_view(storage: Storage, customer: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A customer's funds per asset (with what is owed) and its grants, each with what is left of it."""
    wallets = Wallets(storage)
    grants = wallets.grants(customer)
    left = storage.balances([grant.account for grant in grants]) if grants else {}
    now = wallets.clock()
    given = [
        {
            "grant": grant.id,
            "asset": grant.asset,
            "amount": grant.amount,
            # A grant account holds a credit balance (negative): what is left to spend is its opposite.
            "remaining": -left.get((grant.account, grant.asset), ZERO),
            "kind": grant.kind,
            "priority": grant.priority,
            "starts": grant.starts.isoformat(),
            "expires": grant.expires.isoformat() if grant.expires else None,
            "in_force": grant.in_force(now),
        }
        for grant in grants
    ]
    return balance_rows(storage, customer), given


def cmd_wallet_show(args: argparse.Namespace, registry: Registry) -> int:
    """The customer's funds per asset and its grants (as ``GET /v1/customers/{id}/balance`` answers)."""
    assets, grants = wallet_view(open_storage(args, registry, "read"), args.customer)
    if args.output == "json":
        shown = {
            "customer": args.customer,
            "assets": json.loads(render(assets, CUSTOMER_COLUMNS, "json")),
            "grants": json.loads(render(grants, GRANT_COLUMNS, "json")),
        }
        print(json.dumps(shown, indent=2))
        return 0
    print(render(assets, CUSTOMER_COLUMNS, args.output))
    if grants:
        print()
        print(render(grants, GRANT_COLUMNS, args.output))
    return 0


def cmd_wallet_grant(args: argparse.Namespace, registry: Registry) -> int:
    """Give the customer a grant, once per ``--id``."""
    wallets = Wallets(open_storage(args, registry))
    new = wallets.grant(
        args.customer, args.asset, args.amount, args.id,
        kind=args.kind, priority=args.priority, starts=args.starts, expires=args.expires,
    )  # fmt: skip
    what = f"{plain(args.amount)} {args.asset} to {args.customer} (grant {args.id})"
    print(f"granted {what}" if new else f"already granted: {what}; nothing posted", file=sys.stderr)
    return 0


def cmd_wallet_deposit(args: argparse.Namespace, registry: Registry) -> int:
    """Book a signed payment confirmation: verified with the secrets of ``RATING_PAYMENT_SECRETS`` by
    :func:`rating.billing.payments.confirm_payment`, as ``POST /v1/payments`` does; once per payment id."""
    from rating.billing.payments import confirm_payment, secrets_from_environment

    secrets, _ = secrets_from_environment()
    payload = _read_file(args.confirmation, "the payment confirmation")
    signature = _read_file(args.signature, "the signature").decode("ascii", "replace").strip()
    book = load_catalog(args.pricebook, registry).latest
    wallets = Wallets(open_storage(args, registry))
    result = confirm_payment(wallets, payload, signature, secrets, book, tolerance=args.tolerance)
    row = {"confirmation": args.confirmation, "status": result.value}
    print(render([row], ["confirmation", "status"], args.output))
    return 0


def _read_file(path: str, what: str) -> bytes:
    """The bytes of ``path``, or a refusal naming ``what`` it should have held."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise RatingError(f"{path}: cannot read {what}: {error.strerror or error}") from None


def cmd_balance(args: argparse.Namespace, registry: Registry) -> int:
    storage = open_storage(args, registry, "read")
    book = load_catalog(args.pricebook, registry).latest if args.pricebook else None
    rows: list[dict[str, Any]]
    if args.customer:
        rows, columns, valued = balance_rows(storage, args.customer), CUSTOMER_COLUMNS, "owed"
        if not rows:
            raise RatingError(f"no postings for customer {args.customer!r} in {masked(storage.url)}")
    else:
        accounts = storage.balances().items()
        rows = [{"account": account, "asset": asset, "balance": amount} for (account, asset), amount in accounts]
        columns, valued = ["account", "asset", "balance"], "balance"
    if book is not None:
        columns = [*columns, f"value_{book.currency}"]
        for row in rows:
            row[columns[-1]] = book.value_of(row[valued], row["asset"])
    print(render(rows, columns, args.output))
    return 0


def balance_rows(storage: Storage, customer: str) -> list[dict[str, Any]]:
    """The rows of ``rating balance CUSTOMER``: :func:`rating.wallet.balances.customer_balances` as table rows."""
    return [dataclasses.asdict(balance) for balance in customer_balances(storage, customer)]


def one_event(source: str) -> UsageEvent:
    """The single event of a metered request: JSON text, or a file holding exactly one."""
    records = list(quote_inputs(source))
    if len(records) != 1:
        raise RatingError(f"{source}: a metered request is one event, found {len(records):,} records")
    record = records[0]
    if record.event is None:
        raise RatingError(f"{record.location}: {record.error}")
    return record.event


def cmd_request_authorize(args: argparse.Namespace, registry: Registry) -> int:
    """Phase one: hold the quoted price of the request as expected, before the work runs."""
    engine = open_engine(args, registry, args.pricebook)
    held = engine.authorize(one_event(args.event), args.reservation, args.timeout)
    row = {
        "reservation": held.id,
        "customer": held.customer,
        "asset": held.asset,
        "amount": held.amount,
        "expires_at": held.expires_at.isoformat(),
    }
    print(render([row], RESERVATION_COLUMNS, args.output))
    return 0


def cmd_request_complete(args: argparse.Namespace, registry: Registry) -> int:
    """Phase two: rate the request as it ran and pay it from its reservation, in one commit."""
    engine = open_engine(args, registry, args.pricebook)
    event = one_event(args.event)
    reservation_id = args.reservation or event.id
    held = Wallets(engine.storage).reservation(reservation_id)
    rating = engine.rate_reserved(event, reservation_id)
    if rating is None:
        print(
            f"request {event.id} was already rated against reservation {reservation_id}; nothing posted",
            file=sys.stderr,
        )
        return 0
    if held is not None:  # it was: rate_reserved refuses a reservation that is not open
        used = reservation_used(held, rating.transaction)
        print(
            f"reservation {held.id}: {plain(used)} of {plain(held.amount)} {held.asset} held paid the request,"
            f" {plain(held.amount - used)} {held.asset} released",
            file=sys.stderr,
        )
    print(render(charge_rows(event.id, rating.charges), CHARGE_COLUMNS, args.output))
    return 0


def cmd_request_expire(args: argparse.Namespace, registry: Registry) -> int:
    """Release every hold past its timeout (run it from a scheduler)."""
    released = Wallets(open_storage(args, registry)).expire()
    rows = [
        {"reservation": t.metadata["reservation"], "customer": t.metadata["customer"], "released": t.description}
        for t in released
    ]
    print(render(rows, ["reservation", "customer", "released"], args.output))
    return 0


def cmd_request_void(args: argparse.Namespace, registry: Registry) -> int:
    """The work did not run: release all of the reservation."""
    wallets = Wallets(open_storage(args, registry))
    held = wallets.reservation(args.reservation)
    wallets.void(args.reservation, args.reason)
    if held is not None:
        print(f"reservation {held.id}: {plain(held.amount)} {held.asset} released", file=sys.stderr)
    return 0
