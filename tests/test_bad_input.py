"""Bad input: each a clear reason in the rejected-events report, nothing of it posted."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rating.cli import main
from rating.engine import Engine
from rating.events import UsageEvent, read_events, read_jsonl
from rating.pricebook.model import Pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage import Storage
from tests.helpers import SIMPLE_PRICEBOOK, event

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def line(
    id: str, customer: str = "acme", type: str = "api.call", at: str = "2026-11-05T12:00:00Z", tokens: Any = 5
) -> str:
    return json.dumps(
        {"id": id, "customer": customer, "type": type, "timestamp": at, "properties": {"tokens": tokens, "model": "m"}}
    ).replace('"TOKENS"', "1e400")


LINES = [
    line("ok"),
    "{not json",
    line("who", customer="ghost"),
    line("what", type="api.cal"),
    line("neg", tokens=-5),
    line("nan", tokens="five"),
    line("naive", at="2026-11-05T12:00:00"),
    line("future", at="2026-11-23T12:10:00Z"),
    line("huge", tokens="TOKENS"),  # a JSON number of 400 digits
    line("wide", tokens=10**15),  # large, but plausible
]


def test_every_kind_of_bad_record_is_reported_and_nothing_of_it_posted(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    tolerance = dt.timedelta(minutes=5)
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry, future_tolerance=tolerance, clock=lambda: NOW)
    report = engine.rate_batch(read_events(path))
    reasons = {int(r.location.rsplit(":", 1)[1]): r.reason for r in report.rejected}
    assert report.posted == 2
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3].startswith("unknown customer 'ghost'")
    assert reasons[4] == "no meter counts events of type 'api.cal'"
    assert reasons[5] == "tokens must not be negative, got -5"
    assert reasons[6] == "tokens must be a decimal number, got 'five'"
    assert reasons[7].startswith("timestamp: Input should have timezone info")
    assert reasons[8] == "timestamp 2026-11-23T12:10:00+00:00 is in the future beyond the 0:05:00 tolerance"
    assert reasons[9].startswith("tokens is absurdly large (1E+400)")
    assert {t.id for t in storage.transactions()} == {"rating:ok", "rating:wide"}
    assert storage.verify() == []


def test_sums_that_cannot_stay_exact_are_refused_not_rounded(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # Prices are bounded at check time; a quantity of 1E-100 on top of 7 cannot be summed in 60 digits.
    engine = Engine(book(SIMPLE_PRICEBOOK), storage, registry)
    report = engine.rate_batch([event("e1", tokens=7, model="m"), event("e2", tokens=Decimal("1E-100"), model="m")])
    assert report.posted == 1 and [(r.code, r.reason) for r in report.rejected] == [
        (Refusal.NOT_EXACT, "cannot be priced exactly: Inexact")
    ]
    assert [t.id for t in storage.transactions()] == ["rating:e1"]


def test_future_tolerance_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.yaml").write_text(SIMPLE_PRICEBOOK)
    (tmp_path / "e.jsonl").write_text(line("later", at="2099-01-01T00:00:00Z") + "\n")
    argv = ["rate", str(tmp_path / "e.jsonl"), "-p", str(tmp_path / "b.yaml"), "--db", str(tmp_path / "r.db")]
    assert main([*argv, "--future-tolerance", "5m"]) == 3  # exit codes: every record refused, nothing done
    assert "in the future beyond the 0:05:00 tolerance" in capsys.readouterr().err
    assert main([*argv, "--future-tolerance", "soon"]) == 2  # an invalid flag value
    assert "'soon' is not a duration" in capsys.readouterr().err


HOSTILE = [
    line("first").encode(),
    line("nul\x00id").encode(),  # PostgreSQL cannot store NUL: refused before it gets there
    line("nul-customer", customer="ac\x00me").encode(),
    line("x" * 1_000_000).encode(),  # an id of about 1 MB, past the 256-character bound
    line("latin").encode().replace(b'"m"', b'"\xe9"'),  # a byte that is not UTF-8
    b'{"id": "deep", "properties": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    line("end-of-time", at="9999-12-31T23:59:59Z"),  # year 10000 once converted to a zone east of UTC
    b'{"id": "huge", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}',  # a line past the 1 MiB bound
    line("last").encode(),
]
HOSTILE_BOOK = SIMPLE_PRICEBOOK.replace("currency: USD", "currency: USD\ntimezone: Asia/Tokyo")


def _hostile_file(path: Path) -> Path:
    path.write_bytes(b"\n".join(h if isinstance(h, bytes) else h.encode() for h in HOSTILE) + b"\n")
    return path


def test_hostile_records_are_rejected_one_by_one_and_the_rest_is_posted(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(HOSTILE_BOOK), storage, registry)
    report = engine.rate_batch(read_events(_hostile_file(tmp_path / "hostile.jsonl")))
    assert report.posted == 2 and sorted(storage.rated_events(["first", "last"])) == ["first", "last"]
    reasons = {int(r.location.rsplit(":", 1)[1]): r.reason for r in report.rejected}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8]
    assert "control characters such as NUL" in reasons[2] and "U+0000" in reasons[3]
    assert "must be 1 to 256 characters" in reasons[4]
    assert "not UTF-8 (byte 0xe9" in reasons[5]
    assert "nested deeper than" in reasons[6] and "timestamp must lie between 1900 and 9000" in reasons[7]
    assert "line is longer than 1,048,576 bytes" in reasons[8]
    assert storage.verify() == []


def test_hostile_records_in_strict_mode_post_nothing_and_exit_three(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(HOSTILE_BOOK)
    events = _hostile_file(tmp_path / "hostile.jsonl")
    assert main(["rate", str(events), "-p", "book.yaml", "--strict"]) == 3  # a strict refusal: nothing done
    err = capsys.readouterr().err
    assert "strict: nothing posted because 7 records were rejected" in err and "Traceback" not in err
    assert main(["rate", str(events), "-p", "book.yaml"]) == 1  # and the replay posts the good ones, once
    assert "posted 2 events, 0 already posted, 7 rejected" in capsys.readouterr().err


def test_hostile_csv_rows_are_rejected_one_by_one(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    from rating.storage.memory import MemoryStorage

    rows = [
        b"id,customer,type,timestamp,tokens,model",
        b"c1,acme,api.call,2026-11-05T12:00:00Z,5,m",
        b"c2,acme,api.call,2026-11-05T12:00:00Z,5,\xff",
        b"c3,acme,api.call,2026-11-05T12:00:00Z,5,m,extra",
        b'c4,acme,api.call,2026-11-05T12:00:00Z,5,"' + b"y" * 200_000 + b'"',
        b"c5,acme,api.call,2026-11-05T12:00:00Z,5,m",
    ]
    path = tmp_path / "e.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    report = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry).rate_batch(read_events(path))
    assert report.posted == 2
    assert [(r.location.rsplit(":", 1)[1], r.reason.split(" ")[0]) for r in report.rejected] == [
        ("3", "not"),
        ("4", "more"),
        ("5", "invalid"),
    ]


def test_quote_of_a_deeply_nested_event_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.yaml").write_text(SIMPLE_PRICEBOOK)
    deep = '{"id": "q", "properties": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert main(["quote", deep, "-p", "book.yaml"]) == 3  # its only record refused
    err = capsys.readouterr().err
    assert "argument: invalid JSON: nested deeper than 32 levels" in err and "Traceback" not in err


def test_quantities_written_as_python_would_read_them_but_no_one_writes_them_are_refused(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # Decimal() reads "1_000" as 1000, " 12 " as 12 and "1_0" as 10: each was posted as that quantity.
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(line(id, tokens=tokens) for id, tokens in QUANTITIES) + "\n")
    report = Engine(book(SIMPLE_PRICEBOOK), storage, registry).rate_batch(read_events(path))
    assert report.posted == 1 and report.totals == {("acme", "USD"): Decimal("0.022")}  # 0.01 + 12 x 0.001
    assert [(r.code, r.reason) for r in report.rejected] == [
        (Refusal.INVALID_QUANTITY, f"tokens must be a decimal number, got {tokens!r}") for _, tokens in QUANTITIES[1:]
    ]


QUANTITIES = [("plain", "12"), ("underscored", "1_000"), ("padded", " 12 "), ("digits", "1_0"), ("newline", "12\n")]


def test_csv_quantities_are_read_by_the_same_grammar(
    tmp_path: Path, book: Callable[[str], Pricebook], registry: Registry
) -> None:
    from rating.storage.memory import MemoryStorage

    path = tmp_path / "events.csv"
    path.write_text(
        "id,customer,type,timestamp,tokens,model\n"
        + "".join(f'{id},acme,api.call,2026-11-05T12:00:00Z,"{tokens}",m\n' for id, tokens in QUANTITIES)
    )
    report = Engine(book(SIMPLE_PRICEBOOK), MemoryStorage(), registry).rate_batch(read_events(path))
    assert report.posted == 1 and [r.code for r in report.rejected] == [Refusal.INVALID_QUANTITY] * 4


GROUPED = """\
pricebook: grouped
version: 2026-11-01
currency: USD
meters:
  tokens: {event: api.call, sum: tokens, group_by: [model, region]}
  users: {event: api.call, unique: user}
