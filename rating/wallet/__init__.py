"""Wallets: prepaid funds, grants and reservations, balances, and the registry of payment ids.

Until 0.2 ``rating.wallet`` was one module, now :mod:`rating.wallet.wallets`: its names still import from here
for one release.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    """The names of the former module ``rating.wallet`` (now ``rating.wallet.wallets``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("rating.wallet.wallets"), name)
