"""``POST /v1/customers/{id}/grants``: a grant as ``rating wallet grant`` gives it, once per grant id, admin only."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from tests.server.conftest import bearer

GRANT = {"id": "welcome", "asset": "USD", "amount": "5.00", "expires": "2029-01-01T00:00:00Z"}


def test_a_grant_is_given_once_shows_in_the_balance_and_needs_admin(client: TestClient) -> None:
    route = "/v1/customers/dev-1/grants"
    assert client.post(route, json=GRANT, headers=bearer("write")).status_code == 403
    given = client.post(route, json=GRANT, headers=bearer("admin"))
    assert given.status_code == 201, given.text
    assert given.json() == {
        "grant": "welcome",
        "customer": "dev-1",
        "asset": "USD",
        "amount": "5.00",
        "status": "granted",
    }
    again = client.post(route, json=GRANT, headers=bearer("admin"))
    assert (again.status_code, again.json()["status"]) == (200, "already_granted")
    balance = client.get("/v1/customers/dev-1/balance", headers=bearer("read")).json()
    [grant] = balance["grants"]
    assert grant["id"] == "welcome" and Decimal(grant["remaining"]) == Decimal("5.00")
    other = client.post(route, json={**GRANT, "amount": "7.00"}, headers=bearer("admin"))
    assert (other.status_code, other.json()["error"]["code"]) == (409, "grant_conflict")


def test_a_grant_refuses_numbers_for_money_and_bad_fields(client: TestClient) -> None:
    route = "/v1/customers/dev-1/grants"
    cases = [
        ({**GRANT, "amount": 5.0}, "invalid_amount"),  # a JSON number: a float to many clients, never money
        ({**GRANT, "amount": "-1"}, "invalid_amount"),
        ({**GRANT, "amount": "1e999999"}, "invalid_amount"),
        ({**GRANT, "kind": "gift"}, "invalid_request"),
        ({**GRANT, "expires": "2029-01-01"}, "invalid_request"),  # no offset
        ({**GRANT, "colour": "red"}, "invalid_request"),
        ({"asset": "USD", "amount": "5"}, "invalid_request"),
    ]
    for body, code in cases:
        answer = client.post(route, json=body, headers=bearer("admin"))
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == code, body
    assert client.get("/v1/customers/dev-1/balance", headers=bearer("read")).json()["grants"] == []
