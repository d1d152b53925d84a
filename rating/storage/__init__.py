"""Storage adapters behind one contract (:class:`~rating.storage.base.Storage`).

Adapters are provided by plugins through the ``rating_storage_adapters`` hook,
keyed by URL scheme: ``memory:``, ``sqlite:///path/to/file.db``. A plain path
means SQLite.
"""

from __future__ import annotations

import re

from rating.storage.base import ScopeConflict, StaleState, Storage, StoredCharge

__all__ = ["ScopeConflict", "StaleState", "Storage", "StoredCharge", "masked", "scheme_of"]

#: The password of ``scheme://user:password@host`` (also as a path collapses it, ``scheme:/user:password@host``)
#: and of ``password=...`` (a URL's query or a libpq DSN).
_PASSWORDS = re.compile(
    r"(?P<keep>:/{1,2}[^/@:\s]*:)[^/\s]*(?=@)|(?P<key>password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE
)


def scheme_of(url: str) -> str:
    """The adapter scheme of a storage URL; a plain file path is ``sqlite``."""
    if url.startswith("memory:"):
        return "memory"
    scheme, sep, _ = url.partition("://")
    return scheme.split("+")[0] if sep else "sqlite"


def masked(text: str) -> str:
    """``text`` (a storage URL, or a message naming one) with every password in it shown as ``***``."""
    return _PASSWORDS.sub(lambda m: (m.group("keep") or m.group("key")) + "***", text)
