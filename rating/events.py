"""Usage events: what happened, to whom, when, and how much.

A :class:`UsageEvent` is immutable and validated once, at the edge. Readers
turn JSON Lines and CSV files into events; a record that is not a valid event
becomes a :class:`Sourced` with its ``file:line`` and the reason, never a
silent drop.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from rating.accounts import AgentId, CustomerId, EventId, FreeText
from rating.errors import EventError
from rating.refusals import Refusal

BillingSource = Literal["platform", "byok"]

#: Longest line (JSON Lines) or CSV record a reader accepts, in bytes; a longer one is rejected, never loaded.
MAX_LINE_BYTES = 1024 * 1024
#: Bytes of records (as read) that end the engine's chunk, as its count of records does, and that a live stream
#: reads ahead at most: memory stays bounded however large the records are.
CHUNK_BYTES = 16 * 1024 * 1024
#: Deepest nesting of JSON objects and arrays accepted in an event.
MAX_NESTING = 32
#: Timestamps must fall in this range (UTC): far enough from the calendar's ends that no time zone overflows.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)

#: Text pydantic would read as a count of seconds or milliseconds since 1970 rather than refuse.
EPOCH_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")

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
    """Turn floats into the Decimal of their shortest repr, recursively; refuse text no storage can keep.

    A float from Python code such as ``{"cpu_ms": 1.5}`` is what the caller
    typed; its repr round-trips to that text, so no binary noise enters a meter.
    A lone surrogate (JSON ``"\\ud800"``) is not Unicode text: stored, it failed
    the whole chunk of events it came in.
    """
    if isinstance(value, str):
        return _unicode(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {_unicode(k) if isinstance(k, str) else k: _exact(v) for k, v in value.items()}  # keys validated next
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


def _unicode(text: str) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{text[:32]!r} is not Unicode text (a lone surrogate at {error.start})") from None
    return text


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
        if not nests_within(value, MAX_NESTING):
            raise ValueError(f"properties nest deeper than {MAX_NESTING} levels")
        return _exact(value)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # Lax datetime parsing reads 1796000000 (and the text "1796000000") as an epoch: a count of seconds or
        # of milliseconds lands both on 2026-11-30. A timestamp is ISO 8601 text, or a datetime from Python.
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and not EPOCH_TEXT.fullmatch(value.strip()):
            return value
        kinds = {bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}
        kind = kinds.get(type(value), "a number" if not isinstance(value, str) else f"a number ({value[:32]!r})")
        raise ValueError(f"must be ISO 8601 text with an offset, not {kind}")

    @field_validator("timestamp")
    @classmethod
    def _in_range(cls, value: dt.datetime) -> dt.datetime:
        if not EARLIEST <= value < LATEST:
            raise ValueError(f"timestamp must lie between {EARLIEST.year} and {LATEST.year}, got {value.isoformat()}")
        return value

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
    """A record read from a file: its location and either the event or why it is not one.

    ``size`` is how many bytes of the source it took (0 when not read from bytes).
    """

    location: str
    event: UsageEvent | None = None
    error: str | None = None
    size: int = 0


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


def nests_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays no deeper than ``limit`` (iteratively: no recursion to exhaust)."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return False
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


class DuplicateKey(ValueError):
    """A JSON object gives one key twice."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, or :class:`DuplicateKey` (``json.loads``' ``object_pairs_hook``).

    JSON keeps the last of two equal keys: ``"amount": "1", "amount": "1000"`` would silently read 1000.
    """
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"key {key[:64]!r} appears twice in one object")
            seen.add(key)
    return result


def parse_json(text: str | bytes) -> Any:
    """JSON text with numbers as Decimal; :class:`EventError` (``invalid_record``) for anything else, never a crash.

    A key given twice in one object is an error, as are ``NaN`` and ``Infinity``.
    """
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=unique_keys)
    except RecursionError:
        raise EventError(Refusal.INVALID_RECORD, f"invalid JSON: nested deeper than {MAX_NESTING} levels") from None
    except ArithmeticError:  # decimal.InvalidOperation: Decimal("1e999999999999999999") exceeds its exponent range
        raise EventError(Refusal.INVALID_RECORD, "invalid JSON: a number's exponent is out of range") from None
    except ValueError as error:  # JSONDecodeError is a ValueError
        raise EventError(Refusal.INVALID_RECORD, f"invalid JSON: {error}") from None


def _bounded_lines(stream: BinaryIO, name: str) -> Iterator[tuple[str, str | None, str | None, int]]:
    """(location, text, problem, bytes) per line: lines longer than :data:`MAX_LINE_BYTES` or not UTF-8 are problems.

    A long line is skipped in bounded pieces, never held whole in memory.
    """
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        location = f"{name}:{number}"
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            size = len(line)
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
                size += len(line)
            yield location, None, f"line is longer than {MAX_LINE_BYTES:,} bytes", size
            continue
        try:
            yield location, line.decode("utf-8"), None, len(line)
        except UnicodeDecodeError as error:
            problem = f"not UTF-8 (byte {line[error.start]:#04x} at column {error.start + 1})"
            yield location, None, problem, len(line)


def read_jsonl(stream: BinaryIO, name: str, fast: bool | None = None) -> Iterator[Sourced]:
    """Events from JSON Lines (bytes); numbers are read as Decimal from their text.

    With msgspec installed (``rating-engine[fast]``) and ``fast`` not False, lines are decoded by
    :mod:`rating.fastread`: the same events, refusal codes and reasons, without a pydantic model per event.
    """
    from rating import fastread  # a sibling that imports this module: imported at call time

    parse = fastread.parse_line if fastread.AVAILABLE and fast is not False else _parse_line
    for location, line, problem, size in _bounded_lines(stream, name):
        if line is None:
            yield Sourced(location, error=problem, size=size)
            continue
        if not line.strip():
            continue
        try:
            yield Sourced(location, event=parse(line), size=size)
        except EventError as error:
            yield Sourced(location, error=str(error), size=size)


def _parse_line(line: str) -> UsageEvent:
    """One JSON Lines record through the pydantic model (the reader without msgspec)."""
    return parse_event(parse_json(line))


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


class _RecordTooLong(Exception):
    """A CSV record (a quoted cell may span lines) grew past :data:`MAX_LINE_BYTES`."""


def read_csv(stream: BinaryIO, name: str) -> Iterator[Sourced]:
    """Events from CSV (bytes) with a header row (see :data:`CSV_FIELDS`); a bad row is rejected, not fatal.

    Quoting is strict: a quote left open at the end of the file is an error, not a cell that runs to the end.
    A header naming a column twice makes the file unusable (:class:`EventError`): which cell would count?
    """
    problems: dict[int, str] = {}
    record_bytes = 0  # of the record being read: a quote left open must not pull the whole file into one cell

    def lines() -> Iterator[str]:
        nonlocal record_bytes
        for location, line, problem, size in _bounded_lines(stream, name):
            record_bytes += size
            if record_bytes > MAX_LINE_BYTES:
                raise _RecordTooLong
            if line is None:
                problems[int(location.rsplit(":", 1)[1])] = problem or "unreadable"
                yield "\n"  # keeps the reader's line numbers in step; the row is reported below
            else:
                yield line

    reader = csv.reader(lines(), strict=True)
    header: list[str] | None = None
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Sourced(f"{name}:{first_line}", error=f"invalid CSV: {error}", size=record_bytes)
            record_bytes = 0
            continue
        except _RecordTooLong:
            yield Sourced(
                f"{name}:{first_line}",
                error=f"CSV record is longer than {MAX_LINE_BYTES:,} bytes (a quote never closed?);"
                " the rest of the file is not read",
                size=record_bytes,
            )
            return
        size, record_bytes = record_bytes, 0
        location = f"{name}:{reader.line_num}"
        if reader.line_num in problems:
            yield Sourced(location, error=problems.pop(reader.line_num), size=size)
            continue
        if header is None:
            twice = sorted({column for column in cells if cells.count(column) > 1})
            if twice:
                raise EventError(
                    Refusal.INVALID_RECORD,
                    f"{location}: the header names {', '.join(map(repr, twice))} twice; no row of the file is read",
                )
            header = cells
            continue
        if not cells:
            continue
        if len(cells) > len(header):
            yield Sourced(location, error="more cells than header columns", size=size)
            continue
        try:
            row: dict[str, str | None] = dict(zip(header, cells, strict=False))
            yield Sourced(location, event=parse_event(csv_row_to_mapping(row)), size=size)
        except EventError as error:
            yield Sourced(location, error=str(error), size=size)


def read_events(path: str | Path) -> Iterator[Sourced]:
    """Read events from a ``.csv`` file or JSON Lines (``.jsonl``, ``.ndjson``, anything else)."""
    path = Path(path)
    try:
        stream = path.open("rb")
    except OSError as error:
        raise EventError(Refusal.INVALID_RECORD, f"{path}: cannot read events: {error.strerror}") from None
    with stream:
        reader = read_csv if path.suffix.lower() == ".csv" else read_jsonl
        yield from reader(stream, str(path))


class Pause:
    """A marker among records read from a live stream: the input paused, so post what is pending."""

    def __repr__(self) -> str:
        return "PAUSE"


PAUSE = Pause()


class _Budget:
    """Bytes a producer thread may hold ahead of its consumer; the producer waits while they are spent.

    One record larger than the whole budget still passes, alone.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self.changed = threading.Condition()

    def take(self, size: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.held == 0 or self.held + size <= self.limit)
            self.held += size

    def give(self, size: int) -> None:
        with self.changed:
            self.held -= size
            self.changed.notify_all()


def follow(
    stream: BinaryIO, name: str, idle: float = 0.2, ahead: int = 10_000, budget: int = CHUNK_BYTES
) -> Iterator[Sourced | Pause]:
    """JSON Lines from a live stream (a pipe, standard input), with :data:`PAUSE` after ``idle`` quiet seconds.

    A reader thread parses at most ``ahead`` records and ``budget`` bytes of them
    ahead of the consumer, so memory stays bounded however long the stream runs
    and however large its records; a pause lets the consumer post what arrived
    instead of waiting for a full chunk.
    """
    records: queue.Queue[Sourced | BaseException | None] = queue.Queue(maxsize=ahead)
    held = _Budget(budget)

    def read() -> None:
        try:
            for record in read_jsonl(stream, name):
                held.take(record.size)
                records.put(record)
        except BaseException as error:  # handed to the consumer, which raises it
            records.put(error)
            return
        records.put(None)

    threading.Thread(target=read, name=f"read {name}", daemon=True).start()
    paused = True
    while True:
        try:
            item = records.get(timeout=idle)
        except queue.Empty:
            if not paused:
                paused = True
                yield PAUSE
            continue
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        held.give(item.size)
        paused = False
        yield item


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
