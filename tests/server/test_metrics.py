"""``GET /metrics`` (Prometheus text) and ``GET /openapi.json`` (OpenAPI 3.1, every route)."""

from __future__ import annotations

import json

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import bearer, event

WRITE, READ = bearer("write"), bearer("read")


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exposition's samples by name and labels, parsed by prometheus-client's own parser."""
    answer = client.get("/metrics", headers=READ)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_and_events_by_outcome_and_code(client: TestClient) -> None:
    client.post("/v1/events", json=event("m1"), headers=WRITE)
    client.post("/v1/events", json=event("m1"), headers=WRITE)  # a duplicate
    client.post("/v1/events", json=event("m2", type="nope"), headers=WRITE)  # unknown_event_type
    batch = [event("m3"), {"id": "m4"}, event("m1"), event("m5", type="nope")]
    client.post("/v1/events/batch", json=batch, headers=WRITE)
    client.get("/v1/customers/dev-1/balance", headers=READ)
    client.get("/v1/customers/dev-2/balance", headers=READ)
    client.get("/v1/customers/dev-1/balance")  # 401
    client.get("/no/such/route", headers=READ)
    found = samples(client)

    def requests(method: str, route: str, status: str) -> float:
        return found[("rating_http_requests_total", (("method", method), ("route", route), ("status", status)))]

    assert requests("POST", "/v1/events", "201") == 1
    assert requests("POST", "/v1/events", "200") == 1
    assert requests("POST", "/v1/events", "422") == 1
    assert requests("POST", "/v1/events/batch", "200") == 1
    assert requests("GET", "/v1/customers/{customer}/balance", "200") == 2  # by template, not by customer
    assert requests("GET", "/v1/customers/{customer}/balance", "401") == 1
    assert requests("GET", "unmatched", "404") == 1

    def events(status: str, code: str = "") -> float:
        return found.get(("rating_events_total", (("code", code), ("status", status))), 0)

    assert (events("accepted"), events("duplicate")) == (2, 2)
    assert events("rejected", "unknown_event_type") == 2
    assert events("rejected", "invalid_record") == 1
    latency = ("rating_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/events")))
    assert found[latency] == 3
    assert client.get("/metrics").status_code == 401  # a read key is needed, as for every route but health


def test_two_apps_count_apart(client: TestClient, db: str, keys, registry) -> None:  # type: ignore[no-untyped-def]
    from rating.server import create_app
    from tests.helpers import EXAMPLE, later

    client.post("/v1/events", json=event("a1"), headers=WRITE)
    with TestClient(create_app(db, [EXAMPLE], api_keys=keys, registry=registry, clock=later)) as other:
        assert ("rating_events_total", (("code", ""), ("status", "accepted"))) not in samples(other)


def test_openapi_is_a_valid_3_1_document_naming_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1.")
    validate(json.loads(json.dumps(spec)))  # raises when the document breaks the OpenAPI 3.1 schema
    routes = {(route.path, method.lower()) for route in client.app.routes if isinstance(route, APIRoute)  # type: ignore[attr-defined]
              for method in route.methods}  # fmt: skip
    published = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert routes <= published
    for path in ("/v1/events", "/v1/credit-notes/{number}", "/v1/customers/{customer}/upcoming", "/metrics"):
        assert path in spec["paths"]
    # The routes that read their own body declare it, in each media type they take, with schemas that resolve.
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/cloudevents+json"}
    batch = spec["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"]
    assert set(batch) == {"application/json", "application/x-ndjson", "application/cloudevents-batch+json"}
    schemas = spec["components"]["schemas"]
    assert schemas["UsageEvent"]["required"] == ["id", "customer", "type", "timestamp"]
    assert {"CloudEvent", "Attribution", "PaymentConfirmation"} <= set(schemas)
    example = body["application/json"]["example"]
    assert client.post("/v1/quote", json=example, headers=WRITE).json()["totals"] == {"USD": "0.1575000"}


def test_the_outbox_depth_per_endpoint_is_what_is_not_delivered_to_it_yet(client: TestClient, db: str) -> None:
    from rating.outbox import INVOICE_ISSUED, INVOICE_PAID, message
    from rating.registry import Registry
    from rating.webhooks import add_endpoint, deliver, new_secret

    def depth() -> dict[str, float]:
        return {dict(labels)["endpoint"]: v for (name, labels), v in samples(client).items()
                if name == "rating_webhook_outbox_depth"}  # fmt: skip

    assert depth() == {}  # no endpoint: no series
    with Registry.load().open_storage(db) as storage:  # the CLI or another server writes and delivers
        every = add_endpoint(storage, "http://127.0.0.1:9/all", [new_secret()])
        paid = add_endpoint(storage, "http://127.0.0.1:9/paid", [new_secret()], [INVOICE_PAID])
        storage.announce([message(INVOICE_ISSUED, f"INV-{n}", {"n": n}) for n in range(3)])
        storage.announce([message(INVOICE_PAID, "INV-0", {"n": 0})])
    assert depth() == {every.id: 4, paid.id: 1}
    with Registry.load().open_storage(db) as storage:
        sent = deliver(storage, send=lambda url, *_: 200 if url.endswith("/paid") else 500)
        assert len(sent.delivered) == 1 and len(sent.failed) == 4
    assert depth() == {every.id: 4, paid.id: 0}  # failed and waiting to be retried: not delivered yet
    assert 'rating_webhook_outbox_depth{endpoint="' + every.id + '"} 4.0' in client.get("/metrics", headers=READ).text
