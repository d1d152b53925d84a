"""Database commands: ``verify`` checks the ledger, ``db migrate`` creates or upgrades the schema."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from rating.cli.common import (
    DEFAULT_DB,
    DONE,
    PRICEBOOK_HELP,
    REFUSED_SOME,
    Commands,
    add_command,
    add_group,
    add_group_db_flag,
    add_group_flag,
    open_storage,
)
from rating.errors import StorageError
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.storage import masked


def register(commands: Commands) -> None:
    """``verify`` and ``db``."""
    add_command(
        commands,
        "verify",
        cmd_verify,
        "check that the ledger balances, matches its postings and is the sum of the per-event records",
        db=DEFAULT_DB,
    )
    # A subcommand group like the other multi-action commands; its flags go before the action or after it.
    help = "database maintenance: rating db migrate"
    migrate = "create the database, or apply its pending schema migrations (rate does too; no other command)"
    add_group(commands, "db", help, {"migrate": migrate}, _flags, metavar="ACTION", handler=cmd_migrate)


def _flags(parser: argparse.ArgumentParser, top: bool) -> None:
    """The flags of ``rating db``: on the group (``top``, hidden) and again on its action."""
    flag = partial(add_group_flag, parser, top)
    add_group_db_flag(parser, top)
    flag(
        "-p",
        "--pricebook",
        action="append",
        help=PRICEBOOK_HELP + "; with it, migrate also gives running totals kept from before charges had identities"
        " their charge identities (rate does this too)",
    )


def cmd_verify(args: argparse.Namespace, registry: Registry) -> int:
    try:
        storage = open_storage(args, registry, "read")
    except StorageError as error:
        if error.code != "damaged":
            raise  # no database, one of another schema, or none reachable: nothing to verify
        print(error, file=sys.stderr)  # a file too damaged to open is what verify reports
        print(f"{masked(args.db)}: 1 problems")
        return REFUSED_SOME
    problems = storage.verify()
    for problem in problems:
        print(problem, file=sys.stderr)
    transactions = storage.count_transactions() if not problems else None
    print(
        f"{masked(storage.url)}: {len(problems)} problems"
        + (f", {transactions:,} transactions sound" if not problems else "")
    )
    return REFUSED_SOME if problems else DONE


def cmd_migrate(args: argparse.Namespace, registry: Registry) -> int:
    storage = open_storage(args, registry, "create")  # opening applies pending migrations
    if args.pricebook:
        from rating.engine import adopt_legacy_totals

        adopt_legacy_totals(storage, load_catalog(args.pricebook, registry))
    version = getattr(storage, "schema_version", lambda: None)()
    url = masked(storage.url)
    print(f"{url}: schema version {version}" if version is not None else f"{url}: nothing to migrate")
    return 0