plans:
  basic:
    charges:
      - meter: tokens
        model: tiered
        mode: volume
        tiers: [{up_to: 10, unit_price: "1"}, {unit_price: "0.5"}]
      - {meter: users, model: per_unit, unit_price: "2"}
customers:
  acme: {plan: basic}
"""


def grouped(id: str, **properties: Any) -> UsageEvent:
    """An event both meters of :data:`GROUPED` count: 6 tokens of model m in region eu, by user u1."""
    return event(
        id,
        at=dt.datetime(2026, 11, 5, tzinfo=dt.UTC),
        **{"tokens": 6, "model": "m", "region": "eu", "user": "u1"} | properties,
    )


@pytest.mark.parametrize(
    "properties, kind",
    [
        ({"model": {"name": "m"}}, "an object"),  # was grouped by its Python repr, "{'name': 'm'}"
        ({"model": ["m"]}, "a list"),
        ({"model": 5}, "a number"),  # shared a group with the text "5"
        ({"model": Decimal("5.0")}, "a number"),
        ({"region": True}, "a boolean"),
        ({"user": {"id": 1}}, "an object"),  # a unique member
        ({"user": 42}, "a number"),
    ],
)
def test_a_group_value_or_unique_member_that_is_not_text_is_an_invalid_property(
    book: Callable[[str], Pricebook], registry: Registry, properties: dict[str, Any], kind: str
) -> None:
    from rating.storage.memory import MemoryStorage

    engine = Engine(book(GROUPED), MemoryStorage(), registry)
    report = engine.rate_batch([grouped("bad", **properties), grouped("good")])
    assert report.posted == 1 and report.totals == {("acme", "USD"): Decimal("8")}  # 6 x 1 + one user x 2
    [refused] = report.rejected
    assert refused.code is Refusal.INVALID_PROPERTY and kind in refused.reason and refused.location == "event bad"


@pytest.mark.parametrize("name", ["model", "user"])
def test_group_values_and_unique_members_are_at_most_1024_utf8_bytes(
    book: Callable[[str], Pricebook], registry: Registry, name: str
) -> None:
    from rating.storage.memory import MemoryStorage

    engine = Engine(book(GROUPED), MemoryStorage(), registry)
    fits = {"ascii": "x" * 1024, "astral": "\U0001f600" * 256}  # 1,024 bytes each
    too_long = {"ascii": "x" * 1025, "three-byte": "\u20ac" * 342}  # 1,025 and 1,026 bytes
    report = engine.rate_batch(
        [grouped(f"fits-{k}", **{name: v}) for k, v in fits.items()]
        + [grouped(f"long-{k}", **{name: v}) for k, v in too_long.items()]
    )
    assert report.posted == 2
    assert [(r.location, r.code) for r in report.rejected] == [
        ("event long-ascii", Refusal.INVALID_PROPERTY),
        ("event long-three-byte", Refusal.INVALID_PROPERTY),
    ]
    assert "longer than 1,024 UTF-8 bytes" in report.rejected[0].reason


def test_one_event_with_a_long_group_value_never_drops_another_on_any_storage(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # PostgreSQL raised ProgramLimitExceeded for a value of about 2.8 KB and the chunk's valid event was lost.
    engine = Engine(book(GROUPED), storage, registry)
    report = engine.rate_batch([grouped("before"), grouped("long", model="m" * 2800), grouped("after")])
    assert report.posted == 2 and [(r.location, r.code) for r in report.rejected] == [
        ("event long", Refusal.INVALID_PROPERTY)
    ]
    assert sorted(storage.rated_events(["before", "long", "after"])) == ["after", "before"]


def test_the_longest_group_values_and_members_are_stored_and_read_back_on_every_storage(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # 1,024 bytes of characters outside the BMP each, three to a group and one as a unique member: about
    # 10 KB of index key once stored (JSON escapes them), past a PostgreSQL B-tree entry unless keyed by a hash.
    def longest(seed: int) -> str:
        chars = random.Random(seed)
        return "".join(chr(chars.randrange(0x10000, 0x10FFFF)) for _ in range(256))

    values = {"model": longest(1), "region": longest(2), "zone": longest(3), "user": longest(4)}
    assert all(len(v.encode()) == 1024 for v in values.values())
    three = GROUPED.replace("group_by: [model, region]", "group_by: [model, region, zone]").replace(
        "unique: user}", "unique: user, group_by: [model, region, zone]}"
    )
    engine = Engine(book(three), storage, registry)
    first = engine.rate(grouped("first", **values))
    second = engine.rate(grouped("second", **values))
    assert first is not None and second is not None
    assert [(c.meter, c.before, c.after, c.amount) for c in second.charges] == [
        ("tokens", Decimal(6), Decimal(12), Decimal(0)),  # volume: 12 x 0.5 = 6, as 6 x 1 was already billed
        ("users", Decimal(1), Decimal(1), Decimal(0)),  # the same member counts once
    ]
    assert storage.verify() == []


def test_events_already_stored_are_not_judged_again_by_rerate(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    from rating.billing.rerate import rerate
    from rating.pricebook.catalog import Catalog

    # Accepted before the meter grouped by region: a number then was no group value.
    engine = Engine(book(GROUPED.replace("group_by: [model, region]", "group_by: [model]")), storage, registry)
    assert engine.rate(grouped("old", region=7)) is not None
    report = rerate(
        storage,
        Catalog([book(GROUPED)]),
        registry,
        dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        clock=lambda: NOW,
    )
    assert report.refused == [] and report.repriced == 1


LLM = """\
pricebook: llm
version: 2026-11-01
currency: USD
meters:
  calls: {event: llm.request, count: true}
