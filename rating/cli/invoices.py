"""``rating invoice``: issue numbered invoices of a closed period, list and show them, record payments, credit them.

A subcommand group (``issue``, ``list``, ``show``, ``pay``, ``credit``) taking the argv the single
command took when the action was a positional choice: each action accepts every flag of the group.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rating.cli import args as values
from rating.cli.common import (
    DONE,
    PRICEBOOK_HELP,
    Commands,
    UsageError,
    add_group,
    add_group_db_flag,
    add_group_flag,
    open_storage,
    outcome,
)
from rating.cli.documents import document_fonts, document_languages, file_name, write_documents
from rating.cli.output import render
from rating.customers import Customers
from rating.errors import RatingError
from rating.invoices.profiles import load_billing
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry

if TYPE_CHECKING:
    from rating.invoices.issue import CreditNote, Invoice
    from rating.invoices.settle import InvoiceStatus

INVOICE_COLUMNS = ["number", "customer", "period", "due date", "total", "paid", "due", "status", "currency"]

HELP = "issue numbered invoices of a closed period, or show them"
#: The actions of ``rating invoice``, in the order its help lists them.
ACTIONS = {
    "issue": "issue the invoices of a closed period (--period, -p PRICEBOOK, --billing FILE)",
    "list": "list invoices (--customer, --overdue)",
    "show": "show an invoice or a credit note, e.g. rating invoice show INV-2026-000001 (or CN-2026-000001;"
    " --pdf DIR --format facturx, --xml DIR)",
    "pay": "record a payment of invoice NUMBER (--amount, --reference)",
    "credit": "credit invoice NUMBER with a credit note (--reference; --line, --amount, --refund; --html, --pdf)",
}


def register(commands: Commands) -> None:
    """``invoice`` and its actions."""
    add_group(commands, "invoice", HELP, ACTIONS, _flags, handler=cmd_invoice)


def _flags(parser: argparse.ArgumentParser, top: bool) -> None:
    """The flags of ``rating invoice``: on the group (``top``, hidden) and again on each action."""
    flag = partial(add_group_flag, parser, top)
    add_group_db_flag(parser, top)
    if not top:  # a positional: only ever after the action
        parser.add_argument("number", nargs="?", metavar="NUMBER", help="the invoice to show, e.g. INV-2026-000001")
    flag("--period", type=values.flag(values.period), help="the closed billing period to invoice, e.g. 2026-11 (issue)")
    flag("--pricebook", "-p", action="append", help=PRICEBOOK_HELP + " (issue)")
    flag("--billing", metavar="FILE", help="seller, tax rules and customer profiles (issue); its fonts: for --pdf")
    flag("--customer", action="append", help="only these customers (repeatable)")
    flag("--date", type=values.flag(values.date), help="the issue date, e.g. 2026-12-01 (default today)")
    flag(
        "--amount", type=values.flag(values.amount), help="pay: the amount paid; credit: the amount of --line to credit"
    )
    flag("--reference", help="pay, credit: the payment's or the credit's reference (idempotent)")
    flag(
        "--line",
        type=values.flag(values.count),
        help="credit: only this line (counted from 1); default all that is left, in line order",
    )
    flag(
        "--refund",
        action="store_true",
        default=False,
        help="credit: may credit what was paid too, and gives it back (--to)",
    )
    flag(
        "--to",
        choices=["customer", "wallet"],
        help="credit --refund: owed to the customer (default), or as wallet funds",
    )
    flag("--reason", help="credit: why, shown on the credit note")
    flag("--overdue", action="store_true", default=False, help="list: only invoices past their due date")
    flag("--output", "-o", choices=["table", "json", "csv"], default="table", help="output format")
    flag(
        "--html",
        metavar="DIR",
        type=values.flag(values.output_dir),
        help="also write each invoice (credit: the credit note) as DIR/NUMBER.html",
    )
    flag(
        "--pdf",
        metavar="DIR",
        type=values.flag(values.output_dir),
        help="also write each invoice (credit: the credit note) as DIR/NUMBER.pdf",
    )
    flag(
        "--format",
        choices=["pdf", "facturx"],
        default="pdf",
        help="the PDFs --pdf writes: plain, or facturx (PDF/A-3 with the EN 16931 XML embedded)",
    )
    flag(
        "--xml",
        metavar="DIR",
        type=values.flag(values.output_dir),
        help="also write each invoice's Factur-X XML (EN 16931) as DIR/NUMBER.xml",
    )


def cmd_invoice(args: argparse.Namespace, registry: Registry) -> int:
    from rating.invoices.issue import CREDIT_NOTE, CreditNote, documents_of, invoices, issue_invoices
    from rating.invoices.settle import RefundTo, credit_invoice, invoice_status, pay_invoice

    if args.action == "credit" and args.amount is not None and args.line is None:
        print("rating: error: invoice credit --amount needs --line (the line it credits)", file=sys.stderr)
        return 2
    if args.to is not None and not args.refund:
        print("rating: error: invoice credit --to needs --refund", file=sys.stderr)
        return 2
    if args.html or args.pdf:
        from rating.invoices.render import require_renderers

        require_renderers(pdf=bool(args.pdf))
    if args.format == "facturx" and not args.pdf:
        raise UsageError("invoice --format facturx is the kind of PDF --pdf DIR writes: give --pdf DIR")
    if args.format == "facturx" or args.xml:
        from rating.invoices.facturx import require_facturx

        require_facturx()
    if args.action in ("pay", "credit") and not (args.number and args.reference):
        raise UsageError(f"rating invoice {args.action} needs the invoice NUMBER and --reference")
    if args.action == "issue" and not (args.period and args.pricebook and args.billing):
        raise UsageError("rating invoice issue needs --period, -p PRICEBOOK and --billing FILE")
    if args.action == "pay" and args.amount is None:
        raise UsageError("rating invoice pay needs --amount")
    storage = open_storage(args, registry, "read" if args.action in ("list", "show") else "existing")
    status = DONE
    if args.action == "issue":
        catalog, billing = load_catalog(args.pricebook, registry), load_billing(args.billing)
        catalog = Customers(storage, catalog).catalog_now()  # the customers kept in --db win over the pricebook's
        report = issue_invoices(storage, catalog, billing, args.period, args.customer, issued=args.date)
        for customer, _, reason in report.refused:
            print(f"{customer}: {reason}", file=sys.stderr)
        for note in report.credit_notes + report.existing_credit_notes:
            print(
                f"{note.customer}: {note.period} owes less than nothing: credit note {note.number} of"
                f" {note.total} {note.currency}, carried to the next invoice",
                file=sys.stderr,
            )
        chosen = report.issued + report.existing
        credited = len(report.credit_notes) + len(report.existing_credit_notes)
        status = outcome(len(chosen) + credited, len(report.refused))
        print(
            f"issued {len(report.issued):,} invoices, {len(report.existing):,} already issued,"
            f" {credited:,} credit notes, {len(report.refused):,} refused",
            file=sys.stderr,
        )
    elif args.action == "pay":
        new = pay_invoice(storage, args.number, args.amount, args.reference)
        print(f"{'settled' if new else 'already settled'}: {args.reference}", file=sys.stderr)
        chosen = invoices(storage, args.number)
    elif args.action == "credit":
        refund: RefundTo | None = (args.to or "customer") if args.refund else None
        note, new = credit_invoice(
            storage,
            args.number,
            args.reference,
            args.reason or "credit",
            line=args.line,
            amount=args.amount,
            refund=refund,
        )
        given_back = f", {note.refund} of it refunded to the {note.refund_to}" if note.refund_to else ""
        print(
            f"{'issued' if new else 'already issued'} {note.number}: {note.total} {note.currency}{given_back}",
            file=sys.stderr,
        )
        chosen = invoices(storage, args.number)
        _write_credit_note_documents(args, note)
    else:
        chosen = invoices(storage, args.number, (args.customer or [None])[0])
        if args.number and not chosen:
            notes = documents_of(storage, CREDIT_NOTE, args.number)
            if not notes:
                raise RatingError(f"no invoice or credit note {args.number}")
            _write_credit_note(args, CreditNote.model_validate(notes[0]))
            return DONE
    today = dt.datetime.now(dt.UTC).date()
    statuses = {i.number: invoice_status(storage, i, today) for i in chosen}
    if args.overdue:
        chosen = [i for i in chosen if statuses[i.number].overdue]
    _write_invoices(args, chosen, statuses, documents=args.action != "credit")
    return status


CREDIT_NOTE_COLUMNS = ["number", "customer", "credits", "total", "refund", "currency"]


def _write_credit_note(args: argparse.Namespace, note: CreditNote) -> None:
    """A credit note (of an invoice, or of a period that owed less than nothing) as the output format asks;
    ``--html`` and ``--pdf`` write it as a document."""
    if args.xml or args.format == "facturx":
        raise RatingError(f"{note.number} is a credit note: Factur-X is written for invoices only")
    from rating.invoices.render import credit_note_csv

    if args.output == "json":
        print(json.dumps([json.loads(note.model_dump_json())], indent=2))
    elif args.output == "csv":
        print(credit_note_csv([note]), end="")
    else:
        credits = note.invoice or f"period {note.period}"
        row = {"number": note.number, "customer": note.customer, "credits": credits, "total": note.total,
               "refund": note.refund, "currency": note.currency}  # fmt: skip
        print(render([row], CREDIT_NOTE_COLUMNS, "table"))
    _write_credit_note_documents(args, note)


def _write_credit_note_documents(args: argparse.Namespace, note: CreditNote) -> None:
    """``--html DIR`` and ``--pdf DIR``: the credit note as ``DIR/NUMBER.html`` and ``DIR/NUMBER.pdf``."""
    from rating.invoices.render import credit_note_html, credit_note_pdf

    fonts, languages = document_fonts(args), document_languages(args)
    html, pdf = partial(credit_note_html, note, languages), partial(credit_note_pdf, note, fonts, languages)
    write_documents(args, [(file_name(note.number), html, pdf)])


def _write_invoices(
    args: argparse.Namespace, chosen: list[Invoice], statuses: dict[str, InvoiceStatus], *, documents: bool = True
) -> None:
    """The invoices as the output format asks; ``--html`` and ``--pdf`` write one document per invoice (unless
    not ``documents``: ``credit`` writes its credit note instead)."""
    from rating.invoices.render import invoice_csv, invoice_html, invoice_pdf

    if args.output == "json":
        print(json.dumps([json.loads(invoice.to_json()) for invoice in chosen], indent=2))
    elif args.output == "csv":
        print(invoice_csv(chosen), end="")
    else:
        rows = [
            {"number": i.number, "customer": i.customer, "period": i.period, "due date": i.due.isoformat(),
             "total": i.total, "paid": statuses[i.number].paid, "due": statuses[i.number].due,
             "status": statuses[i.number].state + (", overdue" if statuses[i.number].overdue else ""),
             "currency": i.currency}
            for i in chosen
        ]  # fmt: skip
        print(render(rows, INVOICE_COLUMNS, "table"))
    if not documents:
        return
    fonts, languages = document_fonts(args), document_languages(args)
    pdf: Callable[..., bytes] = invoice_pdf
    xml: dict[str, bytes] = {}
    if args.format == "facturx" or args.xml:
        from rating.invoices.facturx import check_xsd, facturx_pdf, facturx_xml

        pdf = facturx_pdf if args.format == "facturx" else invoice_pdf
        xml = {i.number: facturx_xml(i) for i in chosen} if args.xml else {}
        for content in xml.values():
            check_xsd(content)  # every document made and checked before any is written
    write_documents(
        args,
        [(file_name(i.number), partial(invoice_html, i, languages), partial(pdf, i, fonts, languages)) for i in chosen],
    )
    for number, content in xml.items():
        path = Path(args.xml) / f"{file_name(number)}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path}", file=sys.stderr)
