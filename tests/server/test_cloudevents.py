"""CloudEvents JSON in: mapped field by field to our event, validated and refused as JSON events are."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from rating.server.cloudevents import to_event_fields
from tests.server.conftest import bearer, event

SINGLE = {**bearer("write"), "Content-Type": "application/cloudevents+json"}
BATCH = {**bearer("write"), "Content-Type": "application/cloudevents-batch+json"}


def cloud(id: str, customer: str = "dev-1", **extra: Any) -> dict[str, Any]:
    """:func:`event` (one small-model request) as a CloudEvent: the customer as its subject."""
    ours = event(id, customer)
    return {"specversion": "1.0", "source": "/gateway/eu-1", "id": ours["id"], "type": ours["type"],
            "time": ours["timestamp"], "subject": customer, "datacontenttype": "application/json",
            "data": ours["properties"], **extra}  # fmt: skip


def test_the_map_is_field_by_field() -> None:
    fields = to_event_fields({**cloud("c1", agent="bot-1", billingsource="byok"), "traceparent": "00-ab-cd-01"})
    assert fields == {
        "id": "c1",
        "type": "llm.request",
        "timestamp": "2026-11-05T10:00:00Z",
        "billing_source": "byok",
        "customer": "dev-1",
        "properties": event("c1")["properties"],
        "attribution": {"agent": "bot-1"},
    }  # the unknown extension (traceparent) is not kept


def test_a_cloudevent_is_rated_as_the_same_json_event_would_be(client: TestClient) -> None:
    answer = client.post("/v1/events", content=json.dumps(cloud("c1")), headers=SINGLE)
    assert answer.status_code == 201
    assert (answer.json()["status"], answer.json()["totals"]) == ("accepted", {"USD": "0.00065000"})
    # The same event sent as our own JSON is the same content: a duplicate, not a conflict.
    again = client.post("/v1/events", json=event("c1"), headers=bearer("write"))
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    quoted = client.post("/v1/quote", content=json.dumps(cloud("q1", customer="dev-2")), headers=SINGLE)
    assert (quoted.status_code, quoted.json()["totals"]) == (200, {"USD": "0.00065000"})


def test_the_customer_extension_stands_for_the_subject(client: TestClient) -> None:
    body = {key: value for key, value in cloud("c2").items() if key != "subject"} | {"customer": "dev-2"}
    answer = client.post("/v1/events", content=json.dumps(body), headers=SINGLE)
    assert (answer.status_code, answer.json()["customer"]) == (201, "dev-2")


def test_a_bad_cloudevent_is_refused_with_the_json_events_codes(client: TestClient) -> None:
    def code(body: Any) -> tuple[int, str]:
        answer = client.post("/v1/events", content=json.dumps(body), headers=SINGLE)
        return answer.status_code, answer.json()["error"]["code"]

    assert code(cloud("x1", type="nope")) == (422, "unknown_event_type")
    assert code(cloud("x2", specversion="0.3")) == (422, "invalid_record")
    assert code({key: v for key, v in cloud("x3").items() if key != "source"}) == (422, "invalid_record")
    assert code({key: v for key, v in cloud("x4").items() if key != "time"}) == (422, "invalid_record")
    assert code(cloud("x5") | {"customer": "dev-2"}) == (422, "invalid_record")  # the subject dev-1 disagrees
    assert code(cloud("x6", data_base64="AAAA")) == (422, "invalid_record")
    assert code(cloud("x7", datacontenttype="text/plain")) == (422, "invalid_record")
    assert code(cloud("x8", data=[1, 2])) == (422, "invalid_record")  # properties are an object, as in JSON events
    assert code(cloud("x8", data={"model": "gpt-5-mini"})) == (422, "missing_property")
    assert code(cloud("x9", time="2031-01-01T00:00:00Z")) == (422, "future_timestamp")
    extended = client.post("/v1/events", content=json.dumps(cloud("x10", someextension=1)), headers=SINGLE)
    assert extended.status_code == 201  # an unknown extension is ignored
    conflict = client.post("/v1/events", content=json.dumps(cloud("x10", data={"input_tokens": 7})), headers=SINGLE)
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "duplicate_conflict")


def test_a_cloudevents_batch_posts_the_good_events_and_names_each_bad_one(client: TestClient) -> None:
    items = [cloud("b1"), cloud("b2", specversion="2.0"), cloud("b3", customer="dev-2"), "text"]
    answer = client.post("/v1/events/batch", content=json.dumps(items), headers=BATCH)
    assert answer.status_code == 200
    shown = answer.json()
    assert (shown["accepted"], shown["duplicate"], shown["rejected"]) == (2, 0, 2)
    assert [(r["index"], r["status"], r.get("code")) for r in shown["results"]] == [
        (0, "accepted", None),
        (1, "rejected", "invalid_record"),
        (2, "accepted", None),
        (3, "rejected", "invalid_record"),
    ]
    owed = client.get("/v1/customers/dev-2/balance", headers=bearer("read")).json()["assets"][0]["owed"]
    assert Decimal(owed) == Decimal("0.00065")
    not_array = client.post("/v1/events/batch", content=json.dumps(cloud("b4")), headers=BATCH)
    assert (not_array.status_code, not_array.json()["error"]["code"]) == (422, "invalid_request")


def test_a_datacontenttype_that_is_not_text_is_refused_not_a_server_error(client: TestClient) -> None:
    # schemathesis found it: a non-string datacontenttype crashed the reader (500) instead of being refused.
    for kind in (True, 7, ["application/json"], {"type": "json"}):
        answer = client.post("/v1/events", content=json.dumps(cloud("t1", datacontenttype=kind)), headers=SINGLE)
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_record")
    batch = client.post("/v1/events/batch", content=json.dumps([cloud("t2", datacontenttype=1)]), headers=BATCH)
    assert batch.status_code == 200
    assert [(r["status"], r["code"]) for r in batch.json()["results"]] == [("rejected", "invalid_record")]
