"""The ``rating`` command line: check, schema, quote, rate, request, balance, demo and the rest.

Exit codes, one table every command follows (README "Exit codes"): 0 done; 1 done
with some refusals, or ``check``/``verify`` found problems; 2 a usage error or an
invalid flag value (parsed by :mod:`rating.cliargs` before anything is read or
written); 3 nothing done (unusable input, pricebook or database; a ``--strict``
refusal; every record refused); 130 interrupted. One clear line per problem on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from rating import cliargs
from rating.accounts import customer_account, held_account, receivable_account
from rating.billing import load_billing
from rating.catalog import Catalog, load_catalog
from rating.charges import Charge
from rating.closing import close_period
from rating.demo import example_pricebook, write_demo_events
from rating.diff import Edit, diff, separable_edits
from rating.engine import BatchReport, Engine
from rating.errors import InvalidValue, PricebookError, RatingError, StorageError
from rating.events import Pause, Sourced, UsageEvent, follow, parse_event, parse_json, read_events
from rating.money import ZERO, format_decimal, plain
from rating.output import FORMATS, OutputFormat, as_text, render
from rating.payouts import pay_creators
from rating.periods import zone
from rating.pricebook import Pricebook, json_schema, load_pricebook, summary
from rating.registry import Registry
from rating.reports import margin_report, usage_report, window
from rating.rerate import rerate
from rating.simulate import EventFile, SimulationResult, distinct, percent_change, simulate
from rating.statements import MOVEMENTS, statement, statement_csv
from rating.storage import Storage, masked
from rating.storage.memory import MemoryStorage
from rating.wallet import Wallets

if TYPE_CHECKING:
    from rating.invoices import Invoice
    from rating.settlement import InvoiceStatus
    from rating.simulate.columnar import ParquetHistory

DEFAULT_DB = "rating.db"
#: ``rate`` refuses events stamped further ahead than this unless told otherwise (``--future-tolerance none``).
DEFAULT_FUTURE_TOLERANCE = "5m"

#: Seconds to wait for a Dask scheduler that does not answer (one that refuses is reported at once).
DASK_CONNECT_TIMEOUT = 10.0

#: The exit codes (README "Exit codes").
DONE, REFUSED_SOME, USAGE, NOTHING_DONE, INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(RatingError):
    """The command was called with flags that do not go together, or without one it needs (exit code 2)."""


def outcome(accepted: int, refused: int) -> int:
    """The exit code of a command that took ``accepted`` records and refused ``refused``."""
    if not refused:
        return DONE
    return REFUSED_SOME if accepted else NOTHING_DONE


PRICEBOOK_HELP = "a pricebook file, or a directory of its versions; repeat for several version files"


class Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int | None, label: str = "events") -> None:
        self.total, self.label = total, label
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        if self.total:
            filled = int(30 * done / self.total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\rrating [{bar}] {done:,}/{self.total:,} {self.label}")
        else:
            sys.stderr.write(f"\rrating {done:,} {self.label}")
        if self.total is None or done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _count_lines(path: Path) -> int | None:
    """Lines of a regular file (less a CSV header), counted in bounded blocks: a line may be a gigabyte."""
    try:
        if not path.is_file():
            return None
        lines, last = 0, b"\n"
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                lines, last = lines + block.count(b"\n"), block[-1:]
        return lines + (last != b"\n") - (1 if path.suffix.lower() == ".csv" else 0)
    except OSError:
        return None


#: How a command opens ``--db``: ``create`` (and migrate) it, open an ``existing`` one to write, ``read`` one,
#: or read one if it exists and else an ``empty`` storage (``quote``, ``simulate``).
OpenMode = Literal["create", "existing", "read", "empty"]


def _open(args: argparse.Namespace, registry: Registry, mode: OpenMode = "existing") -> Storage:
    """The storage of ``--db``, closed when the command ends (whatever way it ends).

    Only ``rate``, ``demo`` and ``db migrate`` create a database or upgrade its schema;
    the others refuse a missing one (``no_database``) or an outdated one (``schema_outdated``),
    so a typo in ``--db`` never starts a fresh ledger. Readers open it read-only.
    """
    if mode == "create":
        opened = registry.open_storage(args.db)
    elif mode == "existing":
        opened = registry.open_storage(args.db, existing=True)
    else:
        try:
            opened = registry.open_storage(args.db, read_only=True)
        except StorageError as error:
            if mode != "empty" or error.code != "no_database":
                raise
            opened = MemoryStorage()  # nothing rated yet: quote and simulate see an empty ledger, create none
    storage: Storage = args.resources.enter_context(opened)
    args.opened = [*getattr(args, "opened", []), storage]  # verified if the command trips on what it reads
    return storage


def _engine(
    args: argparse.Namespace, registry: Registry, pricebooks: Sequence[str | Path], mode: OpenMode = "existing"
) -> Engine:
    tolerance = getattr(args, "future_tolerance", None)
    return Engine(load_catalog(pricebooks, registry), _open(args, registry, mode), registry, future_tolerance=tolerance)


REJECTION_COLUMNS = ["location", "code", "reason"]


def _print_report(report: BatchReport, fmt: OutputFormat, storage: Storage) -> None:
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


def cmd_check(args: argparse.Namespace, registry: Registry) -> int:
    status = 0
    for path in args.pricebooks:
        try:
            book = load_pricebook(path, registry)
        except PricebookError as error:
            for problem in error.problems:
                print(problem, file=sys.stderr)
            status = 1
            continue
        info = summary(book)
        print(
            f"{path}: ok: pricebook {info['pricebook']} version {info['version']}, {info['currency']}, "
            f"{info['meters']} meters, {len(info['plans'])} plans, {info['customers']} customers, "
            f"{info['contracts']} contracts"
        )
        for plan, charges in info["plans"].items():
            print(f"  plan {plan}: {', '.join(charges)}")
    return status


def cmd_schema(args: argparse.Namespace, registry: Registry) -> int:
    print(json.dumps(json_schema(registry), indent=2))
    return 0


def _quote_inputs(source: str) -> Iterator[Sourced]:
    if source.lstrip().startswith("{"):
        try:
            yield Sourced("argument", event=parse_event(parse_json(source)))
        except RatingError as error:
            yield Sourced("argument", error=str(error))
    else:
        yield from read_events(source)


def cmd_quote(args: argparse.Namespace, registry: Registry) -> int:
    engine = _engine(args, registry, args.pricebook, "empty")
    rows: list[dict[str, Any]] = []
    quoted = refused = 0
    for record in _quote_inputs(args.event):
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


CHARGE_COLUMNS = ["event", "meter", "group", "quantity", "unit_price", "amount", "asset", "explanation"]


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


def cmd_rate(args: argparse.Namespace, registry: Registry) -> int:
    engine = _engine(args, registry, args.pricebook, "create")
    records: Iterable[Sourced | Pause]
    if args.events == "-" and not args.strict:
        records, progress = follow(sys.stdin.buffer, "<stdin>"), Progress(None)
    else:
        path = _spooled_stdin(args) if args.events == "-" else Path(args.events)
        if not path.is_file():
            raise RatingError(f"{path}: no such events file")
        records, progress = read_events(path), Progress(_count_lines(path))
    report = engine.rate_batch(records, strict=args.strict, progress=progress)
    _print_report(report, args.output, engine.storage)
    if args.strict and report.rejected:
        print(f"strict: nothing posted because {len(report.rejected):,} records were rejected", file=sys.stderr)
        return NOTHING_DONE
    return outcome(report.posted + report.duplicates, len(report.rejected))


RESERVATION_COLUMNS = ["reservation", "customer", "asset", "amount", "expires_at"]


def _one_event(source: str) -> UsageEvent:
    """The single event of a metered request: JSON text, or a file holding exactly one."""
    records = list(_quote_inputs(source))
    if len(records) != 1:
        raise RatingError(f"{source}: a metered request is one event, found {len(records):,} records")
    record = records[0]
    if record.event is None:
        raise RatingError(f"{record.location}: {record.error}")
    return record.event


def cmd_request_authorize(args: argparse.Namespace, registry: Registry) -> int:
    """Phase one: hold the quoted price of the request as expected, before the work runs."""
    engine = _engine(args, registry, args.pricebook)
    held = engine.authorize(_one_event(args.event), args.reservation, args.timeout)
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
    engine = _engine(args, registry, args.pricebook)
    event = _one_event(args.event)
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
        holding = held_account(held.customer)
        used = sum((p.amount for p in rating.transaction.postings if p.account == holding), ZERO)
        print(
            f"reservation {held.id}: {plain(used)} of {plain(held.amount)} {held.asset} held paid the request,"
            f" {plain(held.amount - used)} {held.asset} released",
            file=sys.stderr,
        )
    print(render(charge_rows(event.id, rating.charges), CHARGE_COLUMNS, args.output))
    return 0


def cmd_request_expire(args: argparse.Namespace, registry: Registry) -> int:
    """Release every hold past its timeout (run it from a scheduler)."""
    released = Wallets(_open(args, registry)).expire()
    rows = [
        {"reservation": t.metadata["reservation"], "customer": t.metadata["customer"], "released": t.description}
        for t in released
    ]
    print(render(rows, ["reservation", "customer", "released"], args.output))
    return 0


def cmd_request_void(args: argparse.Namespace, registry: Registry) -> int:
    """The work did not run: release all of the reservation."""
    wallets = Wallets(_open(args, registry))
    held = wallets.reservation(args.reservation)
    wallets.void(args.reservation, args.reason)
    if held is not None:
        print(f"reservation {held.id}: {plain(held.amount)} {held.asset} released", file=sys.stderr)
    return 0


def _spooled_stdin(args: argparse.Namespace) -> Path:
    """Standard input copied to a temporary JSON Lines file: all-or-nothing needs the whole input first."""
    spool = args.resources.enter_context(tempfile.TemporaryDirectory(prefix="rating-stdin-"))
    path = Path(spool) / "stdin.jsonl"
    with path.open("wb") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy)
    return path


def cmd_balance(args: argparse.Namespace, registry: Registry) -> int:
    storage = _open(args, registry, "read")
    book = load_catalog(args.pricebook, registry).latest if args.pricebook else None
    rows: list[dict[str, Any]]
    if args.customer:
        rows, columns, valued = customer_balances(storage, args.customer), CUSTOMER_COLUMNS, "owed"
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


CUSTOMER_COLUMNS = ["asset", "available", "reserved", "posted", "owed"]


def customer_balances(storage: Storage, customer: str) -> list[dict[str, Any]]:
    """Per asset: the wallet's available, reserved and posted funds, and what is owed on the receivable."""
    wallet = Wallets(storage).balance(customer)
    owed = {asset: amount for (_, asset), amount in storage.balances([receivable_account(customer)]).items()}
    rows = []
    for asset in sorted(set(wallet) | set(owed)):
        funds = wallet.get(asset)
        rows.append(
            {
                "asset": asset,
                "available": funds.available if funds else ZERO,
                "reserved": funds.reserved if funds else ZERO,
                "posted": funds.posted if funds else ZERO,
                "owed": owed.get(asset, ZERO),
            }
        )
    return rows


