"""Invoices: billing profiles and tax rules, issuing, paying and crediting, and rendering.

Until 0.2 ``rating.invoices`` was one module, now :mod:`rating.invoices.issue`: its names still import from
here for one release.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    """The names of the former module ``rating.invoices`` (now ``rating.invoices.issue``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("rating.invoices.issue"), name)
