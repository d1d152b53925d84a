"""``rating verify`` over the service's tables: API keys stored hashed with known scopes, idempotent requests as the
server keeps them, outbox messages of known types and delivery lines that name what they deliver; each problem named
by its code (:class:`rating.refusals.VerifyRefusal`)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from rating.apikeys import SCOPES, ApiKeys
from rating.outbox import INVOICE_PAID, message
from rating.records import DeliveryRecord, IdempotentRequest
from rating.refusals import VerifyRefusal
from rating.storage.sqlite import SQLiteStorage
from rating.storage.verify import SCOPES as VERIFIED_SCOPES
from rating.webhooks import add_endpoint, new_secret

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def served(path: Path) -> str:
    """A ledger as a server leaves it: a key, an answered idempotent request, an endpoint, a message delivered."""
    with SQLiteStorage(path) as storage:
        ApiKeys(storage).create(["write"], name="backend")
        request = IdempotentRequest("a" * 64, "k-1", "b" * 64, AT)
        assert storage.claim_idempotent(request, AT) is None
        storage.answer_idempotent(request._replace(status=201, media_type="application/json", body="{}"))
        endpoint = add_endpoint(storage, "https://example.test/hooks", [new_secret()])
        storage.announce([message(INVOICE_PAID, "INV-1", {"number": "INV-1"}, AT)])
        storage.log_deliveries(
            [DeliveryRecord("invoice.paid:INV-1", endpoint.id, "delivered", 1, AT, None, "200", "w")]
        )
    return endpoint.id


def test_the_scopes_verify_knows_are_those_of_api_keys() -> None:
    assert frozenset(SCOPES) == VERIFIED_SCOPES


def test_a_served_ledger_verifies_and_each_damaged_service_row_is_named_by_its_code(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    endpoint = served(path)
    with SQLiteStorage(path) as storage:
        assert storage.verify() == []
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(
            "INSERT INTO api_keys VALUES ('leaked', 'rk_live_secret_in_clear', 'read', ?, NULL)", (AT.isoformat(),)
        )
        raw.execute("UPDATE api_keys SET scopes = 'read,root' WHERE name = 'backend'")
        raw.execute("INSERT INTO idempotent_requests VALUES ('owner', 'a key', 'xyz', 'yesterday', 999, NULL, NULL)")
        raw.execute("INSERT INTO outbox (id, type, payload, created) VALUES ('odd:1', 'odd.type', 'not json', ?)",
                    (AT.isoformat(),))  # fmt: skip
        raw.execute(
            "INSERT INTO deliveries (message, endpoint, state, attempt, at, until, detail, worker)"
            " VALUES ('invoice.paid:INV-1', 'ep_gone', 'delivered', 1, ?, NULL, '', 'w'),"
            " ('nothing:1', ?, 'lost', 1, ?, NULL, '', 'w'), ('nothing:1', ?, 'failed', 2, ?, NULL, '', 'w')",
            (AT.isoformat(), endpoint, AT.isoformat(), endpoint, AT.isoformat()),
        )
    raw.close()
    with SQLiteStorage(path) as storage:
        problems = storage.verify()
    codes = sorted(line.split(":")[0] for line in problems)
    assert codes == sorted(
        [VerifyRefusal.API_KEY_NOT_HASHED, VerifyRefusal.API_KEY_MALFORMED]
        + [VerifyRefusal.IDEMPOTENCY_MALFORMED] * 6  # its key, owner, fingerprint, start, status, and no body
        + [VerifyRefusal.OUTBOX_MALFORMED] * 3  # the unknown type, its payload, the delivery state 'lost'
        + [VerifyRefusal.DELIVERY_UNREFERENCED] * 2
    ), problems
    assert not any("rk_live_secret_in_clear" in line for line in problems)  # a key in clear is never printed
    assert "API key 'leaked' is not stored as its SHA-256" in "\n".join(problems)
    assert any(line.endswith("'invoice.paid:INV-1' to 'ep_gone' names no stored endpoint") for line in problems)
    assert any(f"2 delivery lines of 'nothing:1' to '{endpoint}' name no stored message" in line for line in problems)
