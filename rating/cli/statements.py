"""``rating statement``: wallet statements of a period (``show``), or every movement for the accountant (``export``).

A subcommand group taking the argv the single command took when the action was a positional
choice: both actions accept every flag of the group, before the action or after it.
"""

from __future__ import annotations

import argparse
import json
from functools import partial

from rating.billing.statements import MOVEMENTS, statement, statement_csv
from rating.cli import args as values
from rating.cli.common import (
    PRICEBOOK_HELP,
    Commands,
    add_group,
    add_group_db_flag,
    add_group_flag,
    open_storage,
)
from rating.cli.documents import file_name, write_documents
from rating.cli.output import FORMATS, render
from rating.invoices.profiles import load_billing
from rating.money import ZERO
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry

STATEMENT_SUMMARY = ["customer", "asset", "opening", *MOVEMENTS, "closing", "owed", "value"]

HELP = "wallet statements of a period, or the accountant's CSV export"
#: The actions of ``rating statement``, in the order its help lists them.
ACTIONS = {
    "show": "show the wallet statements of a period (default: of every wallet customer)",
    "export": "export every movement of the customers' accounts in a period as CSV",
}
#: Flags each action needs, checked once both the group's and the action's flags are parsed (see :func:`missing`).
REQUIRED = (("period", "--period"), ("pricebook", "--pricebook/-p"))


def register(commands: Commands) -> None:
    """``statement`` and its actions."""
    add_group(commands, "statement", HELP, ACTIONS, _flags, handler=cmd_statement, required_flags=REQUIRED)


def _flags(parser: argparse.ArgumentParser, top: bool) -> None:
    """The flags of ``rating statement``: on the group (``top``, hidden) and again on each action."""
    flag = partial(add_group_flag, parser, top)
    add_group_db_flag(parser, top)
    # Required, but checked after parsing (main): given before the action or after it, either will do.
    flag("--period", type=values.flag(values.period), help="the billing period, e.g. 2026-11 (required)")
    flag("--pricebook", "-p", action="append", help=PRICEBOOK_HELP + " (required)")
    flag("--customer", action="append", help="only these customers (default: wallet customers)")
    flag("--output", "-o", choices=FORMATS, default="table", help="output format (show)")
    flag(
        "--html", metavar="DIR", type=values.flag(values.output_dir), help="also write each statement as HTML into DIR"
    )
    flag("--pdf", metavar="DIR", type=values.flag(values.output_dir), help="also write each statement as PDF into DIR")
    flag(
        "--language",
        help="of the HTML and PDF: en, de, fr, es, pl or one with a translation file (default: the customer's"
        " profile's in --billing, else en)",
    )
    flag(
        "--billing",
        metavar="FILE",
        help="a billing file: its seller and the customers' profiles head the HTML and PDF (its fonts: too)",
    )


def cmd_statement(args: argparse.Namespace, registry: Registry) -> int:
    from rating.invoices.render import require_renderers, statement_html, statement_pdf

    if args.html or args.pdf:
        require_renderers(pdf=bool(args.pdf))
    book = load_catalog(args.pricebook, registry).latest
    storage = open_storage(args, registry, "read")
    if args.action == "export":
        customers = args.customer or sorted(set(book.customers) | {c for c, _ in storage.period_totals(args.period)})
        print(statement_csv(storage, book, customers, args.period), end="")
        return 0
    customers = args.customer or [c for c in sorted(book.customers) if book.pays_from_wallet(c)]
    statements = [statement(storage, book, customer, args.period) for customer in customers]
    if args.output == "json":
        print(json.dumps([json.loads(s.model_dump_json()) for s in statements], indent=2))
    else:
        rows = [
            {"customer": s.customer, "asset": a.asset, "opening": a.opening, **a.movements, "closing": a.closing,
             "owed": a.owed, "value": a.closing_value}
            for s in statements
            for a in s.assets
        ]  # fmt: skip
        print(
            render([{c: row.get(c, ZERO) for c in STATEMENT_SUMMARY} for row in rows], STATEMENT_SUMMARY, args.output)
        )
    billing = load_billing(args.billing) if args.billing and (args.html or args.pdf) else None
    seller = billing.seller if billing else None
    fonts = billing.fonts if billing and args.pdf else ()
    languages = billing.languages if billing else {}
    documents = []
    for s in statements:
        buyer = billing.profiles.get(s.customer) if billing else None
        language = args.language or (buyer.language if buyer else "en")
        documents.append(
            (
                file_name(f"statement-{s.customer}-{s.period}"),
                partial(statement_html, s, language, seller, buyer, languages),
                partial(statement_pdf, s, language, fonts, seller, buyer, languages),
            )
        )
    write_documents(args, documents)
    return 0
