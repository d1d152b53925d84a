"""Two apps (two processes' worth of connections) writing to one PostgreSQL ledger at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from rating.registry import Registry
from rating.server import create_app
from tests.conftest import POSTGRES_URL, postgres_url
from tests.helpers import EXAMPLE, later
from tests.server.conftest import event

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs RATING_TEST_POSTGRES_URL")

CUSTOMERS = ("dev-a", "dev-b", "dev-c")


def post_all(client: TestClient, server: int) -> int:
    """Post this server's events (ids of its own, customers shared with the other): single events and batches."""
    posted = 0
    for round in range(6):
        mine = [event(f"s{server}-r{round}-{c}", customer) for c, customer in enumerate(CUSTOMERS)]
        answer = client.post("/v1/events", json=mine[0])
        assert answer.status_code == 201, answer.text
        batch = client.post("/v1/events/batch", json=mine[1:]).json()
        assert batch["accepted"] == 2, batch
        posted += 3
    return posted


def test_two_servers_on_one_postgres_ledger_post_disjoint_events_and_the_balances_are_exact(registry: Registry) -> None:
    url = postgres_url()
    registry.open_storage(url).close()  # rating db migrate, once
    apps = [create_app(url, [EXAMPLE], registry=registry, clock=later) for _ in range(2)]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two, ThreadPoolExecutor(2) as pool:
        posted = sum(pool.map(post_all, (one, two), (1, 2)))
        assert posted == 36
        for customer in CUSTOMERS:  # 12 events each (6 rounds, 2 servers) of 0.00065
            for client in (one, two):
                [usd] = client.get(f"/v1/customers/{customer}/balance").json()["assets"]
                assert Decimal(usd["owed"]) == 12 * Decimal("0.00065")
        replay = two.post("/v1/events", json=event("s1-r0-0", "dev-a"))  # posted by the other server
        assert replay.json()["status"] == "duplicate"
    with registry.open_storage(url, read_only=True) as storage:
        assert storage.verify() == []
