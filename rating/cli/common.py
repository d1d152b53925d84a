"""What every command group shares: exit codes, opening ``--db``, progress, flags that recur, the environment
variables standing in for them, time ranges."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeAlias

from rating.cli import args as values
from rating.cli.output import FORMATS
from rating.engine import Engine
from rating.errors import RatingError, StorageError
from rating.periods import zone
from rating.pricebook.catalog import load_catalog
from rating.pricebook.model import Pricebook
from rating.registry import Registry
from rating.reports.usage import window
from rating.storage import Storage, masked
from rating.storage.memory import MemoryStorage

DEFAULT_DB = "rating.db"

#: The exit codes (README "Exit codes").
DONE, REFUSED_SOME, USAGE, NOTHING_DONE, INTERRUPTED = 0, 1, 2, 3, 130


class Parser(argparse.ArgumentParser):
    """argparse, answering a usage error or an invalid flag value with one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, masked(f"{self.prog}: error: {message} (see {self.prog} --help)\n"))


if TYPE_CHECKING:
    #: What ``rating`` hands each group's ``register``: the ``add_parser`` of its subcommands.
    Commands: TypeAlias = argparse._SubParsersAction[Parser]
else:
    Commands = argparse._SubParsersAction


PRICEBOOK_HELP = "a pricebook file, or a directory of its versions; repeat for several version files"

#: A command's handler: the parsed arguments and the plugin registry in, the exit code out.
Handler = Callable[[argparse.Namespace, Registry], int]


class UsageError(RatingError):
    """The command was called with flags that do not go together, or without one it needs (exit code 2)."""


def outcome(accepted: int, refused: int) -> int:
    """The exit code of a command that took ``accepted`` records and refused ``refused``."""
    if not refused:
        return DONE
    return REFUSED_SOME if accepted else NOTHING_DONE


def add_command(
    commands: Commands, name: str, handler: Handler, help: str, *, db: str | None = None, output: bool = False
) -> argparse.ArgumentParser:
    """The subcommand ``name`` run by ``handler``; with ``--db`` (defaulting to ``db``) and ``--output`` if asked."""
    sub = commands.add_parser(name, help=help, description=help)
    sub.set_defaults(handler=handler)
    if db is not None:
        add_db(sub, db)
    if output:
        sub.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")
    return sub


def add_db(parser: argparse.ArgumentParser, default: str = DEFAULT_DB) -> None:
    """The ``--db`` flag, parsed by :func:`rating.cli.args.database`."""
    parser.add_argument(
        "--db",
        default=default,
        type=values.flag(values.database),
        help=f"storage URL or SQLite file (default: {default})",
    )


def add_group_flag(
    parser: argparse.ArgumentParser, top: bool, *names: str, default: Any = None, help: str, **options: Any
) -> None:
    """A flag each action of a subcommand group (``invoice``, ``statement``) takes, after the action or before it.

    ``rating invoice list --db X`` and ``rating invoice --db X list`` both worked when the action was
    a positional choice, so the group's parser (``top``) keeps every flag too, hidden from its help and
    with the real default, and each action's parser declares it again without one (``SUPPRESS``): a flag
    given after the action overrides one given before it, and one given only before it survives.
    """
    parser.add_argument(
        *names, default=default if top else argparse.SUPPRESS, help=argparse.SUPPRESS if top else help, **options
    )


def add_group_db_flag(parser: argparse.ArgumentParser, top: bool) -> None:
    """``--db`` of a subcommand group's actions (:func:`add_group_flag`), with the default storage."""
    add_group_flag(
        parser,
        top,
        "--db",
        default=DEFAULT_DB,
        type=values.flag(values.database),
        help=f"storage URL or SQLite file (default: {DEFAULT_DB})",
    )


def add_group(
    commands: Commands,
    name: str,
    help: str,
    actions: Mapping[str, str],
    flags: Callable[[argparse.ArgumentParser, bool], None],
    *,
    metavar: str | None = None,
    **defaults: Any,
) -> argparse.ArgumentParser:
    """A subcommand group ``rating NAME ACTION``: ``flags(parser, top)`` declares its flags on the group's parser
    (``top``) and again on each action's (:func:`add_group_flag`); ``defaults`` are set on the group, which is
    also the parser that reports a missing ``required_flags`` entry."""
    group = commands.add_parser(name, help=help, description=help)
    group.set_defaults(group_parser=group, **defaults)
    flags(group, True)
    subparsers = group.add_subparsers(dest="action", required=True, metavar=metavar)
    for action, text in actions.items():
        flags(subparsers.add_parser(action, help=text, description=text), False)
    return group


