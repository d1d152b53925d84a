"""Simulation commands: ``simulate`` prices a history under candidate pricebooks, ``to-parquet`` prepares one."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rating.cli import args as values
from rating.cli.common import (
    DONE,
    NOTHING_DONE,
    PRICEBOOK_HELP,
    REFUSED_SOME,
    Commands,
    Progress,
    UsageError,
    add_command,
    count_lines,
    date_range,
    events_file,
    open_storage,
    outcome,
)
from rating.cli.output import render
from rating.errors import RatingError
from rating.events import UsageEvent, read_events
from rating.money import plain
from rating.pricebook.catalog import Catalog, load_catalog
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.simulate import EventFile, SimulationResult, distinct, simulate
from rating.simulate.summary import simulation_summary

if TYPE_CHECKING:
    from rating.simulate.columnar import ParquetHistory
    from rating.simulate.report import Scope

#: What the ``--report`` page needs beside the result: the scope, the per-change impacts, the assets' scales.
ReportInputs = tuple["Scope", dict[str, list[dict[str, object]]], dict[str, int]]

#: Seconds to wait for a Dask scheduler that does not answer (one that refuses is reported at once).
DASK_CONNECT_TIMEOUT = 10.0


def register(commands: Commands) -> None:
    """``simulate`` and ``to-parquet``."""
    simulation = add_command(
        commands,
        "simulate",
        cmd_simulate,
        "what the pricebooks would charge for these events, customer by customer",
        output=True,
    )
    simulation.add_argument(
        "events",
        nargs="?",
        metavar="EVENTS",
        help="a .jsonl, .csv or .parquet file of events, a directory of .parquet files, or - for JSON Lines on stdin",
    )
    simulation.add_argument(
        "--db", type=values.flag(values.database), help="or read the rated events of this storage, with --from and --to"
    )
    simulation.add_argument(
        "--from",
        dest="since",
        metavar="DATE",
        type=values.flag(values.date),
        help="first day, e.g. 2026-08-01 (with --db)",
    )
    simulation.add_argument(
        "--to", dest="until", metavar="DATE", type=values.flag(values.date), help="day after the last, e.g. 2026-11-01"
    )
    simulation.add_argument(
        "--by", choices=["customer", "plan", "meter"], default="customer", help="one row per customer (default)"
    )
    simulation.add_argument(
        "--report",
        metavar="FILE.html",
        type=values.flag(values.output_file),
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
        "--workers", type=values.flag(values.count), metavar="N", help="simulate Parquet files on a local Dask cluster"
    )
    simulation.add_argument(
        "--dask",
        metavar="ADDRESS",
        type=values.flag(values.address),
        help="or on the Dask scheduler at tcp://host:8786",
    )

    to_parquet = add_command(commands, "to-parquet", cmd_to_parquet, "write events as Parquet, for columnar simulation")
    to_parquet.add_argument(
        "events", metavar="EVENTS", help="a .jsonl or .csv file of events, or - for JSON Lines on standard input"
    )
    to_parquet.add_argument(
        "output_file", metavar="OUT.parquet", type=values.flag(values.output_file), help="the Parquet file to write"
    )


def cmd_simulate(args: argparse.Namespace, registry: Registry) -> int:
    if args.report:
        from rating.simulate.report import require_charts

        require_charts()  # before the long run, not after it
    if args.baseline == "ledger":
        result, invalid, page = _simulate_against_ledger(args, registry)
    elif args.pricebook:
        baseline = load_catalog(args.pricebook, registry)
        result, invalid, page = _simulate(args, registry, baseline, args.pricebook[0], args.vs)
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

        scope, impacts, scales = page
        Path(args.report).write_text(
            render_report(result, scope=scope, impacts=impacts, scales=scales), encoding="utf-8"
        )
        print(f"report written to {args.report}", file=sys.stderr)
    return simulation_status(result, invalid)


def simulation_status(result: SimulationResult, invalid: int) -> int:
    """The exit code of a simulation: 1 if records were invalid or events unpriced, 3 if every record was invalid."""
    unpriced = any(scenario.unpriced for scenario in result.scenarios)
    if invalid and not any(scenario.revenue() or scenario.unpriced for scenario in result.scenarios):
        return NOTHING_DONE  # every record was invalid: there was nothing to price
    return REFUSED_SOME if invalid or unpriced else DONE


def _simulate(
    args: argparse.Namespace,
    registry: Registry,
    baseline: Catalog,
    source: str,
    versus: Sequence[str],
    itemised: bool = True,
) -> tuple[SimulationResult, int, ReportInputs]:
    """``baseline`` (read from ``source``) and the ``versus`` candidates over the history the arguments name;
    the invalid records; and what the ``--report`` page needs beside the result. With ``--report`` and
    ``itemised``, each change of a candidate is also priced alone, in the same pass, for the page's
    per-change impacts."""
    from rating.simulate import report

    candidates = [load_catalog([path], registry) for path in versus]
    labels = distinct([Path(source).stem, *(Path(path).stem for path in versus)])
    names = {
        label: report.describe(catalog, path)
        for label, catalog, path in zip(labels, [baseline, *candidates], [source, *versus], strict=True)
    }
    edits = report.change_candidates(baseline, candidates) if args.report and itemised else [[] for _ in candidates]
    catalogs = candidates + report.edit_catalogs(edits)
    labels += [
        f"{label} edit {n}" for label, own in zip(labels[1:], edits, strict=True) for n in range(1, len(own) + 1)
    ]
    scales = report.scales_of([baseline, *candidates])
    if args.workers or args.dask:
        from rating.simulate.distributed import connect, simulate_on_dask

        with connect(args.dask, args.workers, timeout=DASK_CONNECT_TIMEOUT) as client:
            result = simulate_on_dask(parquet_files(args.events), baseline, catalogs, labels, client)
        kept, impacts = report.itemise(result, edits)
        return kept, 0, (report.Scope(names), impacts, scales)
    events = history(args, registry, baseline.latest)
    progress = Progress(1 + len(catalogs), "pricebooks") if not isinstance(events, EventFile) else None
    if isinstance(events, EventFile | Iterator):  # counted as they are read
        tally = report.Tally(events)
        result = simulate(tally, baseline, catalogs, registry, labels, progress=progress)
        scope = tally.scope(names)
    else:  # Parquet history: DuckDB surveyed it
        result = simulate(events, baseline, catalogs, registry, labels, progress=progress)
        scope = report.parquet_scope(events, names)
    kept, impacts = report.itemise(result, edits)
    return kept, events.invalid if isinstance(events, EventFile) else 0, (scope, impacts, scales)


def _simulate_against_ledger(
    args: argparse.Namespace, registry: Registry
) -> tuple[SimulationResult, int, ReportInputs]:
    """What the ledger of ``--db`` billed from ``--from`` to ``--to``, against each ``--vs`` candidate."""
    from rating.simulate.ledger import billed

    if args.events is not None or args.pricebook or not args.vs or not args.db:
        raise UsageError("--baseline ledger compares --db (with --from and --to) with the --vs pricebooks")
    first, *others = args.vs
    catalog = load_catalog([first], registry)
    since, until = date_range(args, catalog.latest)
    ledger, notices = billed(open_storage(args, registry, "empty"), since, until, catalog.latest.currency)
    result, invalid, (scope, _, scales) = _simulate(args, registry, catalog, first, others, itemised=False)
    billed_as = f"what the ledger of {args.db} billed from {since.isoformat()} to {until.isoformat()}"
    scope = replace(scope, pricebooks={ledger.label: billed_as, **scope.pricebooks})
    return SimulationResult(ledger, result.scenarios, notices + result.notices), invalid, (scope, {}, scales)


def parquet_files(name: str | None) -> list[Path]:
    """The Parquet files of ``name``: the file itself, or every ``*.parquet`` in a directory."""
    if name is None:
        raise UsageError("--workers and --dask simulate Parquet files: give a .parquet file or a directory of them")
    path = Path(name)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or files[0].suffix != ".parquet":
        raise RatingError(f"{path}: not a .parquet file or a directory of them")
    return files


def history(
    args: argparse.Namespace, registry: Registry, book: Pricebook
) -> EventFile | ParquetHistory | Iterator[UsageEvent]:
    """The events to simulate, read as they are priced: a file (its ``invalid`` records counted as it is read),
    Parquet files (columnar), or the database (``--db``, ``--from``, ``--to``)."""
    if args.events is not None and (Path(args.events).suffix == ".parquet" or Path(args.events).is_dir()):
        from rating.simulate.columnar import ParquetHistory

        return ParquetHistory(parquet_files(args.events))
    if args.events is not None:
        path = events_file(args, args.events)  # - : standard input
        return EventFile(path, Progress(count_lines(path)))
    since, until = date_range(args, book)
    storage = open_storage(args, registry, "empty")
    return (activity.event for activity in storage.activity(since, until))


def cmd_to_parquet(args: argparse.Namespace, registry: Registry) -> int:
    from rating.simulate.columnar import write_parquet

    path = events_file(args, args.events)  # - : standard input
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
