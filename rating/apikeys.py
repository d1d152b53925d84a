"""API keys kept in the ledger's database: created with a scope, stored only as their SHA-256, revocable.

``rating apikey create`` makes a key (:meth:`ApiKeys.create`), prints it once and stores its hash;
``rating serve`` checks the key of every request against the database (:meth:`ApiKeys.find`), so a key
created or revoked by any process is seen by every server at its next request. Scopes: ``read`` (usage,
balances, invoices, statements), ``write`` (events, quotes, metered requests, payments) and ``admin``
(customers, subscriptions, grants, keys and webhook endpoints, and every other scope).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable

from rating.errors import RatingError
from rating.records import ApiKeyRecord
from rating.storage.base import Storage

#: The scopes a key may hold; ``admin`` grants every other.
SCOPES = ("read", "write", "admin")
#: What a key's name may be: it is shown in lists and logs, and named to revoke the key.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class ApiKeyError(RatingError):
    """An API key was not created or revoked: a bad name or scope, a name taken, no key of that name."""


def digest(key: str) -> str:
    """The SHA-256 of ``key`` as stored: hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random key and its SHA-256 (hex)."""
    key = "rk_" + secrets.token_urlsafe(32)
    return key, digest(key)


def allows(scopes: Iterable[str], scope: str) -> bool:
    """Whether a key holding ``scopes`` may use a route that needs ``scope``."""
    held = set(scopes)
    return scope in held or "admin" in held


class ApiKeys:
    """The API keys of one ledger."""

    def __init__(self, storage: Storage, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.storage = storage
        self.clock = clock

    def create(self, scopes: Iterable[str], name: str | None = None) -> tuple[str, ApiKeyRecord]:
        """A new key holding ``scopes``, stored as its hash: the key (shown once, never stored) and its record."""
        held = tuple(dict.fromkeys(scopes))
        if not held or any(scope not in SCOPES for scope in held):
            raise ApiKeyError(f"scopes must be some of {', '.join(SCOPES)}, got {', '.join(held) or 'none'}")
        key, hexed = new_key()
        name = name if name is not None else f"{held[0]}-{hexed[:8]}"
        if not _NAME.fullmatch(name):
            raise ApiKeyError(
                f"key name {name!r}: 1 to 64 letters, digits, '_', '.', ':' or '-', first a letter or digit"
            )
        record = ApiKeyRecord(name, hexed, held, self.clock())
        if not self.storage.add_api_key(record):
            raise ApiKeyError(f"an API key named {name!r} already exists (revoked keys keep their names)")
        return key, record

    def list(self) -> list[ApiKeyRecord]:
        """Every key (hashes and scopes, never a key), revoked ones included, by name."""
        return self.storage.api_keys()

    def revoke(self, name: str) -> ApiKeyRecord:
        """Revoke the key ``name`` from now on (again: nothing changes); every server refuses it at once."""
        revoked = self.storage.revoke_api_key(name, self.clock())
        if revoked is None:
            raise ApiKeyError(f"no API key named {name!r}")
        return revoked

    def find(self, presented: str) -> ApiKeyRecord | None:
        """The valid (not revoked) key ``presented`` is, or None. Found by its hash: the lookup's time depends
        on the hash, which an attacker cannot steer toward a stored one."""
        found = self.storage.api_key(digest(presented))
        return found if found is not None and found.revoked_at is None else None