#: The environment variables that stand in for ``--db`` and ``--pricebook`` when the flag is not given: a flag
#: always wins. ``RATING_PRICEBOOK`` may name several files or directories, separated by :data:`os.pathsep`
#: (``:``; ``;`` on Windows), as several ``-p`` flags would.
DB_VARIABLE, PRICEBOOK_VARIABLE = "RATING_DB", "RATING_PRICEBOOK"

#: The commands whose flag the variable does not stand in for: ``demo`` keeps its own database and example
#: pricebook (a demo never writes into the ledger the environment names); ``check --db`` adds a check of the
#: stored customers and ``balance -p`` a value column, both only when asked for.
NOT_FROM_ENVIRONMENT = {DB_VARIABLE: frozenset({"demo", "check"}), PRICEBOOK_VARIABLE: frozenset({"demo", "balance"})}


def _flag_actions(parser: argparse.ArgumentParser, dest: str) -> Iterator[argparse.Action]:
    """The actions storing ``dest`` in ``parser`` and in the parsers of its subcommands, at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                yield from _flag_actions(sub, dest)
        elif action.dest == dest and action.option_strings:
            yield action


def environment_defaults(parser: argparse.ArgumentParser, environ: Mapping[str, str] = os.environ) -> None:
    """Let :data:`DB_VARIABLE` and :data:`PRICEBOOK_VARIABLE` stand in for ``--db`` and ``--pricebook`` in every
    command of ``parser`` (the ``rating`` parser, each group's commands registered), but those of
    :data:`NOT_FROM_ENVIRONMENT`.

    ``--db``: the variable becomes the flag's default (parsed by :func:`rating.cli.args.database` like a
    flag's value; an empty variable is no variable). ``--pricebook``: a required one is no longer required
    while the variable is set; :func:`pricebooks_from_environment` fills it in after parsing.
    """
    database, pricebooks = environ.get(DB_VARIABLE) or None, _paths(environ.get(PRICEBOOK_VARIABLE, ""))
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        if name not in NOT_FROM_ENVIRONMENT[DB_VARIABLE]:
            for action in _flag_actions(command, "db"):
                if action.default is not argparse.SUPPRESS and database is not None:
                    action.default = database
                if action.help not in (None, argparse.SUPPRESS):
                    action.help = f"{action.help}; ${DB_VARIABLE}, when set, stands in for the flag"
        if name not in NOT_FROM_ENVIRONMENT[PRICEBOOK_VARIABLE]:
            for action in _flag_actions(command, "pricebook"):
                action.required = action.required and not pricebooks
                if action.help not in (None, argparse.SUPPRESS):
                    action.help = f"{action.help}; ${PRICEBOOK_VARIABLE}, when set, stands in for the flag"


def pricebooks_from_environment(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> None:
    """``--pricebook`` from :data:`PRICEBOOK_VARIABLE` when the command takes it, it was not given and the variable
    is set (see :func:`environment_defaults`); not the baseline of ``simulate --baseline ledger``, which has none."""
    pricebooks = _paths(environ.get(PRICEBOOK_VARIABLE, ""))
    if (
        pricebooks
        and getattr(args, "pricebook", argparse.SUPPRESS) is None
        and args.command not in NOT_FROM_ENVIRONMENT[PRICEBOOK_VARIABLE]
        and getattr(args, "baseline", None) is None
    ):
        args.pricebook = pricebooks


def _paths(text: str) -> list[str]:
    """The paths of a variable holding several, separated by :data:`os.pathsep` (empty parts left out)."""
    return [part for part in text.split(os.pathsep) if part]


class Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal: what is done (of the total when it is
    known), the rate per second, and the time left when the total is known (the time taken once done).

    ``rating [###.....] 120,000/1,000,000 events  40,000 events/s  0:22 left``. The rate is the average since
    the first count (the bar is asked every 10,000 records); a count lower than the last one is a new pass over
    the input (a simulation reading its file again) and starts the clock again.
    """

    def __init__(self, total: int | None, label: str = "events", clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.label, self.clock = total, label, clock
        self.enabled = sys.stderr.isatty()
        self.started, self.last, self.width = clock(), 0, 0

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        line = self.line(done)
        sys.stderr.write("\r" + line.ljust(self.width))
        self.width = len(line)
        if self.total is None or done >= self.total:
            sys.stderr.write("\n")
            self.width = 0
        sys.stderr.flush()

    def line(self, done: int) -> str:
        """The bar's text after ``done`` (without the carriage return that redraws it)."""
        now = self.clock()
        if done < self.last:
            self.started = now
        self.last = done
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 and done else None
        speed = None if rate is None else f"{rate:,.{0 if rate >= 10 else 1}f} {self.label}/s"
        if not self.total:
            return "  ".join(filter(None, [f"rating {done:,} {self.label}", speed]))
        filled = min(30, int(30 * done / self.total))
        bar = "#" * filled + "." * (30 - filled)
        if done >= self.total:
            timing: str | None = f"done in {_clock_time(elapsed)}"
        else:
            timing = f"{_clock_time((self.total - done) / rate)} left" if rate is not None else None
        return "  ".join(filter(None, [f"rating [{bar}] {done:,}/{self.total:,} {self.label}", speed, timing]))


def _clock_time(seconds: float) -> str:
    """``seconds`` as ``M:SS``, or ``H:MM:SS`` from an hour on."""
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02}:{second:02}" if hours else f"{minute}:{second:02}"


def count_lines(path: Path) -> int | None:
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


def open_storage(args: argparse.Namespace, registry: Registry, mode: OpenMode = "existing") -> Storage:
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


def open_engine(
    args: argparse.Namespace, registry: Registry, pricebooks: Sequence[str | Path], mode: OpenMode = "existing"
) -> Engine:
    """An engine over the pricebooks and the storage of ``--db`` (opened as ``mode`` says); running totals of a
    database from before charges had identities are adopted first (the engine itself never migrates)."""
    from rating.engine import adopt_legacy_totals

    tolerance = getattr(args, "future_tolerance", None)
    catalog = load_catalog(pricebooks, registry)  # before --db: a bad pricebook is reported first, as it always was
    storage = open_storage(args, registry, mode)
    adopt_legacy_totals(storage, catalog)
    return Engine(catalog, storage, registry, future_tolerance=tolerance)


def spooled_stdin(args: argparse.Namespace) -> Path:
    """Standard input copied to a temporary JSON Lines file: all-or-nothing needs the whole input first."""
    spool = args.resources.enter_context(tempfile.TemporaryDirectory(prefix="rating-stdin-"))
    path = Path(spool) / "stdin.jsonl"
    with path.open("wb") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy)
    return path