plans:
  basic:
    charges:
      - meter: calls
        model: llm
        models:
          m: {prices: {input_mtok: "1", output_mtok: "2"}}
customers:
  acme: {plan: basic}
"""


@pytest.mark.parametrize(
    "counts, problem",
    [
        ({"input_tokens": "0.5"}, "input_tokens must be a whole number, got 0.5"),
        ({"input_tokens": Decimal("1000.5")}, "input_tokens must be a whole number"),
        ({"output_tokens": -3}, "output_tokens must not be negative"),
        ({"input_tokens": 100, "input_audio_tokens": 101}, "input_audio_tokens (101) is more than input_tokens (100)"),
        ({"input_tokens": 100, "cache_read_tokens": 150}, "cache_read_tokens (150) is more than input_tokens (100)"),
        (
            {"output_tokens": 10, "output_reasoning_tokens": 11},
            "output_reasoning_tokens (11) is more than output_tokens (10)",
        ),
        (
            {"input_tokens": 100, "input_audio_tokens": 50, "cache_audio_read_tokens": 60},
            "cache_audio_read_tokens (60) is more than input_audio_tokens (50)",
        ),
    ],
)
def test_token_counts_are_whole_and_no_part_exceeds_its_whole(
    book: Callable[[str], Pricebook], registry: Registry, counts: dict[str, Any], problem: str
) -> None:
    from rating.storage.memory import MemoryStorage

    engine = Engine(book(LLM), MemoryStorage(), registry)
    at = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    good = event("good", type="llm.request", at=at, model="m", input_tokens=1_000_000, output_tokens=500_000)
    report = engine.rate_batch([event("bad", type="llm.request", at=at, model="m", **counts), good])
    assert report.totals == {("acme", "USD"): Decimal("2")}  # 1 + 0.5 x 2
    [refused] = report.rejected
    assert refused.code is Refusal.INVALID_QUANTITY and problem in refused.reason


def test_durations_may_be_fractional_and_parts_within_their_whole_are_accepted(
    book: Callable[[str], Pricebook], registry: Registry
) -> None:
    from rating.storage.memory import MemoryStorage

    engine = Engine(book(LLM), MemoryStorage(), registry)
    at = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    rated = engine.rate(
        event(
            "fine", type="llm.request", at=at, model="m", input_tokens=1_000_000, input_audio_tokens=1_000_000,
            audio_seconds=Decimal("2.5"), output_tokens=0,
        )
    )  # fmt: skip
    assert rated is not None and rated.total() == {"USD": Decimal("1")}


def test_text_no_storage_can_keep_is_refused_with_its_record_alone(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    # A lone surrogate ("\ud800" in JSON) failed the whole chunk on SQLite and PostgreSQL with a traceback.
    lines = [
        line("before"),
        line("note").replace('"model": "m"', '"model": "m", "note": "\\ud800"'),
        line("key").replace('"model": "m"', '"model": "m", "\\udfff": "x"'),
        line("after"),
    ]
    report = Engine(book(SIMPLE_PRICEBOOK), storage, registry).rate_batch(
        read_jsonl(io.BytesIO("\n".join(lines).encode()), "f")
    )
    assert report.posted == 2 and [(r.location, r.code) for r in report.rejected] == [
        ("f:2", Refusal.INVALID_RECORD),
        ("f:3", Refusal.INVALID_RECORD),
    ]
    assert "is not Unicode text" in report.rejected[0].reason
    assert sorted(storage.rated_events(["before", "note", "key", "after"])) == ["after", "before"]
