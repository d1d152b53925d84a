"""The billing wing over the core: period close, re-rating, statements, payments and payouts.

Until 0.2 ``rating.billing`` was one module, now :mod:`rating.invoices.profiles`: its names still import from
here for one release.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    """The names of the former module ``rating.billing`` (now ``rating.invoices.profiles``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("rating.invoices.profiles"), name)
