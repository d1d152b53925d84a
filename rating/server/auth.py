"""API keys with scopes: a JSON file of key hashes, checked in constant time.

The file holds only the SHA-256 of each key (hex), never a key::

    {"keys": [{"name": "billing-backend", "sha256": "9f86d0...", "scopes": ["write"]},
              {"name": "dashboard", "sha256": "60303a...", "scopes": ["read"]}]}

Make a key and its hash with :func:`new_key` (README "Service" has the one-line command; keep
the key, put the hash in the file). Keys kept in the database instead (``rating apikey create``,
revocable) are :mod:`rating.apikeys`; the scopes are the same (:data:`rating.apikeys.SCOPES`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from rating.apikeys import SCOPES, allows, new_key
from rating.errors import RatingError

__all__ = ["SCOPES", "ApiKey", "KeyFileError", "digest", "find_key", "load_keys", "new_key"]
_HEX = frozenset("0123456789abcdef")


class KeyFileError(RatingError):
    """The API key file cannot be read or is not as documented."""


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its name (for logs), the SHA-256 of the key, and its scopes."""

    name: str
    sha256: bytes
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether this key may use a route that needs ``scope``."""
        return allows(self.scopes, scope)


def digest(key: str) -> bytes:
    """The SHA-256 of ``key`` as stored (raw bytes; the file holds its hex)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def load_keys(path: str | Path) -> list[ApiKey]:
    """The keys of the file at ``path``; :class:`KeyFileError` names the first problem."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise KeyFileError(f"{path}: cannot read the API key file: {error}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f'{path}: expected {{"keys": [{{"name", "sha256", "scopes"}}, ...]}} with at least one key')
    keys = []
    for number, entry in enumerate(entries, 1):
        where = f"{path}: key {number}"
        if not isinstance(entry, dict) or set(entry) - {"name", "sha256", "scopes"}:
            raise KeyFileError(f"{where}: expected an object with name, sha256 and scopes")
        hexed, scopes = entry.get("sha256"), entry.get("scopes")
        if not isinstance(hexed, str) or len(hexed) != 64 or not set(hexed) <= _HEX:
            raise KeyFileError(f"{where}: sha256 must be 64 lowercase hex digits (the hash of the key, not the key)")
        if not isinstance(scopes, list) or not scopes or not all(s in SCOPES for s in scopes):
            raise KeyFileError(f"{where}: scopes must be a non-empty list of {', '.join(SCOPES)}")
        keys.append(ApiKey(str(entry.get("name", f"key {number}")), bytes.fromhex(hexed), frozenset(scopes)))
    return keys


def find_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    """The configured key matching ``presented``, compared in constant time against every key."""
    given = digest(presented)
    found = None
    for key in keys:  # no early exit: the time taken does not tell which key matched
        if hmac.compare_digest(key.sha256, given):
            found = key
    return found