def cmd_close_period(args: argparse.Namespace, registry: Registry) -> int:
    engine = _engine(args, registry, args.pricebook)
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
    closed = len({t.metadata.get("customer") for t in report.posted if t.id.startswith("close:")})
    for skipped in report.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    print(f"closed {args.period} for {closed:,} customers; posted {len(report.posted):,} transactions", file=sys.stderr)
    if report.skipped:
        return 1 if closed or report.already_closed else 3  # some closed and some refused; or nothing done
    if args.customer and not (closed or report.already_closed):
        print(f"rating: error: nothing of {args.period} to close for {', '.join(args.customer)}", file=sys.stderr)
        return 3
    return 0


def _window(args: argparse.Namespace, book: Pricebook) -> tuple[dt.datetime, dt.datetime]:
    """The report window of ``--period`` and ``--until`` (both checked by :mod:`rating.cliargs`)."""
    return window(args.period, zone(book.timezone), args.until or dt.datetime.now(dt.UTC))


def cmd_usage(args: argparse.Namespace, registry: Registry) -> int:
    book = load_catalog(args.pricebook, registry).latest
    since, until = _window(args, book)
    report = usage_report(_open(args, registry, "read"), book, since, until, args.group_by, args.customer)
    meters = sorted({m for row in report for m in row.quantities})
    assets = sorted({a for row in report for a in row.cost})
    rows = [
        {
            args.group_by: row.group,
            "events": row.events,
            **{m: row.quantities.get(m) for m in meters},
            **{f"cost_{a}": row.cost.get(a) for a in assets},
        }
        for row in report
    ]
    columns = [args.group_by, "events", *meters, *(f"cost_{a}" for a in assets)]
    print(render(rows, columns, args.output))
    return 0


