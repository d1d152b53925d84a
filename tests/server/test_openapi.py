"""The published OpenAPI document declares what each route answers: its successes and its errors, in one shape."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.server.conftest import bearer, event

WRITE = bearer("write")


def test_openapi_documents_every_answer_of_the_routes_in_one_error_shape(client: TestClient) -> None:
    # schemathesis found answers the document did not declare (201 of POST /v1/customers, every 401/403/404/409/
    # 413, the errors' shape documented as FastAPI's own validation error): each route now declares them.
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/v1/customers"]["post"]["responses"]) >= {"200", "201", "401", "403", "409", "422"}
    assert set(paths["/v1/events"]["post"]["responses"]) >= {"200", "201", "401", "403", "409", "413", "422", "503"}
    assert "401" not in paths["/healthz"]["get"]["responses"]
    for item in paths.values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    money = spec["components"]["schemas"]["Charge"]["properties"]["amount"]
    assert re.fullmatch(money["pattern"], "0.00000025") and not re.fullmatch(money["pattern"], "2.5E-7")
    shown = client.post("/v1/events", json=event("doc-1"), headers=WRITE)
    assert str(shown.status_code) in paths["/v1/events"]["post"]["responses"]
    unauthenticated = client.post("/v1/customers", json={"id": "x"})
    assert (unauthenticated.status_code, set(unauthenticated.json())) == (401, {"error"})


def test_a_statement_with_tiny_amounts_matches_its_published_schema(client: TestClient) -> None:
    # The documents' amounts are declared plain decimal strings too: "1.5E-7" would not match the schema.
    from jsonschema import Draft202012Validator

    spec = client.get("/openapi.json").json()
    client.post("/v1/events", json=event("tiny", "dev-2", input_tokens=1, output_tokens=1), headers=WRITE)
    answer = client.get("/v1/customers/dev-2/statement?period=2026-11", headers=bearer("read")).json()
    validator = Draft202012Validator({"$ref": "#/components/schemas/Statement", "components": spec["components"]})
    validator.validate(answer)
    assert not validator.is_valid({**answer, "usage": [{**answer["usage"][0], "amount": "1.5E-7"}]})


def test_replacing_an_unknown_webhook_endpoint_is_a_documented_404(client: TestClient) -> None:
    # schemathesis found it: POST /v1/webhook-endpoints with an id that is not an endpoint's answers 404, undeclared.
    answer = client.post(
        "/v1/webhook-endpoints", json={"url": "https://example.com/h", "id": "nope"}, headers=bearer("admin")
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_endpoint")
    spec = client.get("/openapi.json").json()
    assert "404" in spec["paths"]["/v1/webhook-endpoints"]["post"]["responses"]
