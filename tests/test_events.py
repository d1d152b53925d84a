import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from rating.errors import EventError
from rating.events import UsageEvent, from_objects, parse_event, read_events

GOOD = (
    '{"id": "e1", "customer": "acme", "type": "llm.request", "timestamp": "2026-11-02T10:00:00Z",'
    ' "properties": {"input_tokens": 1200, "cost": 0.1}}'
)


def test_event_needs_a_timezone() -> None:
    with pytest.raises(EventError, match="timestamp"):
        parse_event({"id": "e", "customer": "c", "type": "t", "timestamp": "2026-11-02T10:00:00"})


def test_float_properties_become_the_decimal_of_their_text() -> None:
    event = UsageEvent(
        id="e",
        customer="c",
        type="t",
        timestamp=dt.datetime.now(dt.UTC),
        properties={"cpu_ms": 1.1, "nested": {"x": [0.2]}},
    )
    assert event.properties["cpu_ms"] == Decimal("1.1")
    assert event.properties["nested"] == {"x": [Decimal("0.2")]}


def test_attribution_and_billing_source() -> None:
    event = parse_event(
        {
            "id": "e",
            "customer": "c",
            "type": "t",
            "timestamp": "2026-11-02T10:00:00+01:00",
            "attribution": {"agent": "agt_1"},
            "billing_source": "byok",
        }
    )
    assert event.dimension("agent") == "agt_1"
    assert event.billing_source == "byok"
    with pytest.raises(EventError, match="billing_source"):
        parse_event(
            {"id": "e", "customer": "c", "type": "t", "timestamp": "2026-11-02T10:00:00Z", "billing_source": "x"}
        )


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(EventError, match="colour: Extra inputs"):
        parse_event({"id": "e", "customer": "c", "type": "t", "timestamp": "2026-11-02T10:00:00Z", "colour": "red"})


def test_jsonl_reader_reports_bad_lines_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(GOOD + "\n\n{not json\n" + '{"id": "e2"}\n' + "[1]\n" + '{"x": NaN}\n')
    records = list(read_events(path))
    assert records[0].event is not None and records[0].event.properties["cost"] == Decimal("0.1")
    assert isinstance(records[0].event.properties["input_tokens"], int)
    assert [r.location for r in records] == [f"{path}:1", f"{path}:3", f"{path}:4", f"{path}:5", f"{path}:6"]
    assert records[1].error is not None and records[1].error.startswith("invalid JSON")
    assert records[2].error is not None and "customer: Field required" in records[2].error
    assert records[3].error == "expected a JSON object, got list"
    assert records[4].error is not None and "NaN is not a number" in records[4].error


def test_csv_reader_maps_columns_to_fields_attribution_and_properties(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "id,customer,type,timestamp,agent,model,input_tokens\n"
        "e1,acme,llm.request,2026-11-02T10:00:00Z,agt_1,gpt-5,1200\n"
        "e2,acme,llm.request,not-a-time,,gpt-5,5\n"
        "e3,acme,llm.request,2026-11-02T10:00:00Z,,gpt-5,5,extra\n"
    )
    good, bad, extra = read_events(path)
    assert good.event is not None
    assert good.event.attribution.agent == "agt_1"
    assert good.event.properties == {"model": "gpt-5", "input_tokens": "1200"}
    assert bad.location == f"{path}:3" and bad.error is not None and "timestamp" in bad.error
    assert extra.error == "more cells than header columns"


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EventError, match="cannot read events"):
        list(read_events(tmp_path / "nope.jsonl"))


def test_python_objects_are_read_too() -> None:
    event = parse_event(__import__("json").loads(GOOD))
    records = list(from_objects([event, {"id": "x"}]))
    assert records[0].event is event
    assert records[1].location == "event #2" and records[1].error is not None
