import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from rating.errors import EventError
from rating.events import UsageEvent, from_objects, parse_event, parse_json, read_events
from rating.refusals import Refusal

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


BASE = {"id": "e", "customer": "acme", "type": "api.call", "timestamp": "2026-11-02T10:00:00Z"}


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "e", "customer": "acme", "customer": "mallory", "type": "t", "timestamp": "2026-11-02T10:00:00Z"}',
        '{"id": "e", "customer": "acme", "type": "t", "timestamp": "2026-11-02T10:00:00Z",'
        ' "properties": {"tokens": 1, "tokens": 1000}}',
        '{"id": "e", "customer": "acme", "type": "t", "timestamp": "2026-11-02T10:00:00Z",'
        ' "properties": {"deep": [{"a": 1, "a": 1}]}}',  # even the same value, even deep inside
    ],
)
def test_a_key_given_twice_is_an_invalid_record_never_its_last_value(text: str) -> None:
    with pytest.raises(EventError, match="appears twice") as raised:
        parse_event(parse_json(text))
    assert raised.value.code is Refusal.INVALID_RECORD


@pytest.mark.parametrize(
    "timestamp",
    [1796000000, 1796000000000, Decimal("1796000000.5"), "1796000000", "1796000000000", True, None, [2026], "soon"],
)
def test_a_timestamp_is_iso_text_never_an_epoch(timestamp: object) -> None:
    # 1796000000 (seconds) and 1796000000000 (milliseconds) were both read as 2026-11-30.
    with pytest.raises(EventError, match="timestamp") as raised:
        parse_event({**BASE, "timestamp": timestamp})
    assert raised.value.code is Refusal.INVALID_RECORD


@pytest.mark.parametrize(
    "timestamp, utc",
    [
        ("2026-11-02T10:00:00Z", "2026-11-02T10:00:00+00:00"),
        ("2026-11-02T11:00:00+01:00", "2026-11-02T10:00:00+00:00"),
        ("2026-11-02 10:00:00.250-05:00", "2026-11-02T15:00:00.250000+00:00"),
        (dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC), "2026-11-02T10:00:00+00:00"),
    ],
)
def test_iso_timestamps_with_an_offset_are_read(timestamp: object, utc: str) -> None:
    assert parse_event({**BASE, "timestamp": timestamp}).timestamp.astimezone(dt.UTC).isoformat() == utc


def test_a_csv_quote_left_open_at_the_end_of_the_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "id,customer,type,timestamp,model\n"
        "e1,acme,api.call,2026-11-02T10:00:00Z,m\n"
        'e2,acme,api.call,2026-11-02T10:00:00Z,"m\n'
        "e3,acme,api.call,2026-11-02T10:00:00Z,m\n"
    )
    records = list(read_events(path))
    assert [r.event.id for r in records if r.event is not None] == ["e1"]  # e3 is inside e2's open quote
    assert [(r.location, r.error) for r in records if r.error] == [(f"{path}:3", "invalid CSV: unexpected end of data")]


def test_a_csv_header_naming_a_column_twice_makes_the_file_unusable(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("id,customer,type,timestamp,model,model\ne1,acme,api.call,2026-11-02T10:00:00Z,cheap,dear\n")
    with pytest.raises(EventError, match="the header names 'model' twice") as raised:
        list(read_events(path))
    assert raised.value.code is Refusal.INVALID_RECORD


def test_a_csv_record_is_bounded_even_across_lines_of_quoted_cells(tmp_path: Path) -> None:
    cell = '"' + "y" * 60_000 + "\n" + "y" * 60_000 + '"'  # each cell under the csv module's own field limit
    path = tmp_path / "events.csv"
    path.write_text(
        "id,customer,type,timestamp," + ",".join(f"p{i}" for i in range(20)) + "\n"
        "e1,acme,api.call,2026-11-02T10:00:00Z" + ",a" * 20 + "\n"
        "e2,acme,api.call,2026-11-02T10:00:00Z," + ",".join([cell] * 20) + "\n"
        "e3,acme,api.call,2026-11-02T10:00:00Z" + ",a" * 20 + "\n"
    )
    records = list(read_events(path))
    assert records[0].event is not None and len(records) == 2
    assert records[1].location == f"{path}:3" and records[1].error is not None
    assert records[1].error.startswith("CSV record is longer than 1,048,576 bytes")


def test_records_know_the_bytes_they_took(tmp_path: Path) -> None:
    lines = [json.dumps({**BASE, "id": f"e{i}", "properties": {"pad": "x" * 1000 * i}}) for i in range(5)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert [r.size for r in read_events(path)] == [len(line) + 1 for line in lines]
    csv_path = tmp_path / "events.csv"
    csv_path.write_text('id,customer,type,timestamp,note\ne1,acme,t,2026-11-02T10:00:00Z,"a\nb"\n')
    assert [r.size for r in read_events(csv_path)] == [len('e1,acme,t,2026-11-02T10:00:00Z,"a\nb"\n')]
