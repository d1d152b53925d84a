"""``Idempotency-Key`` on every POST: the first answer replayed, another request under the key refused."""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from rating.records import IdempotentRequest
from rating.registry import Registry
from rating.server import create_app
from rating.server.idempotency import STALE_AFTER, fingerprint
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import EXAMPLE, later
from tests.server.conftest import KEYS, bearer, event


def keyed(scope: str, key: str) -> dict[str, str]:
    return {**bearer(scope), "Idempotency-Key": key}


def owed(client: TestClient, customer: str = "dev-1") -> Decimal:
    assets = client.get(f"/v1/customers/{customer}/balance", headers=bearer("read")).json()["assets"]
    return sum((Decimal(asset["owed"]) for asset in assets), Decimal(0))


def test_a_retry_gets_the_first_answer_without_running_again(client: TestClient) -> None:
    first = client.post("/v1/events", json=event("i-1"), headers=keyed("write", "k-1"))
    assert first.status_code == 201 and first.json()["status"] == "accepted"
    assert "idempotent-replayed" not in first.headers
    again = client.post("/v1/events", json=event("i-1"), headers=keyed("write", "k-1"))
    # The first answer (201, accepted), not what running again would say (200, duplicate).
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    # Without the key, the same event runs again and is a duplicate: the ledger holds it once.
    plain = client.post("/v1/events", json=event("i-1"), headers=bearer("write"))
    assert (plain.status_code, plain.json()["status"]) == (200, "duplicate")
    assert owed(client) == Decimal(first.json()["totals"]["USD"])


def test_the_same_key_with_another_request_is_422_and_runs_nothing(client: TestClient) -> None:
    assert client.post("/v1/events", json=event("i-1"), headers=keyed("write", "k-1")).status_code == 201
    for path, body in (("/v1/events", event("i-2")), ("/v1/quote", event("i-1"))):
        refused = client.post(path, json=body, headers=keyed("write", "k-1"))
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "idempotency_conflict")
    batch = client.post("/v1/events/batch", json=[event("i-2")], headers=bearer("write"))
    assert batch.json()["results"][0]["status"] == "accepted"  # i-2 was never posted under k-1


def test_keys_are_scoped_per_api_key_and_refusals_before_the_route_are_not_kept(client: TestClient) -> None:
    assert client.post("/v1/events", json=event("i-1"), headers=keyed("write", "shared")).status_code == 201
    # The admin key's "shared" is its own: its request runs (a duplicate by now), not the write key's replay.
    other = client.post("/v1/events", json=event("i-1"), headers=keyed("admin", "shared"))
    assert (other.status_code, other.json()["status"]) == (200, "duplicate")
    # A request refused by its scope claims nothing: the same key works once the right key is sent.
    assert client.post("/v1/events", json=event("i-9"), headers=keyed("read", "k-9")).status_code == 403
    again = client.post("/v1/events", json=event("i-9"), headers=keyed("read", "k-9"))
    assert again.status_code == 403 and "idempotent-replayed" not in again.headers
    bad = client.post("/v1/events", json=event("i-3"), headers=keyed("write", "no spaces please"))
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")


def test_a_refusal_answered_by_the_route_is_kept_too(client: TestClient) -> None:
    wrong = event("i-4", timestamp="2099-01-01T00:00:00Z")  # refused: stamped in the future
    first = client.post("/v1/events", json=wrong, headers=keyed("write", "k-4"))
    assert first.status_code == 422
    again = client.post("/v1/events", json=wrong, headers=keyed("write", "k-4"))
    assert (again.status_code, again.content, again.headers["idempotent-replayed"]) == (422, first.content, "true")


