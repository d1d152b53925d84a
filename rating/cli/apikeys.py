"""``apikey create|list|revoke``: the API keys of ``rating serve``, kept hashed in ``--db``.

``create`` prints the key once (only its SHA-256 is stored: a lost key is revoked and made again);
``list`` never shows a key; ``revoke`` is seen by every server on the database at its next request.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rating.apikeys import SCOPES, ApiKeys
from rating.cli.common import Commands, add_db, open_storage
from rating.cli.output import FORMATS, render
from rating.records import ApiKeyRecord
from rating.registry import Registry

COLUMNS = ["name", "scopes", "created_at", "revoked_at", "sha256"]


def register(commands: Commands) -> None:
    """``apikey`` (create, list, revoke)."""
    apikey = commands.add_parser(
        "apikey",
        help="API keys of rating serve, kept hashed in the database: create, list, revoke",
        description="API keys of rating serve kept in --db: only each key's SHA-256 is stored; a revoked key is"
        " refused by every server on the database at its next request.",
    )
    actions = apikey.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key; it is printed once, only its hash is stored")
    create.add_argument(
        "--scope", required=True, action="append", choices=SCOPES, help="read, write or admin (repeatable)"
    )
    create.add_argument("--name", help="the key's name in lists and logs (default: SCOPE-HASHPREFIX)")
    listed = actions.add_parser("list", help="every key: name, scopes, created, revoked (never the key)")
    listed.add_argument("--output", "-o", choices=FORMATS, default="table", help="output format")
    revoke = actions.add_parser("revoke", help="refuse a key from now on, in every server")
    revoke.add_argument("name", metavar="NAME")
    for action in actions.choices.values():
        action.set_defaults(handler=cmd_apikey)
        add_db(action)


def cmd_apikey(args: argparse.Namespace, registry: Registry) -> int:
    keys = ApiKeys(open_storage(args, registry, "read" if args.action == "list" else "existing"))
    if args.action == "create":
        key, record = keys.create(args.scope, args.name)
        print(key)  # the only time the key is shown: stdout alone, for a script to capture
        print(
            f"created API key {record.name!r} ({', '.join(record.scopes)}); keep it, it is not stored", file=sys.stderr
        )
    elif args.action == "list":
        print(render([_row(record) for record in keys.list()], COLUMNS, args.output))
    else:
        record = keys.revoke(args.name)
        print(f"revoked API key {record.name!r}", file=sys.stderr)
    return 0


def _row(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "scopes": ",".join(record.scopes),
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else "",
        "sha256": record.sha256[:12] + "...",  # enough to tell keys apart; the hash is no secret, but short
    }
