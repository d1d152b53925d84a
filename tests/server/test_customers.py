"""``/v1/customers``: customers and subscriptions as data over HTTP, rated at once by this server and another."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rating.registry import Registry
from rating.server import create_app
from tests.conftest import POSTGRES_URL, postgres_url
from tests.server.conftest import bearer
from tests.test_customers import PRICEBOOK, clock

KINDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


def call(id: str, customer: str, day: str = "2026-11-05") -> dict[str, Any]:
    return {"id": id, "customer": customer, "type": "api.call", "timestamp": f"{day}T12:00:00Z", "properties": {}}


@pytest.fixture(params=KINDS)
def servers(
    request: pytest.FixtureRequest, tmp_path: Path, keys: Path, registry: Registry
) -> Iterator[Callable[[], TestClient]]:
    """Opens another server (its own connections: another process's worth) over one ledger on each call."""
    url = postgres_url() if request.param == "postgres" else f"sqlite:///{tmp_path / 'ledger.db'}"
    registry.open_storage(url).close()  # rating db migrate
    book = tmp_path / "book.yaml"
    book.write_text(PRICEBOOK)
    with ExitStack() as stack:

        def open_one() -> TestClient:
            app = create_app(url, [book], api_keys=keys, registry=registry, clock=clock, future_tolerance=None)
            return stack.enter_context(TestClient(app))

        yield open_one


def charged(client: TestClient, event: dict[str, Any]) -> Decimal:
    answer = client.post("/v1/events", json=event, headers=bearer("write"))
    assert answer.status_code == 201, answer.text
    return sum((Decimal(c["amount"]) for c in answer.json()["charges"]), Decimal(0))


def test_a_customer_added_over_http_is_rated_by_its_plan_at_once_here_and_by_another_server(
    servers: Callable[[], TestClient],
) -> None:
    one, two = servers(), servers()
    assert charged(two, call("e0", "acme")) == Decimal("0.01")  # the other server has built its engine
    added = one.post("/v1/customers", json={"id": "globex", "plan": "pro"}, headers=bearer("admin"))
    assert added.status_code == 201, added.text
    assert added.json() == {
        "id": "globex",
        "source": "database",
        "version": 1,
        "effective": "2026-11-20T00:00:00+00:00",
        "spec": {"plan": "pro"},
    }
    assert charged(one, call("e1", "globex")) == Decimal("0.50")
    assert charged(two, call("e2", "globex")) == Decimal("0.50")  # noticed at its next request
    again = one.post("/v1/customers", json={"id": "globex", "plan": "pro"}, headers=bearer("admin"))
    assert again.status_code == 200 and again.json()["version"] == 1  # the same spec: no new version


def test_a_subscription_over_http_changes_the_plan_from_its_date_and_refuses_rated_time(
    servers: Callable[[], TestClient],
) -> None:
    client = servers()
    assert charged(client, call("e1", "acme", "2026-11-10")) == Decimal("0.01")
    late = client.post(
        "/v1/customers/acme/subscriptions", json={"plan": "pro", "from": "2026-11-10"}, headers=bearer("admin")
    )
    assert late.status_code == 422 and late.json()["error"]["code"] == "before_rated_usage"
    moved = client.post(
        "/v1/customers/acme/subscriptions", json={"plan": "pro", "from": "2026-11-15"}, headers=bearer("admin")
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["spec"] == {"plan": "basic", "changes": [{"plan": "pro", "on": "2026-11-15"}]}
    assert charged(client, call("e2", "acme", "2026-11-14")) == Decimal("0.01")
    assert charged(client, call("e3", "acme", "2026-11-15")) == Decimal("0.50")
    shown = client.get("/v1/customers/acme", headers=bearer("admin")).json()
    assert shown["source"] == "database" and [v["version"] for v in shown["versions"]] == [1]


def test_reads_writes_scopes_and_refusals(servers: Callable[[], TestClient]) -> None:
    client = servers()
    body = {"id": "globex", "plan": "pro", "spend_cap": "25.00", "billing": "wallet"}
    assert client.post("/v1/customers", json=body, headers=bearer("write")).status_code == 403
    assert client.post("/v1/customers", json=body, headers=bearer("admin")).status_code == 201
    # Customers are admin data, read as well as written: a read key sees usage and balances, not customers.
    assert client.get("/v1/customers", headers=bearer("read")).status_code == 403
    assert client.get("/v1/customers/globex", headers=bearer("read")).status_code == 403
    listed = client.get("/v1/customers", headers=bearer("admin")).json()["customers"]
    assert [(c["id"], c["source"], c["spec"]["plan"]) for c in listed] == [
        ("acme", "pricebook", "basic"),
        ("globex", "database", "pro"),
    ]
    assert listed[1]["spec"]["spend_cap"] == "25.00"  # money as a decimal string
    assert client.get("/v1/customers/acme", headers=bearer("admin")).json()["versions"] == []
    missing = client.get("/v1/customers/nobody", headers=bearer("admin"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_customer"
    unknown = client.post(
        "/v1/customers/nobody/subscriptions", json={"plan": "pro", "from": "2026-12-01"}, headers=bearer("admin")
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_customer"
    invalid = client.post("/v1/customers", json={"id": "initech", "plan": "gold"}, headers=bearer("admin"))
    assert invalid.status_code == 422
    assert invalid.json()["error"] == {
        "code": "invalid_customer",
        "message": "invalid_customer: customers.initech.plan: unknown plan 'gold'; plans: basic, pro",
    }
    no_id = client.post("/v1/customers", json={"plan": "pro"}, headers=bearer("admin"))
    assert no_id.status_code == 422 and no_id.json()["error"]["code"] == "invalid_request"
