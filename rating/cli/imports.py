"""``rating import``: write a catalogue from outside price data (genai-prices' llm prices)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rating.cli import args as values
from rating.cli.common import Commands, add_command
from rating.errors import RatingError
from rating.registry import Registry


def register(commands: Commands) -> None:
    """``import``."""
    importing = add_command(commands, "import", cmd_import, "write an llm cost catalogue from genai-prices' price data")
    importing.add_argument("source", choices=["genai-prices"], help="where the prices come from")
    importing.add_argument("--provider", action="append", required=True, help="anthropic, openai, ... (repeat)")
    importing.add_argument("--model", action="append", help="only these models (repeat; default every model)")
    target = importing.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--out", dest="output_file", metavar="FILE.yaml", type=values.flag(values.output_file), help="catalogue"
    )
    # -o FILE (and --output FILE) until the next release: -o is the output format in every other command.
    target.add_argument(
        "--output",
        "-o",
        dest="output_file",
        metavar="FILE.yaml",
        type=values.flag(values.output_file),
        action=DeprecatedOutput,
        help=argparse.SUPPRESS,
    )


#: What ``rating import -o FILE`` prints on stderr (CHANGELOG): the flag works, for one more release.
DEPRECATED_OUTPUT = (
    "rating: warning: rating import -o/--output FILE is deprecated and goes in the next release:"
    " use --out FILE (-o is the output format in every other command)"
)


class DeprecatedOutput(argparse.Action):
    """``-o FILE``/``--output FILE`` of ``rating import``: stores the file as ``--out`` does, and warns on stderr."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(DEPRECATED_OUTPUT, file=sys.stderr)
        setattr(namespace, self.dest, values)


def cmd_import(args: argparse.Namespace, registry: Registry) -> int:
    from rating.imports.genai_prices import import_genai_prices

    imported = import_genai_prices(args.provider, args.model or ())
    if not imported.models:
        raise RatingError("nothing to import: no model of those providers matched")
    imported.write(args.output_file, "genai-prices")
    for reason in imported.skipped:
        print(f"not imported: {reason}", file=sys.stderr)
    print(f"wrote {len(imported.models):,} models to {args.output_file}", file=sys.stderr)
    return 0