def test_every_post_route_replays_a_grant_and_a_customer_included(client: TestClient) -> None:
    grant = {"id": "welcome", "asset": "USD", "amount": "5.00"}
    first = client.post("/v1/customers/dev-1/grants", json=grant, headers=keyed("admin", "g-1"))
    again = client.post("/v1/customers/dev-1/grants", json=grant, headers=keyed("admin", "g-1"))
    assert first.status_code == again.status_code == 201 and again.json()["status"] == "granted"
    quoted = [client.post("/v1/quote", json=event("q-1"), headers=keyed("write", "q-1")) for _ in range(2)]
    assert quoted[0].content == quoted[1].content and quoted[1].headers["idempotent-replayed"] == "true"


def test_a_retry_while_the_first_runs_is_409_and_a_stale_claim_is_taken_over(
    client: TestClient, db: str, registry: Registry
) -> None:
    owner = hashlib.sha256(KEYS["write"].encode()).hexdigest()
    body = client.build_request("POST", "/v1/events", json=event("i-5")).content
    scope = {"type": "http", "method": "POST", "path": "/v1/events", "query_string": b"", "headers": []}
    printed = fingerprint(Request(scope), body)
    now = dt.datetime.now(dt.UTC)
    with registry.open_storage(db) as storage:  # another process's claim, still running
        assert storage.claim_idempotent(IdempotentRequest(owner, "k-5", printed, now), now) is None
        assert storage.claim_idempotent(IdempotentRequest(owner, "k-6", printed, now - 2 * STALE_AFTER), now) is None
    busy = client.post("/v1/events", content=body, headers=keyed("write", "k-5"))
    assert (busy.status_code, busy.json()["error"]["code"]) == (409, "idempotency_in_progress")
    taken = client.post("/v1/events", content=body, headers=keyed("write", "k-6"))  # its process is gone
    assert taken.status_code == 201, taken.text


@pytest.mark.parametrize("kind", ["sqlite"] + (["postgres"] if POSTGRES_URL else []))
def test_a_retry_reaching_another_app_on_the_same_database_is_replayed(
    kind: str, db: str, keys: Path, registry: Registry
) -> None:
    url = db if kind == "sqlite" else postgres_url()
    registry.open_storage(url).close()
    apps = [create_app(url, [EXAMPLE], api_keys=keys, registry=registry, clock=later) for _ in range(2)]
    batch = [event("b-1"), event("b-2")]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        first = one.post("/v1/events/batch", json=batch, headers=keyed("write", "batch-1"))
        assert first.status_code == 200 and first.json()["accepted"] == 2
        again = two.post("/v1/events/batch", json=batch, headers=keyed("write", "batch-1"))
        assert (again.content, again.headers["idempotent-replayed"]) == (first.content, "true")
        assert again.json()["accepted"] == 2  # the first answer; running again would say 2 duplicates
        # Both at once under a new key: one runs; the other waits its turn (409) or gets its answer.
        racing = [event(f"c-{n}") for n in range(20)]
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda c: c.post("/v1/events/batch", json=racing, headers=keyed("write", "race")), (one, two))
            )
        ran = [a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers]
        assert len(ran) == 1 and ran[0].json()["accepted"] == 20
        for answer in answers:
            assert answer.status_code == 409 or answer.content == ran[0].content
        assert owed(two) == 22 * Decimal("0.00065")  # every event once: 2 in the first batch, 20 in the race


def test_a_failed_request_drops_its_claim_so_that_the_retry_runs(
    db: str, keys: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rating.engine import Engine

    rate = Engine.rate

    def fails(self: Engine, *args: object, **kwargs: object) -> object:
        raise RuntimeError("the process failed mid-request")

    app = create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later)
    with TestClient(app, raise_server_exceptions=False) as client:
        monkeypatch.setattr(Engine, "rate", fails)
        broken = client.post("/v1/events", json=event("f-1"), headers=keyed("write", "f-1"))
        assert (broken.status_code, broken.json()["error"]["code"]) == (500, "internal")
        monkeypatch.setattr(Engine, "rate", rate)
        retried = client.post("/v1/events", json=event("f-1"), headers=keyed("write", "f-1"))
        assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