def cmd_payouts(args: argparse.Namespace, registry: Registry) -> int:
    book = load_catalog(args.pricebook, registry).latest
    fresh, earlier = pay_creators(_open(args, registry), book, args.week)
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


def cmd_margin(args: argparse.Namespace, registry: Registry) -> int:
    book = load_catalog(args.pricebook, registry).latest
    since, until = _window(args, book)
    report = margin_report(_open(args, registry, "read"), book, since, until, args.group_by, args.below)
    currency = book.currency
    rows = [
        {
            args.group_by: r.group,
            f"revenue_{currency}": r.revenue,
            f"cost_{currency}": r.cost,
            f"margin_{currency}": r.margin,
            "margin_%": r.margin_percent,
        }
        for r in report
    ]
    columns = [args.group_by, f"revenue_{currency}", f"cost_{currency}", f"margin_{currency}", "margin_%"]
    print(render(rows, columns, args.output))
    return 0


def cmd_simulate(args: argparse.Namespace, registry: Registry) -> int:
    if args.report:
        from rating.simulate.report import require_charts

        require_charts()  # before the long run, not after it
    if args.baseline == "ledger":
        result, invalid = _simulate_against_ledger(args, registry)
    elif args.pricebook:
        baseline = load_catalog(args.pricebook, registry)
        result, invalid = _simulate(args, registry, baseline, Path(args.pricebook[0]).stem, args.vs)
    else:
        raise UsageError("give the baseline: -p PRICEBOOK, or --baseline ledger with --db")
    for notice in result.notices:
        print(notice, file=sys.stderr)
    rows = result.rows() if args.by == "customer" else result.rows_by(args.by)
    columns = list(rows[0]) if rows else ["customer", "asset"]
    if args.output == "json":
        margins = result.margins()
        document = {
            "customers": json.loads(render(rows, columns, "json")),
            "revenue": {s.label: {a: plain(v) for a, v in s.revenue().items()} for s in result.scenarios},
            "unpriced": {s.label: {str(code): n for code, n in s.unpriced.items()} for s in result.scenarios},
            "capped": {
                s.label: {c: {"events": n, "amount": plain(a)} for c, (n, a) in s.capped.items()}
                for s in result.scenarios
            },
            "margins": json.loads(render(margins, list(margins[0]), "json")) if margins else [],
            "invalid_records": invalid,
        }
        print(json.dumps(document, indent=2))
    else:
        print(render(rows, columns, args.output))
        for line in simulation_summary(result, invalid):
            print(line, file=sys.stderr)
    if args.report:
        from rating.simulate.report import render_report  # imports matplotlib, an optional extra

        Path(args.report).write_text(render_report(result), encoding="utf-8")
        print(f"report written to {args.report}", file=sys.stderr)
    return simulation_status(result, invalid)


def simulation_status(result: SimulationResult, invalid: int) -> int:
    """The exit code of a simulation: 1 if records were invalid or events unpriced, 3 if every record was invalid."""
    unpriced = any(scenario.unpriced for scenario in result.scenarios)
    if invalid and not any(scenario.revenue() or scenario.unpriced for scenario in result.scenarios):
        return NOTHING_DONE  # every record was invalid: there was nothing to price
    return REFUSED_SOME if invalid or unpriced else DONE


def _simulate(
    args: argparse.Namespace, registry: Registry, baseline: Catalog, label: str, versus: Sequence[str]
) -> tuple[SimulationResult, int]:
    """``baseline`` and the ``versus`` candidates over the history the arguments name; and the invalid records."""
    candidates = [load_catalog([path], registry) for path in versus]
    labels = distinct([label, *(Path(path).stem for path in versus)])
    if args.workers or args.dask:
        from rating.simulate.distributed import connect, simulate_on_dask

        with connect(args.dask, args.workers, timeout=DASK_CONNECT_TIMEOUT) as client:
            return simulate_on_dask(_parquet_files(args.events), baseline, candidates, labels, client), 0
    events = _history(args, registry, baseline.latest)
    progress = Progress(1 + len(candidates), "pricebooks") if not isinstance(events, EventFile) else None
    result = simulate(events, baseline, candidates, registry, labels, progress=progress)
    return result, events.invalid if isinstance(events, EventFile) else 0


