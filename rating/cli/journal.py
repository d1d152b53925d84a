"""``rating journal``: the ledger transactions of a period as a general-ledger journal (``export``).

A subcommand group like ``statement`` (whose ``export`` stays the per-customer movement list): every flag
of the group is accepted before the action or after it. ``--period`` is required, checked after parsing.
"""

from __future__ import annotations

import argparse
import zoneinfo
from functools import partial

from rating.billing.journal import journal_csv, journal_json, load_account_map, period_journal
from rating.cli import args as values
from rating.cli.common import DONE, Commands, add_group, add_group_db_flag, add_group_flag, open_storage
from rating.errors import InvalidValue
from rating.periods import zone
from rating.refusals import ValueRefusal
from rating.registry import Registry

HELP = "the ledger of a period as a general-ledger journal, for the accountant"
#: The actions of ``rating journal``, in the order its help lists them.
ACTIONS = {
    "export": "export the period's ledger transactions as journal entries (date, account, debit, credit, ...)",
}
#: Flags each action needs, checked once both the group's and the action's flags are parsed.
REQUIRED = (("period", "--period"),)


def timezone(text: str) -> str:
    """A tz database zone name (``Europe/Berlin``, ``UTC``)."""
    try:
        zone(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(
            ValueRefusal.INVALID_TIMEZONE, f"{text!r} is not a time zone: use a tz database name, e.g. Europe/Berlin"
        ) from None
    return text


def register(commands: Commands) -> None:
    """``journal`` and its actions."""
    add_group(commands, "journal", HELP, ACTIONS, _flags, handler=cmd_journal, required_flags=REQUIRED)


def _flags(parser: argparse.ArgumentParser, top: bool) -> None:
    """The flags of ``rating journal``: on the group (``top``, hidden) and again on each action."""
    flag = partial(add_group_flag, parser, top)
    add_group_db_flag(parser, top)
    flag("--period", type=values.flag(values.period), help="the period, e.g. 2026-11 (required)")
    flag("--aggregate", choices=["day"], help="sum the entries per account, currency and day")
    flag("--accounts", metavar="MAP.yaml", help="map ledger accounts to your chart of accounts (exact or pattern)")
    flag(
        "--timezone",
        default="UTC",
        type=values.flag(timezone),
        help="the zone the period's bounds and the entries' dates are in (default: UTC)",
    )
    flag("--output", "-o", choices=["csv", "json"], default="csv", help="output format (default: csv)")


def cmd_journal(args: argparse.Namespace, registry: Registry) -> int:
    accounts = load_account_map(args.accounts) if args.accounts else None  # a bad map: before the database
    storage = open_storage(args, registry, "read")
    entries = period_journal(
        storage, args.period, timezone=args.timezone, accounts=accounts, aggregate=args.aggregate
    )  # every entry is built (or the export refused) before a line is printed
    print(
        journal_csv(entries) if args.output == "csv" else journal_json(entries),
        end="" if args.output == "csv" else "\n",
    )
    return DONE
