"""``rating import``: write a catalogue from outside price data (genai-prices' llm prices)."""

from __future__ import annotations

import argparse
import sys

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
    importing.add_argument(
        "--output",
        "-o",
        dest="output_file",
        required=True,
        metavar="FILE.yaml",
        type=values.flag(values.output_file),
        help="catalogue",
    )


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
