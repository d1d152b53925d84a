"""``rating serve``: the HTTP service (:mod:`rating.server`) run by uvicorn over one ledger."""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from rating.cli import args as values
from rating.cli.common import DEFAULT_DB, DONE, PRICEBOOK_HELP, Commands, UsageError, add_command
from rating.distribution import install_hint
from rating.errors import RatingError
from rating.pricebook.catalog import load_catalog
from rating.registry import Registry
from rating.storage import masked
from rating.webhooks import INTERVAL

#: Where ``rating serve`` finds its API key file when ``--api-keys`` is not given.
KEYS_VARIABLE = "RATING_API_KEYS"
#: How the worker processes of ``--workers N`` learn what to serve (uvicorn starts each from an import string).
SERVE_DB, SERVE_PRICEBOOKS, SERVE_KEYS = "RATING_SERVE_DB", "RATING_SERVE_PRICEBOOKS", "RATING_SERVE_KEYS"
#: Set to "1" for the worker processes of ``--no-auth`` (else they check the database's keys).
SERVE_NO_AUTH = "RATING_SERVE_NO_AUTH"
#: The billing file when ``--billing`` is not given; also how the worker processes of ``--workers N`` learn it.
SERVE_BILLING = "RATING_SERVE_BILLING"


def register(commands: Commands) -> None:
    """``serve``."""
    serve = add_command(
        commands,
        "serve",
        cmd_serve,
        "serve the HTTP API (events, quotes, metered requests, balances, invoices, usage) over one ledger",
        db=DEFAULT_DB,
    )
    serve.add_argument("--pricebook", "-p", required=True, action="append", help=PRICEBOOK_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", default=8000, type=values.flag(values.port), help="the port (default 8000)")
    serve.add_argument(
        "--workers", default=1, type=values.flag(values.count), help="server processes on the port (default 1)"
    )
    serve.add_argument(
        "--api-keys",
        metavar="FILE",
        help=f"an API key file (hashes and scopes; default: ${KEYS_VARIABLE}), accepted beside the keys of"
        " rating apikey create (kept in --db); see docs/server.md",
    )
    serve.add_argument(
        "--billing",
        metavar="FILE",
        help=f"the billing file (seller, tax rules, profiles, fonts: as rating invoice issue takes it; default:"
        f" ${SERVE_BILLING}): the invoice and statement PDFs draw with its fonts",
    )
    serve.add_argument(
        "--webhook-interval",
        type=float,
        default=INTERVAL,
        metavar="SECONDS",
        help=f"deliver the outbox's webhooks every SECONDS in the background (default {INTERVAL:g}; 0: never)",
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="serve without API keys (only behind a proxy that authenticates)"
    )


def _uvicorn() -> ModuleType:
    """uvicorn and FastAPI, or one line naming the extra that brings them."""
    try:
        import fastapi  # noqa: F401 -- imported by rating.server; checked here to name the extra
        import uvicorn
    except ImportError:
        raise RatingError(f"rating serve needs the server extra: {install_hint('server')}") from None
    return uvicorn


def cmd_serve(args: argparse.Namespace, registry: Registry) -> int:
    uvicorn = _uvicorn()
    keys_file = args.api_keys or os.environ.get(KEYS_VARIABLE) or None
    if keys_file is not None and args.no_auth:
        raise UsageError("--no-auth and an API key file do not go together")
    from rating.server.auth import load_keys

    if keys_file is not None:
        load_keys(keys_file)  # a bad key file stops the server now, in one line
    load_catalog(args.pricebook, registry)  # and so does a bad pricebook
    billing = args.billing or os.environ.get(SERVE_BILLING) or None
    if billing is not None:
        from rating.invoices.profiles import load_billing

        load_billing(billing)  # and a bad billing file
    # and a --db that is not a ledger (created by rating db migrate)
    with registry.open_storage(args.db, existing=True) as storage:
        stored = 0 if args.no_auth else sum(key.revoked_at is None for key in storage.api_keys())
    if args.no_auth:
        auth = "no auth"
    else:
        auth = f"{stored} API key{'s' if stored != 1 else ''} in the database" + (
            " and a key file" if keys_file else ""
        )
        if keys_file is None and not stored:
            print(
                "rating: no API key yet, every request is refused: make one with rating apikey create", file=sys.stderr
            )
    print(
        f"rating: serving {masked(args.db)} on http://{args.host}:{args.port}"
        f" ({args.workers} worker{'s' if args.workers > 1 else ''}, {auth})",
        file=sys.stderr,
    )
    if args.workers == 1:
        from rating.billing.payments import secrets_from_environment
        from rating.server import create_app

        payments, stripe = secrets_from_environment()
        app = create_app(
            args.db,
            args.pricebook,
            api_keys=keys_file,
            database_keys=not args.no_auth,
            registry=registry,
            payment_secrets=payments,
            stripe_secrets=stripe,
            webhook_interval=args.webhook_interval if args.webhook_interval > 0 else None,
            billing=billing,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    else:  # each worker process builds its app from what the environment tells it
        os.environ[SERVE_DB] = args.db
        os.environ[SERVE_PRICEBOOKS] = os.pathsep.join(args.pricebook)
        os.environ[SERVE_KEYS] = keys_file or ""
        os.environ[SERVE_NO_AUTH] = "1" if args.no_auth else ""
        os.environ[SERVE_BILLING] = billing or ""
        os.environ["RATING_SERVE_WEBHOOK_INTERVAL"] = str(args.webhook_interval)  # as from_environment reads it
        uvicorn.run(
            "rating.server.app:from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
        )
    return DONE
