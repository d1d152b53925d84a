"""The second slice's routes on PostgreSQL: CloudEvents in, the upcoming bill, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rating.registry import Registry
from rating.server import create_app
from tests.conftest import POSTGRES_URL, postgres_url
from tests.server.test_cloudevents import BATCH, cloud
from tests.server.test_documents import FEES, MID_NOVEMBER, READ, WRITE, call

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs RATING_TEST_POSTGRES_URL")


def test_cloudevents_upcoming_and_metrics_on_postgres(registry: Registry, keys: Path, tmp_path: Path) -> None:
    url = postgres_url()
    registry.open_storage(url).close()
    book = tmp_path / "fees.yaml"
    book.write_text(FEES, encoding="utf-8")
    app = create_app(url, [book], api_keys=keys, registry=registry, clock=lambda: MID_NOVEMBER)
    with TestClient(app) as client:
        events = [cloud(f"p{n}", "c1") | {"type": "api.call", "data": {}} for n in range(2)]
        answer = client.post("/v1/events/batch", content=json.dumps(events), headers=BATCH)
        assert (answer.status_code, answer.json()["accepted"]) == (200, 2)
        assert client.post("/v1/events", json=call("p2"), headers=WRITE).status_code == 201
        shown = client.get("/v1/customers/c1/upcoming", headers=READ).json()
        assert shown["usage"] == [{"meter": "requests", "asset": "USD", "quantity": "3", "amount": "1.50"}]
        assert [line["amount"] for line in shown["closing"]] == ["10.00", "13.50"]
        assert shown["totals"] == {"USD": "25.00"}
        metrics = client.get("/metrics", headers=READ).text
        assert 'rating_events_total{code="",status="accepted"} 3.0' in metrics