def _simulate_against_ledger(args: argparse.Namespace, registry: Registry) -> tuple[SimulationResult, int]:
    """What the ledger of ``--db`` billed from ``--from`` to ``--to``, against each ``--vs`` candidate."""
    from rating.simulate.ledger import billed

    if args.events is not None or args.pricebook or not args.vs or not args.db:
        raise UsageError("--baseline ledger compares --db (with --from and --to) with the --vs pricebooks")
    first, *others = args.vs
    catalog = load_catalog([first], registry)
    since, until = _range(args, catalog.latest)
    ledger, notices = billed(_open(args, registry, "empty"), since, until, catalog.latest.currency)
    result, invalid = _simulate(args, registry, catalog, Path(first).stem, others)
    return SimulationResult(ledger, result.scenarios, notices + result.notices), invalid


def cmd_rerate(args: argparse.Namespace, registry: Registry) -> int:
    catalog = load_catalog(args.pricebook, registry)
    since, until = _range(args, catalog.latest)
    report = rerate(_open(args, registry), catalog, registry, since, until, dry_run=args.dry_run)
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


INVOICE_COLUMNS = ["number", "customer", "period", "due date", "total", "paid", "due", "status", "currency"]


def cmd_invoice(args: argparse.Namespace, registry: Registry) -> int:
    from rating.invoices import invoices, issue_invoices
    from rating.settlement import RefundTo, credit_invoice, invoice_status, pay_invoice

    if args.action == "credit" and args.amount is not None and args.line is None:
        print("rating: error: invoice credit --amount needs --line (the line it credits)", file=sys.stderr)
        return 2
    if args.to is not None and not args.refund:
        print("rating: error: invoice credit --to needs --refund", file=sys.stderr)
        return 2
    if args.html or args.pdf:
        from rating.documents import require_renderers

        require_renderers(pdf=bool(args.pdf))
    if args.action in ("pay", "credit") and not (args.number and args.reference):
        raise UsageError(f"rating invoice {args.action} needs the invoice NUMBER and --reference")
    if args.action == "issue" and not (args.period and args.pricebook and args.billing):
        raise UsageError("rating invoice issue needs --period, -p PRICEBOOK and --billing FILE")
    if args.action == "pay" and args.amount is None:
        raise UsageError("rating invoice pay needs --amount")
    storage = _open(args, registry, "read" if args.action in ("list", "show") else "existing")
    status = DONE
    if args.action == "issue":
        catalog, billing = load_catalog(args.pricebook, registry), load_billing(args.billing)
        report = issue_invoices(storage, catalog, billing, args.period, args.customer, issued=args.date)
        for customer, _, reason in report.refused:
            print(f"{customer}: {reason}", file=sys.stderr)
        chosen = report.issued + report.existing
        status = outcome(len(chosen), len(report.refused))
        print(
            f"issued {len(report.issued):,} invoices, {len(report.existing):,} already issued,"
            f" {len(report.refused):,} refused",
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
    else:
        chosen = invoices(storage, args.number, (args.customer or [None])[0])
        if args.number and not chosen:
            raise RatingError(f"no invoice {args.number}")
    today = dt.datetime.now(dt.UTC).date()
    statuses = {i.number: invoice_status(storage, i, today) for i in chosen}
    if args.overdue:
        chosen = [i for i in chosen if statuses[i.number].overdue]
    _write_invoices(args, chosen, statuses)
    return status


STATEMENT_SUMMARY = ["customer", "asset", "opening", *MOVEMENTS, "closing", "owed", "value"]


def cmd_statement(args: argparse.Namespace, registry: Registry) -> int:
    from rating.documents import require_renderers, statement_html, statement_pdf

    if args.html or args.pdf:
        require_renderers(pdf=bool(args.pdf))
    book = load_catalog(args.pricebook, registry).latest
    storage = _open(args, registry, "read")
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
    _write_documents(
        args,
        [
            (
                file_name(f"statement-{s.customer}-{s.period}"),
                partial(statement_html, s, args.language),
                partial(statement_pdf, s, args.language, _document_fonts(args)),
            )
            for s in statements
        ],  # fmt: skip
    )
    return 0


def _write_invoices(args: argparse.Namespace, chosen: list[Invoice], statuses: dict[str, InvoiceStatus]) -> None:
    """The invoices as the output format asks; ``--html`` and ``--pdf`` write one document per invoice."""
    from rating.documents import invoice_csv, invoice_html, invoice_pdf

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
    fonts = _document_fonts(args)
    _write_documents(
        args, [(file_name(i.number), partial(invoice_html, i), partial(invoice_pdf, i, fonts)) for i in chosen]
    )


def _document_fonts(args: argparse.Namespace) -> tuple[str, ...]:
    """The font files the ``--billing`` file names for PDFs (``fonts:``), if ``--pdf`` and ``--billing`` are given."""
    return load_billing(args.billing).fonts if args.pdf and args.billing else ()


#: A document to write: its file name without suffix, and what renders it as HTML and as PDF.
Document = tuple[str, Callable[[], str], Callable[[], bytes]]


def file_name(name: str) -> str:
    """``name`` (holding a customer id or an invoice number) as one file name: never a path, never hidden.

    Ids may hold ``/``, ``\\``, ``%`` and the like: each character other than a letter, a digit
    or one of ``-_.~+=,@`` is percent-encoded (UTF-8), and a leading ``.`` too, so distinct names
    stay distinct files. A name too long for a file system keeps its start and a hash of the whole.
    """
    encoded = "".join(
        c if (c.isalnum() or c in "-_.~+=,@") and c.isprintable() else urllib.parse.quote(c, safe="") for c in name
    )
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if len(encoded.encode()) > MAX_FILE_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        encoded = encoded.encode()[: MAX_FILE_NAME - 17].decode(errors="ignore") + "-" + digest
    return encoded


#: Bytes of a file name, leaving room for the suffix under the usual limit of 255.
MAX_FILE_NAME = 200


def _write_documents(args: argparse.Namespace, documents: Sequence[Document]) -> None:
    """Each document as ``DIR/NAME.html`` for ``--html DIR`` and ``DIR/NAME.pdf`` for ``--pdf DIR``."""
    # Every document is rendered before any is written: one that cannot be (unrenderable_text) leaves no files.
    rendered: list[tuple[Path, bytes]] = []
    for folder, suffix in ((args.html, ".html"), (args.pdf, ".pdf")):
        if folder is None:
            continue
        for name, html, pdf in documents:
            content = html().encode("utf-8") if suffix == ".html" else pdf()
            rendered.append((Path(folder) / f"{name}{suffix}", content))
    for path, content in rendered:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path}", file=sys.stderr)


