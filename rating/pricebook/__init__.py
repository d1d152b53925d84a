"""Pricebooks: the model, its YAML loader and checks, the catalogue of versions, and what a pricebook holds
(meters, pricing models, revenue splits).

Until 0.2 ``rating.pricebook`` was one module, now :mod:`rating.pricebook.model`: its names still import from
here for one release.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    """The names of the former module ``rating.pricebook`` (now ``rating.pricebook.model``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("rating.pricebook.model"), name)