#: The file name that means standard input, wherever a command reads a file of events.
STDIN = "-"


def events_file(args: argparse.Namespace, name: str) -> Path:
    """The file of events ``name`` names, for a command that reads a whole file (perhaps twice): ``-`` is standard
    input (JSON Lines), copied to a temporary file first (:func:`spooled_stdin`); any other name must be a file."""
    if name == STDIN:
        return spooled_stdin(args)
    path = Path(name)
    if not path.is_file():
        raise RatingError(f"{path}: no such events file")
    return path


def report_window(args: argparse.Namespace, book: Pricebook) -> tuple[dt.datetime, dt.datetime]:
    """The report window of ``--period`` and ``--until`` (both checked by :mod:`rating.cli.args`)."""
    return window(args.period, zone(book.timezone), args.until or dt.datetime.now(dt.UTC))


def date_range(args: argparse.Namespace, book: Pricebook) -> tuple[dt.datetime, dt.datetime]:
    """``--from`` and ``--to`` as local midnights in the pricebook's time zone."""
    if not (args.db and args.since and args.until):
        raise UsageError("give an events file, or --db with --from and --to")
    if args.until <= args.since:
        raise UsageError(f"--to {args.until.isoformat()} must come after --from {args.since.isoformat()}")
    timezone = zone(book.timezone)
    return dt.datetime.combine(args.since, dt.time(), timezone), dt.datetime.combine(args.until, dt.time(), timezone)