def cmd_import(args: argparse.Namespace, registry: Registry) -> int:
    from rating.llm_import import import_genai_prices

    imported = import_genai_prices(args.provider, args.model or ())
    if not imported.models:
        raise RatingError("nothing to import: no model of those providers matched")
    imported.write(args.output_file, "genai-prices")
    for reason in imported.skipped:
        print(f"not imported: {reason}", file=sys.stderr)
    print(f"wrote {len(imported.models):,} models to {args.output_file}", file=sys.stderr)
    return 0


def _parquet_files(name: str | None) -> list[Path]:
    """The Parquet files of ``name``: the file itself, or every ``*.parquet`` in a directory."""
    if name is None:
        raise UsageError("--workers and --dask simulate Parquet files: give a .parquet file or a directory of them")
    path = Path(name)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or files[0].suffix != ".parquet":
        raise RatingError(f"{path}: not a .parquet file or a directory of them")
    return files


def _history(
    args: argparse.Namespace, registry: Registry, book: Pricebook
) -> EventFile | ParquetHistory | Iterator[UsageEvent]:
    """The events to simulate, read as they are priced: a file (its ``invalid`` records counted as it is read),
    Parquet files (columnar), or the database (``--db``, ``--from``, ``--to``)."""
    if args.events is not None and (Path(args.events).suffix == ".parquet" or Path(args.events).is_dir()):
        from rating.simulate.columnar import ParquetHistory

        return ParquetHistory(_parquet_files(args.events))
    if args.events is not None:
        path = Path(args.events)
        if not path.is_file():
            raise RatingError(f"{path}: no such events file")
        return EventFile(path, Progress(_count_lines(path)))
    since, until = _range(args, book)
    storage = _open(args, registry, "empty")
    return (activity.event for activity in storage.activity(since, until))


def _range(args: argparse.Namespace, book: Pricebook) -> tuple[dt.datetime, dt.datetime]:
    """``--from`` and ``--to`` as local midnights in the pricebook's time zone."""
    if not (args.db and args.since and args.until):
        raise UsageError("give an events file, or --db with --from and --to")
    if args.until <= args.since:
        raise UsageError(f"--to {args.until.isoformat()} must come after --from {args.since.isoformat()}")
    timezone = zone(book.timezone)
    return dt.datetime.combine(args.since, dt.time(), timezone), dt.datetime.combine(args.until, dt.time(), timezone)


def simulation_summary(result: SimulationResult, invalid: int) -> list[str]:
    """Revenue under each pricebook, the change, who pays more or less, the biggest movers, what was refused."""
    lines = []
    base = result.baseline.revenue()
    for scenario in result.scenarios:
        revenue = ", ".join(f"{format_decimal(v)} {a}" for a, v in sorted(scenario.revenue().items())) or "nothing"
        lines.append(f"{scenario.label}: revenue {revenue}")
    for candidate in result.candidates:
        for asset, amount in sorted(candidate.revenue().items()):
            change = percent_change(base.get(asset, ZERO), amount)
            shown = f" ({change:+}%)" if change is not None else ""
            delta = amount - base.get(asset, ZERO)
            lines.append(f"{candidate.label} vs {result.baseline.label}: {format_decimal(delta)} {asset}{shown}")
        movers = result.movers(candidate)
        lines.append(f"  customers paying more: {movers['more']}, less: {movers['less']}, the same: {movers['same']}")
        key = f"delta {candidate.label}"
        biggest = sorted(result.rows(), key=lambda row: -abs(row[key]))[:5]  # type: ignore[arg-type]
        for row in biggest:
            if row[key]:
                lines.append(f"  mover {row['customer']}: {format_decimal(row[key])} {row['asset']}")  # type: ignore[arg-type]
    for margin in result.margins():
        text = {name: as_text(value) for name, value in margin.items()}
        changed = f", change {text['change']}" if text["change"] else ""
        percent = f" ({text['margin %']}%)" if text["margin %"] else ""
        lines.append(
            f"{text['pricebook']}: margin {text['margin']} {text['asset']}{percent} on cost {text['cost']}{changed}"
        )
    for scenario in result.scenarios:
        for code, count in sorted(scenario.unpriced.items()):
            lines.append(f"{scenario.label}: {count:,} events not priced ({code})")
        for customer, (count, amount) in sorted(scenario.capped.items()):
            lines.append(
                f"{scenario.label}: {customer}'s spend cap would have refused {count:,} events"
                f" ({format_decimal(amount)}); the totals include them"
            )
    if invalid:
        lines.append(f"{invalid:,} invalid records skipped")
    return lines


