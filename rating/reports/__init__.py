"""Reports over the ledger: usage and margin, and the difference between two pricebooks.

Until 0.2 ``rating.reports`` was one module, now :mod:`rating.reports.usage`: its names still import from here
for one release.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    """The names of the former module ``rating.reports`` (now ``rating.reports.usage``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("rating.reports.usage"), name)
