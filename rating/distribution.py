"""The name this project is published under on the package index, and the install hints that use it.

The import package and the command are ``rating``; the distribution is ``rating-engine``. The name
``rating`` on the public package index belongs to an unrelated project ("Ratings made easy") that also
installs an import package ``rating``: an extra asked for under the name ``rating`` installs that project,
not this one, so every hint that tells a user to install an extra is built here, by :func:`install_hint`.
"""

from __future__ import annotations

import importlib.metadata

#: The distribution name on the package index (``pip install rating-engine``).
DISTRIBUTION = "rating-engine"


def install_hint(extra: str) -> str:
    """How to install ``extra``, from the package index and from a checkout, e.g. for ``invoices``:
    ``pip install 'rating-engine[invoices]' (from a checkout: pip install -e '.[invoices]')``."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e '.[{extra}]')"


def version() -> str:
    """The installed version of :data:`DISTRIBUTION` (its metadata); ``unknown`` when it is not installed
    (the package imported from a source tree that was never installed)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