def cmd_to_parquet(args: argparse.Namespace, registry: Registry) -> int:
    from rating.simulate.columnar import write_parquet

    path = Path(args.events)
    if not path.is_file():
        raise RatingError(f"{path}: no such events file")
    invalid = 0

    def valid() -> Iterator[UsageEvent]:
        nonlocal invalid
        for record in read_events(path):
            if record.event is None:
                invalid += 1
                print(f"{record.location}: {record.error}", file=sys.stderr)
            else:
                yield record.event

    events = valid()
    first = next(events, None)
    if first is None:  # nothing to write: leave OUT as it was
        raise RatingError(f"{path}: no valid event to write ({invalid:,} invalid records)")
    written = write_parquet(itertools.chain([first], events), args.output_file)
    print(
        f"{written:,} events written to {args.output_file}"
        + (f"; {invalid:,} invalid records skipped" if invalid else "")
    )
    return outcome(written, invalid)


def cmd_diff(args: argparse.Namespace, registry: Registry) -> int:
    before, after = (load_pricebook(path, registry) for path in (args.before, args.after))
    rows = [{"change": c.what, "where": c.where, "detail": c.detail} for c in diff(before, after)]
    columns = ["change", "where", "detail"]
    if not args.events:
        print(render(rows, columns, args.output))
        return 0
    events = _history(args, registry, after)
    edits = separable_edits(before, after)
    candidates = [Catalog([after])] + [Catalog([edit.alone]) for edit in edits]
    labels = ["before", "after"] + [f"edit {number}" for number, _ in enumerate(edits, start=1)]
    result = simulate(events, Catalog([before]), candidates, registry, labels)
    invalid = events.invalid if isinstance(events, EventFile) else 0
    for line in simulation_summary(result.only(1), invalid):
        print(line, file=sys.stderr)
    impacts = change_impacts(result, edits)
    impact_columns = ["change", "where", "asset", "impact"]
    if args.output == "json":
        document = {"changes": rows, "impacts": json.loads(render(impacts, impact_columns, "json"))}
        print(json.dumps(document, indent=2))
    else:  # two tables, a blank line apart
        print(render(rows, columns, args.output) + "\n\n" + render(impacts, impact_columns, args.output))
    return simulation_status(result, invalid)


def change_impacts(result: SimulationResult, edits: Sequence[Edit]) -> list[dict[str, object]]:
    """Per asset: each separable change's revenue impact alone, the remainder, and all changes together."""
    base = result.baseline.revenue()
    together, *alone = result.candidates
    rows: list[dict[str, object]] = []
    for asset in sorted(set(base) | {a for s in result.candidates for a in s.revenue()}):
        total = together.revenue().get(asset, ZERO) - base.get(asset, ZERO)
        itemised = ZERO
        for edit, scenario in zip(edits, alone, strict=True):
            impact = scenario.revenue().get(asset, ZERO) - base.get(asset, ZERO)
            itemised += impact
            rows.append({"change": edit.what, "where": edit.where, "asset": asset, "impact": impact})
        if total != itemised:
            remainder = {"change": "other", "where": "changes not itemised, and how the changes combine"}
            rows.append({**remainder, "asset": asset, "impact": total - itemised})
        rows.append({"change": "all", "where": "every change together", "asset": asset, "impact": total})
    return [row for row in rows if any(r["impact"] for r in rows if r["asset"] == row["asset"])]


def cmd_verify(args: argparse.Namespace, registry: Registry) -> int:
    try:
        storage = _open(args, registry, "read")
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
    storage = _open(args, registry, "create")  # opening applies pending migrations
    version = getattr(storage, "schema_version", lambda: None)()
    url = masked(storage.url)
    print(f"{url}: schema version {version}" if version is not None else f"{url}: nothing to migrate")
    return 0


def cmd_demo(args: argparse.Namespace, registry: Registry) -> int:
    pricebook = args.pricebook or [example_pricebook()]
    events = write_demo_events(Path(args.events_file), args.events)
    names = ", ".join(map(str, pricebook))
    print(f"demo: {args.events:,} events in {events}, pricebook {names}, database {masked(args.db)}", file=sys.stderr)
    engine = _engine(args, registry, pricebook, "create")
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


