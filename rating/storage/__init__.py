"""Storage adapters behind one contract (:class:`~rating.storage.base.Storage`).

Adapters are provided by plugins through the ``rating_storage_adapters`` hook,
keyed by URL scheme: ``memory:``, ``sqlite:///path/to/file.db``. A plain path
means SQLite.
"""

from __future__ import annotations

from rating.storage.base import StaleState, Storage, StoredCharge

__all__ = ["StaleState", "Storage", "StoredCharge", "scheme_of"]


def scheme_of(url: str) -> str:
    """The adapter scheme of a storage URL; a plain file path is ``sqlite``."""
    if url.startswith("memory:"):
        return "memory"
    scheme, sep, _ = url.partition("://")
    return scheme.split("+")[0] if sep else "sqlite"
