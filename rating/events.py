"""Usage events: what happened, to whom, when, and how much.

A :class:`UsageEvent` is immutable and validated once, at the edge. Readers
turn JSON Lines and CSV files into events; a record that is not a valid event
becomes a :class:`Sourced` with its ``file:line`` and the reason, never a
silent drop.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from rating.accounts import AgentId, CustomerId, EventId, FreeText
from rating.errors import EventError
from rating.refusals import Refusal

BillingSource = Literal["platform", "byok"]

#: CSV columns that are event fields; every other non-empty column is a property.
CSV_FIELDS = ("id", "customer", "type", "timestamp", "billing_source", "agent", "session", "order")
ATTRIBUTION_FIELDS = ("agent", "session", "order")


class Attribution(BaseModel):
    """Who or what the usage is attributed to, beyond the paying customer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: AgentId | None = None
    session: FreeText | None = None
    order: FreeText | None = None


def _exact(value: Any) -> Any:
    """Turn floats into the Decimal of their shortest repr, recursively.

    A float from Python code such as ``{"cpu_ms": 1.5}`` is what the caller
    typed; its repr round-trips to that text, so no binary noise enters a meter.
    """
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


class UsageEvent(BaseModel):
    """One metered occurrence: an API call, an LLM request, an agent execution, an outcome.

    ``id`` is the idempotency key: rating the same event twice posts once.
    ``billing_source`` is ``byok`` when the buyer used their own provider key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EventId
    customer: CustomerId
    type: FreeText
    timestamp: AwareDatetime
    properties: dict[str, Any] = Field(default_factory=dict)
    attribution: Attribution = Attribution()
    billing_source: BillingSource = "platform"

    @field_validator("properties", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        return _exact(value)

    def dimension(self, name: str) -> Any:
        """The value of a property, or of an attribution field (agent, session, order), or None."""
        value = self.properties.get(name)
        if value is None and name in ATTRIBUTION_FIELDS:
            value = getattr(self.attribution, name)
        return value

    def canonical_json(self) -> str:
        """A stable JSON text of the event, used to tell a replay from a conflicting reuse of an id."""
        return self.model_dump_json()


@dataclass(frozen=True, slots=True)
class Sourced:
    """A record read from a file: its location and either the event or why it is not one."""

    location: str
    event: UsageEvent | None = None
    error: str | None = None


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each invalid field: ``timestamp: Input should have timezone info``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_event(data: Any) -> UsageEvent:
    """Validate one mapping as an event, or raise :class:`EventError` with a one-line reason."""
    if not isinstance(data, dict):
        raise EventError(Refusal.INVALID_RECORD, f"expected a JSON object, got {type(data).__name__}")
    try:
        return UsageEvent.model_validate(data)
    except ValidationError as error:
        raise EventError(Refusal.INVALID_RECORD, describe_validation_error(error)) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def read_jsonl(stream: TextIO, name: str) -> Iterator[Sourced]:
    """Events from JSON Lines; numbers are read as Decimal from their text."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        location = f"{name}:{number}"
        try:
            data = json.loads(line, parse_float=Decimal, parse_constant=_refuse_constant)
            yield Sourced(location, event=parse_event(data))
        except ValueError as error:  # JSONDecodeError is a ValueError
            yield Sourced(location, error=f"invalid JSON: {error}")
        except EventError as error:
            yield Sourced(location, error=str(error))


def csv_row_to_mapping(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as an event mapping: known columns are fields, the rest properties (as text)."""
    data: dict[str, Any] = {"properties": {}, "attribution": {}}
    for column, value in row.items():
        if column is None or value is None or value == "":
            continue
        if column in ATTRIBUTION_FIELDS:
            data["attribution"][column] = value
        elif column in CSV_FIELDS:
            data[column] = value
        else:
            data["properties"][column] = value
    return data


def read_csv(stream: TextIO, name: str) -> Iterator[Sourced]:
    """Events from CSV with a header row (see :data:`CSV_FIELDS`)."""
    reader = csv.DictReader(stream)
    for row in reader:
        location = f"{name}:{reader.line_num}"
        if None in row:
            yield Sourced(location, error="more cells than header columns")
            continue
        try:
            yield Sourced(location, event=parse_event(csv_row_to_mapping(row)))
        except EventError as error:
            yield Sourced(location, error=str(error))


def read_events(path: str | Path) -> Iterator[Sourced]:
    """Read events from a ``.csv`` file or JSON Lines (``.jsonl``, ``.ndjson``, anything else)."""
    path = Path(path)
    try:
        stream = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise EventError(Refusal.INVALID_RECORD, f"{path}: cannot read events: {error.strerror}") from None
    with stream:
        reader = read_csv if path.suffix.lower() == ".csv" else read_jsonl
        yield from reader(stream, str(path))


def from_objects(items: Iterable[UsageEvent | dict[str, Any]]) -> Iterator[Sourced]:
    """Events from Python objects (events or mappings), located by their position."""
    for number, item in enumerate(items, start=1):
        location = f"event #{number}"
        if isinstance(item, UsageEvent):
            yield Sourced(location, event=item)
            continue
        try:
            yield Sourced(location, event=parse_event(item))
        except EventError as error:
            yield Sourced(location, error=str(error))