class Parser(argparse.ArgumentParser):
    """argparse, answering a usage error or an invalid flag value with one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, masked(f"{self.prog}: error: {message} (see {self.prog} --help)\n"))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rating", description="Rate metered usage into exact ledger postings.")
    flag = cliargs.flag
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[..., int], help: str, *, db: str | None = None, output: bool = False
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if db is not None:
            sub.add_argument(
                "--db", default=db, type=flag(cliargs.database), help=f"storage URL or SQLite file (default: {db})"
            )
        if output:
            sub.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")
        return sub

    check = command("check", cmd_check, "validate pricebooks and summarise them")
    check.add_argument("pricebooks", nargs="+", metavar="PRICEBOOK")
    command("schema", cmd_schema, "print the JSON Schema of the pricebook format")
    quote = command("quote", cmd_quote, "price events without posting anything", db=DEFAULT_DB, output=True)
    quote.add_argument("event", metavar="EVENT", help="an event as JSON text, or a .jsonl/.csv file of events")
    quote.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    rate = command("rate", cmd_rate, "rate a file of events and post the charges", db=DEFAULT_DB, output=True)
    rate.add_argument(
        "events", metavar="EVENTS", help="a .jsonl or .csv file of events, or - for JSON Lines on standard input"
    )
    rate.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    rate.add_argument("--strict", action="store_true", help="post nothing if any record is rejected")
    rate.add_argument(
        "--future-tolerance",
        metavar="DURATION",
        type=flag(cliargs.tolerance),
        default=DEFAULT_FUTURE_TOLERANCE,
        help=f"refuse events stamped later than now + this, e.g. 90s, 2h, 1d (default {DEFAULT_FUTURE_TOLERANCE});"
        " none accepts any time (back-office imports)",
    )
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
        step.add_argument(
            "--db",
            default=DEFAULT_DB,
            type=flag(cliargs.database),
            help=f"storage URL or SQLite file (default: {DEFAULT_DB})",
        )
        if phase == "void":
            step.add_argument("reservation", metavar="RESERVATION", help="the reservation id")
            step.add_argument("--reason", default="voided", help="recorded on the release (default: voided)")
            continue
        step.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")
        if phase == "expire":
            continue
        step.add_argument("event", metavar="EVENT", help="the event as JSON text, or a .jsonl/.csv file of one event")
        step.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
        step.add_argument("--reservation", metavar="ID", help="the reservation id (default: the event id)")
        if phase == "authorize":
            step.add_argument(
                "--timeout",
                default="5m",
                type=flag(cliargs.duration),
                help="the hold expires after this, e.g. 90s, 5m, 2h (default 5m); request expire releases it",
            )
    balance = command("balance", cmd_balance, "ledger balances, or one customer's wallet", db=DEFAULT_DB, output=True)
    balance.add_argument(
        "customer", nargs="?", metavar="CUSTOMER", help="per asset: available, reserved, posted and owed"
    )
    balance.add_argument("--pricebook", "-p", action="append", help="add each balance's value in its currency")
    close = command(
        "close-period",
        cmd_close_period,
        "post fees, minimums and rounding of a period, once",
        db=DEFAULT_DB,
        output=True,
    )
    close.add_argument(
        "--period",
        required=True,
        type=flag(cliargs.period),
        help="2026-11 (month), 2026-W47 (week), 2026-11-23 (day) or 2026",
    )
    close.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    close.add_argument("--customer", action="append", help="only these customers (repeatable)")
    usage = command("usage", cmd_usage, "usage and cost per group over a time window", db=DEFAULT_DB, output=True)
    usage.add_argument(
        "--period",
        default="30d",
        type=flag(cliargs.window),
        help="30d, 24h, or a billing period such as 2026-11 (default 30d)",
    )
    usage.add_argument(
        "--group-by", default="agent", help="customer, event, agent, session, order or any property (default agent)"
    )
    usage.add_argument("--customer", help="only this customer")
    usage.add_argument(
        "--until", type=flag(cliargs.timestamp), help="end of a relative window, ISO 8601 with a zone (default now)"
    )
    usage.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    payouts = command("payouts", cmd_payouts, "pay creators their earnings of a week", db=DEFAULT_DB, output=True)
    payouts.add_argument(
        "--week", required=True, type=flag(cliargs.week), help="an ISO week, e.g. 2026-W47 (Monday to Sunday)"
    )
    payouts.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    margin = command("margin", cmd_margin, "revenue, provider cost and margin per group", db=DEFAULT_DB, output=True)
    margin.add_argument(
        "--below", type=flag(cliargs.percentage), help="only groups whose margin is under this percentage, e.g. 20%%"
    )
    margin.add_argument(
        "--period",
        default="30d",
        type=flag(cliargs.window),
        help="30d, 24h, or a billing period such as 2026-11 (default 30d)",
    )
    margin.add_argument("--group-by", default="model", help="customer, event, agent, model or any property")
    margin.add_argument(
        "--until", type=flag(cliargs.timestamp), help="end of a relative window, ISO 8601 with a zone (default now)"
    )
    margin.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    simulation = command(
        "simulate", cmd_simulate, "what the pricebooks would charge for these events, customer by customer", output=True
    )
    simulation.add_argument(
        "events",
        nargs="?",
        metavar="EVENTS",
        help="a .jsonl, .csv or .parquet file of events, or a directory of .parquet files",
    )
    simulation.add_argument(
        "--db", type=flag(cliargs.database), help="or read the rated events of this storage, with --from and --to"
    )
    simulation.add_argument(
        "--from", dest="since", metavar="DATE", type=flag(cliargs.date), help="first day, e.g. 2026-08-01 (with --db)"
    )
    simulation.add_argument(
        "--to", dest="until", metavar="DATE", type=flag(cliargs.date), help="day after the last, e.g. 2026-11-01"
    )
    simulation.add_argument(
        "--by", choices=["customer", "plan", "meter"], default="customer", help="one row per customer (default)"
    )
    simulation.add_argument(
        "--report",
        metavar="FILE.html",
        type=flag(cliargs.output_file),
        help="also write a self-contained HTML page with charts",
    )
    simulation.add_argument("--pricebook", "-p", action="append", help="the baseline: " + PRICEBOOK_HELP)
    simulation.add_argument(
        "--baseline",
        choices=["ledger"],
        help="or compare with what the ledger of --db billed (with --from and --to; the first --vs is priced first)",
    )
    simulation.add_argument(
        "--vs",
        action="append",
        default=[],
        metavar="PRICEBOOK",
        help="a candidate pricebook file or directory (repeat)",
    )
    simulation.add_argument(
        "--workers", type=flag(cliargs.count), metavar="N", help="simulate Parquet files on a local Dask cluster"
    )
    simulation.add_argument(
        "--dask", metavar="ADDRESS", type=flag(cliargs.address), help="or on the Dask scheduler at tcp://host:8786"
    )
    correction = command(
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
        type=flag(cliargs.date),
        help="the billing periods that start on or after it",
    )
    correction.add_argument(
        "--to", dest="until", required=True, metavar="DATE", type=flag(cliargs.date), help="and before this day"
    )
    correction.add_argument("--pricebook", "-p", required=True, action="append", help="the fixed " + PRICEBOOK_HELP)
    correction.add_argument("--dry-run", action="store_true", help="show the differences, post nothing")
    billing = command("invoice", cmd_invoice, "issue numbered invoices of a closed period, or show them", db=DEFAULT_DB)
    billing.add_argument(
        "action", choices=["issue", "list", "show", "pay", "credit"], help="issue, list, show, pay or credit invoices"
    )
    billing.add_argument("number", nargs="?", metavar="NUMBER", help="the invoice to show, e.g. INV-2026-000001")
    billing.add_argument(
        "--period", type=flag(cliargs.period), help="the closed billing period to invoice, e.g. 2026-11 (issue)"
    )
    billing.add_argument("--pricebook", "-p", action="append", help=PRICEBOOK_HELP + " (issue)")
    billing.add_argument(
        "--billing", metavar="FILE", help="seller, tax rules and customer profiles (issue); its fonts: for --pdf"
    )
    billing.add_argument("--customer", action="append", help="only these customers (repeatable)")
    billing.add_argument("--date", type=flag(cliargs.date), help="the issue date, e.g. 2026-12-01 (default today)")
    billing.add_argument(
        "--amount", type=flag(cliargs.amount), help="pay: the amount paid; credit: the amount of --line to credit"
    )
    billing.add_argument("--reference", help="pay, credit: the payment's or the credit's reference (idempotent)")
    billing.add_argument(
        "--line",
        type=flag(cliargs.count),
        help="credit: only this line (counted from 1); default all that is left, in line order",
    )
    billing.add_argument(
        "--refund", action="store_true", help="credit: may credit what was paid too, and gives it back (--to)"
    )
    billing.add_argument(
        "--to",
        choices=["customer", "wallet"],
        help="credit --refund: owed to the customer (default), or as wallet funds",
    )
    billing.add_argument("--reason", help="credit: why, shown on the credit note")
    billing.add_argument("--overdue", action="store_true", help="list: only invoices past their due date")
    billing.add_argument("--output", "-o", choices=["table", "json", "csv"], default="table", help="output format")
    billing.add_argument(
        "--html", metavar="DIR", type=flag(cliargs.output_dir), help="also write each invoice as DIR/NUMBER.html"
    )
    billing.add_argument(
        "--pdf", metavar="DIR", type=flag(cliargs.output_dir), help="also write each invoice as DIR/NUMBER.pdf"
    )
    statements = command(
        "statement", cmd_statement, "wallet statements of a period, or the accountant's CSV export", db=DEFAULT_DB
    )
    statements.add_argument("action", choices=["show", "export"], help="show statements, or export every movement")
    statements.add_argument(
        "--period", required=True, type=flag(cliargs.period), help="the billing period, e.g. 2026-11"
    )
    statements.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    statements.add_argument("--customer", action="append", help="only these customers (default: wallet customers)")
    statements.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format (show)")
    statements.add_argument(
        "--html", metavar="DIR", type=flag(cliargs.output_dir), help="also write each statement as HTML into DIR"
    )
    statements.add_argument(
        "--pdf", metavar="DIR", type=flag(cliargs.output_dir), help="also write each statement as PDF into DIR"
    )
    statements.add_argument("--language", choices=["en", "de"], default="en", help="of the HTML and PDF")
    statements.add_argument("--billing", metavar="FILE", help="a billing file whose fonts: the PDFs may use")
    importing = command("import", cmd_import, "write an llm cost catalogue from genai-prices' price data")
    importing.add_argument("source", choices=["genai-prices"], help="where the prices come from")
    importing.add_argument("--provider", action="append", required=True, help="anthropic, openai, ... (repeat)")
    importing.add_argument("--model", action="append", help="only these models (repeat; default every model)")
    importing.add_argument(
        "--output",
        "-o",
        dest="output_file",
        required=True,
        metavar="FILE.yaml",
        type=flag(cliargs.output_file),
        help="catalogue",
    )
    to_parquet = command("to-parquet", cmd_to_parquet, "write events as Parquet, for columnar simulation")
    to_parquet.add_argument("events", metavar="EVENTS", help="a .jsonl or .csv file of events")
    to_parquet.add_argument(
        "output_file", metavar="OUT.parquet", type=flag(cliargs.output_file), help="the Parquet file to write"
    )
    differences = command("diff", cmd_diff, "what changed between two pricebook versions", output=True)
    differences.add_argument("before", metavar="BEFORE", help="the current pricebook file")
    differences.add_argument("after", metavar="AFTER", help="the changed pricebook file")
    differences.add_argument("--events", metavar="EVENTS", help="and what the change does to this history's revenue")
    command("verify", cmd_verify, "check that the ledger balances and matches its postings", db=DEFAULT_DB)
    db = command("db", cmd_migrate, "database maintenance: rating db migrate", db=DEFAULT_DB)
    db.add_argument(
        "action",
        choices=["migrate"],
        help="migrate: create the database, or apply its pending schema migrations (rate does too; no other command)",
    )
    demo = command(
        "demo", cmd_demo, "rate generated events with the example pricebook", db="rating-demo.db", output=True
    )
    demo.add_argument(
        "--events", type=flag(cliargs.count), default=2_000, help="how many events to generate (default 2000)"
    )
    demo.add_argument(
        "--events-file", default="demo-events.jsonl", type=flag(cliargs.output_file), help="where to write them"
    )
    demo.add_argument("--pricebook", "-p", action="append", help="default: the shipped ai-gateway example")
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
