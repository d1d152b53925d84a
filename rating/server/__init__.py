"""The HTTP service of ``rating serve``: usage in, quotes, metered requests, balances, invoices, usage reports.

:func:`create_app` returns a FastAPI (ASGI) application over one ledger, to run with uvicorn
(``rating serve``) or to mount inside an embedder's own ASGI application. It needs the
``server`` extra (``pip install 'rating-engine[server]'``).
"""

from __future__ import annotations

from rating.server.app import create_app

__all__ = ["create_app"]
