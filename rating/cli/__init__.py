"""The ``rating`` command line: check, schema, quote, rate, request, balance, demo and the rest.

This module assembles the parser and runs a command; each command group lives in a module of
its own, declaring its subcommands (``register``) beside their handlers: :mod:`~rating.cli.pricebooks`
(check, schema, diff), :mod:`~rating.cli.rate` (quote, rate, demo), :mod:`~rating.cli.wallets`
(balance, request), :mod:`~rating.cli.close` (close-period, payouts, rerate), :mod:`~rating.cli.reports`
(usage, margin), :mod:`~rating.cli.simulate` (simulate, to-parquet), :mod:`~rating.cli.invoices`,
:mod:`~rating.cli.statements`, :mod:`~rating.cli.journal`, :mod:`~rating.cli.imports`, :mod:`~rating.cli.db`
(verify, db migrate) and :mod:`~rating.cli.serve` (the HTTP service) and :mod:`~rating.cli.customers`
(customers as data).
Flag values are parsed by one layer, :mod:`rating.cli.args`.

Exit codes, one table every command follows (README "Exit codes"): 0 done; 1 done
with some refusals, or ``check``/``verify`` found problems; 2 a usage error or an
invalid flag value (parsed by :mod:`rating.cli.args` before anything is read or
written); 3 nothing done (unusable input, pricebook or database; a ``--strict``
refusal; every record refused); 130 interrupted. One clear line per problem on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import urllib.parse
from collections.abc import Sequence
from functools import partial

from rating.cli import (
    apikeys,
    close,
    customers,
    db,
    imports,
    invoices,
    journal,
    pricebooks,
    rate,
    reports,
    serve,
    simulate,
    statements,
    wallets,
    webhooks,
)
from rating.cli.common import (
    DEFAULT_DB,
    DONE,
    INTERRUPTED,
    NOTHING_DONE,
    PRICEBOOK_HELP,
    REFUSED_SOME,
    USAGE,
    Commands,
    Parser,
    Progress,
    UsageError,
    environment_defaults,
    outcome,
    pricebooks_from_environment,
)
from rating.cli.documents import file_name
from rating.cli.rate import CHARGE_COLUMNS, DEFAULT_FUTURE_TOLERANCE, charge_rows
from rating.cli.simulate import DASK_CONNECT_TIMEOUT, simulation_status
from rating.cli.wallets import balance_rows as customer_balances
from rating.distribution import DISTRIBUTION, version
from rating.errors import InvalidValue, PricebookError, RatingError, StorageError
from rating.registry import Registry
from rating.simulate.summary import change_impacts, simulation_summary
from rating.storage import Storage, masked

# Names that lived in the single-module rating.cli, importable from here for one release (CHANGELOG);
# the domain helpers' homes are rating.wallet.balances.customer_balances (typed rows) and rating.simulate.summary.
__all__ = [
    "CHARGE_COLUMNS",
    "DASK_CONNECT_TIMEOUT",
    "DEFAULT_DB",
    "DEFAULT_FUTURE_TOLERANCE",
    "DONE",
    "INTERRUPTED",
    "NOTHING_DONE",
    "PRICEBOOK_HELP",
    "REFUSED_SOME",
    "USAGE",
    "Parser",
    "Progress",
    "UsageError",
    "build_parser",
    "change_impacts",
    "charge_rows",
    "customer_balances",
    "damaged",
    "file_name",
    "main",
    "outcome",
    "refusal",
    "simulation_status",
    "simulation_summary",
]

#: The command groups, each registering its subcommands.
GROUPS = (
    pricebooks,
    rate,
    wallets,
    close,
    reports,
    simulate,
    invoices,
    statements,
    journal,
    imports,
    db,
    serve,
    customers,
    apikeys,
    webhooks,
)

#: The commands in the order ``rating --help`` lists them (the order they were added in before the groups).
HELP_ORDER = (
    "check", "schema", "quote", "rate", "request", "balance", "wallet", "close-period", "usage", "payouts", "margin",
    "simulate", "rerate", "invoice", "statement", "journal", "import", "to-parquet", "diff", "verify", "db", "demo",
    "serve", "customer", "apikey", "webhooks",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, each group's subcommands registered by the group's module."""
    parser = Parser(prog="rating", description="Rate metered usage into exact ledger postings.")
    parser.add_argument(
        "--version",
        action="version",
        version=f"{DISTRIBUTION} {version()}",
        help="print the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    _in_help_order(commands)
    environment_defaults(parser)  # $RATING_DB and $RATING_PRICEBOOK, for every command at once
    return parser


def _in_help_order(commands: Commands) -> None:
    """List the commands in ``HELP_ORDER`` (in ``--help`` and an invalid choice's message), whatever group added them.

    Each group registers its commands together; ``rating --help`` keeps listing them as it always has.
    """
    position = {name: index for index, name in enumerate(HELP_ORDER)}
    commands._choices_actions.sort(key=lambda listed: position.get(listed.dest, len(position)))
    parsers = dict(sorted(commands.choices.items(), key=lambda item: position.get(item[0], len(position))))
    commands.choices.clear()  # the very dict argparse looks parsers up in: reordered in place
    commands.choices.update(parsers)


def _require(args: argparse.Namespace) -> None:
    """Refuse a command missing a flag its group requires (one that may come before its action or after it)."""
    missing = [flag for dest, flag in getattr(args, "required_flags", ()) if getattr(args, dest, None) is None]
    if missing:
        args.group_parser.error(f"the following arguments are required: {', '.join(missing)}")


def damaged(storages: Sequence[Storage]) -> str | None:
    """What ``rating verify`` finds wrong with the first damaged of ``storages``, as one line; None if all are sound.

    Asked when a command fails with an error that is not a refusal: a damaged
    database is named (verify reports it too), anything else stays a bug.
    """
    for storage in storages:
        problems = storage.verify()
        if problems:
            more = f" (and {len(problems) - 1:,} more)" if len(problems) > 1 else ""
            return f"{storage.url}: the database is damaged: {problems[0]}{more}; run rating verify"
    return None


def refusal(error: Exception, storages: Sequence[Storage]) -> RatingError:
    """What ``main`` says of ``error``: a refusal as it is; a command tripping on a damaged database as ``damaged``,
    naming what ``rating verify`` finds; anything else is a bug, raised with its traceback."""
    if isinstance(error, RatingError):
        failure = error
    elif not isinstance(error, BrokenPipeError) and (damage := damaged(storages)) is not None:
        failure = StorageError(damage, code="damaged")
    else:
        raise error
    failure.__context__ = failure.__cause__ = None
    return failure.with_traceback(None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (README "Exit codes"), never raises."""
    if argv is not None and any("\x00" in arg for arg in argv):  # an OS never passes one; a caller might
        print("rating: error: an argument holds a NUL character", file=sys.stderr)
        return USAGE
    try:
        args = build_parser().parse_args(argv)
        pricebooks_from_environment(args)
        _require(args)
    except SystemExit as exit:  # --help (0), or a usage error argparse has reported in one line (2)
        return exit.code if isinstance(exit.code, int) else USAGE
    secret = partial(_scrubbed, getattr(args, "db", None))
    try:
        registry = Registry.load()
        with contextlib.ExitStack() as args.resources:
            try:
                return int(args.handler(args, registry))
            except Exception as error:
                failure = refusal(error, getattr(args, "opened", []))
            # Raised here, its traceback dropped, so that readers it interrupted (a cursor half read) are closed
            # now, while their database is still open, not after: that would print "Exception ignored".
            raise failure
    except PricebookError as error:
        for problem in error.problems:
            print(secret(problem), file=sys.stderr)
        return NOTHING_DONE
    except (UsageError, InvalidValue) as error:
        print(secret(f"rating: error: {error}"), file=sys.stderr)
        return USAGE
    except RatingError as error:
        print(secret(f"rating: error: {error}"), file=sys.stderr)
        return NOTHING_DONE
    except KeyboardInterrupt:
        print("rating: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return NOTHING_DONE
    except OSError as error:  # a file that cannot be read or written: a full disk, no permission
        print(secret(f"rating: error: {error}"), file=sys.stderr)
        return NOTHING_DONE


def _scrubbed(url: str | None, text: str) -> str:
    """``text`` without the password of ``url`` (the ``--db``), wherever a message quotes it."""
    text = masked(text)
    try:
        password = urllib.parse.urlsplit(url).password if url and "://" in url else None
    except ValueError:  # not a URL urllib can split; masked() has done what it can
        password = None
    return text.replace(password, "***") if password else text
