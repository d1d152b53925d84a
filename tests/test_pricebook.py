from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from rating.cli import main
from rating.errors import PricebookError
from rating.pricebook.model import Pricebook, json_schema, load_pricebook, parse_pricebook
from rating.pricebook.yamlstrict import load
from rating.registry import Registry
from tests.helpers import EXAMPLE, SIMPLE_PRICEBOOK

Book = Callable[[str], Pricebook]


def problems(book: Book, text: str) -> list[str]:
    with pytest.raises(PricebookError) as error:
        book(text)
    return error.value.problems


def test_example_pricebook_loads(registry: Registry) -> None:
    loaded = load_pricebook(EXAMPLE, registry)
    assert loaded.pricebook == "ai-gateway"
    assert loaded.customers["acme-labs"].plan == "team" and loaded.default_plan == "developer"
    tiered = loaded.plans["developer"].charges[1]
    assert tiered.tiers[0].up_to == Decimal(1_000_000)  # type: ignore[attr-defined]


def test_unknown_key_names_line_and_column(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("  basic:\n", "  basic:\n    colour: red\n")
    assert problems(book, text) == ["test.yaml:9:5: plans.basic.colour: unknown key 'colour'"]


def test_unknown_key_inside_a_charge(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace('price: "0.01"}', 'price: "0.01", prise: 1}')
    assert problems(book, text) == ["test.yaml:10:59: plans.basic.charges[0].prise: unknown key 'prise'"]


def test_non_decimal_price(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "one cent"')
    [problem] = problems(book, text)
    assert problem.startswith(
        "test.yaml:10:44: plans.basic.charges[0].price: value must be a decimal number, got 'one cent'"
    )


def test_unknown_meter_lists_the_meters(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("{meter: requests,", "{meter: reqs,")
    assert problems(book, text) == [
        "test.yaml:10:10: plans.basic.charges[0].meter: unknown meter 'reqs'; meters: requests, tokens"
    ]


def test_unknown_model_lists_the_models(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("model: per_call", "model: per_cal")
    [problem] = problems(book, text)
    assert problem == (
        "test.yaml:10:27: plans.basic.charges[0].model: unknown pricing model 'per_cal'; "
        "known models: llm, outcome, package, per_call, per_unit, percentage, tiered"
    )


def test_tier_boundaries_out_of_order(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace(
        '          - {unit_price: "0.0005"}',
        '          - {up_to: 500, unit_price: "0.0005"}\n          - {unit_price: "0.0001"}',
    )
    [problem] = problems(book, text)
    assert problem.startswith(
        "test.yaml:14:9: plans.basic.charges[1].tiers: tier boundaries out of order: "
        "tier 2 up_to 500 is not above tier 1 up_to 1000"
    )


def test_every_problem_is_reported_in_line_order(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("currency: USD", "currency: XYZ").replace("model: per_call", "model: nope")
    text = text.replace("plan: basic", "plan: gold")
    found = problems(book, text)
    assert len(found) == 3
    assert [int(p.split(":")[1]) for p in found] == sorted(int(p.split(":")[1]) for p in found)
    assert any("unknown currency 'XYZ'" in p for p in found)


def test_duplicate_key_is_located(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("currency: USD\n", "currency: USD\ncurrency: EUR\n")
    assert problems(book, text) == ["test.yaml:4:1: duplicate key 'currency' (first given on line 3)"]


def test_float_looking_prices_stay_exact(book: Book) -> None:
    loaded = book(SIMPLE_PRICEBOOK.replace('price: "0.01"', "price: 0.1"))
    assert loaded.plans["basic"].charges[0].price == Decimal("0.1")  # type: ignore[attr-defined]


def test_per_call_needs_a_count_meter(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("{meter: requests, model: per_call", "{meter: tokens, model: per_call")
    [problem] = problems(book, text)
    assert "per_call prices a count meter, but this meter aggregates by sum; use per_unit" in problem


def test_meter_needs_exactly_one_aggregation(book: Book) -> None:
    text = SIMPLE_PRICEBOOK.replace("count: true}", "count: true, sum: x}")
    [problem] = problems(book, text)
    assert "exactly one of sum, count, max, unique (found: sum, count)" in problem


def test_bad_timezone_and_missing_keys(book: Book) -> None:
    found = problems(book, "pricebook: x\nversion: 2026-11-01\ncurrency: USD\ntimezone: Mars/Olympus\nplans: {}\n")
    assert found == [
        "test.yaml:1:1: missing required key 'meters'",
        "test.yaml:4:1: timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Paris)",
    ]


def test_not_a_mapping(book: Book) -> None:
    assert problems(book, "- 1\n") == [
        "test.yaml:1:1: a pricebook must be a mapping with pricebook, version, currency, meters and plans"
    ]


def test_missing_file_is_a_pricebook_error(tmp_path: object, registry: Registry) -> None:
    with pytest.raises(PricebookError, match="cannot read pricebook"):
        load_pricebook("/nonexistent/pricebook.yaml", registry)


@pytest.mark.parametrize("example", ["ai-gateway.yaml", "agent-marketplace.yaml"])
def test_json_schema_accepts_the_examples_and_rejects_typos(registry: Registry, example: str) -> None:
    schema = json_schema(registry)
    data = load((EXAMPLE.parent / example).read_text()).data
    # Editors see YAML numbers as numbers; the schema accepts both numbers and decimal strings.
    jsonschema.validate(_jsonable(data), schema)
    next(iter(data["plans"].values()))["charges"][0]["prise"] = "1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_jsonable(data), schema)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):  # as an editor sees YAML numbers: integers, or decimal text
        return int(value) if value == value.to_integral_value() else str(value)
    return value


HOSTILE_PRICEBOOKS = {
    "nul": (
        SIMPLE_PRICEBOOK.replace("pricebook: test", "pricebook: te\x00st").encode(),
        "1:14: invalid YAML: character U+0000 is not allowed",
    ),
    "latin-1": (SIMPLE_PRICEBOOK.replace("test", "tést").encode("latin-1"), "1:13: not UTF-8 (byte 0xe9)"),
    "deep": (b"a: " + b"[" * 1000 + b"]" * 1000 + b"\n", "nested deeper than 64 levels"),
    "recursive alias": (b"a: &a [*a]\n", "an alias refers to a value that contains it"),
    "alias bomb": (
        b"a: &a [x,x,x,x,x,x,x,x,x]\n"
        + b"".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(8)),
        "expands to more than 200,000 values",
    ),
    "huge price": (SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "1e999999999"').encode(), "too large"),
    "long price": (SIMPLE_PRICEBOOK.replace('price: "0.01"', f'price: "0.{"1" * 100_001}"').encode(), "decimal places"),
    "tiny package": (
        SIMPLE_PRICEBOOK.replace(
            'model: per_call, price: "0.01"', 'model: package, size: "1e-999999", price: "1"'
        ).encode(),
        "decimal places",
    ),
    "arabic digits": (SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "١٢٣"').encode(), "ASCII digits"),
}


@pytest.mark.parametrize("name", list(HOSTILE_PRICEBOOKS))
def test_check_never_tracebacks_or_hangs_on_a_hostile_pricebook(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, problem = HOSTILE_PRICEBOOKS[name]
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert problem in err and err.startswith(str(path)) and "Traceback" not in err


def test_a_pricebook_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(SIMPLE_PRICEBOOK.encode() + b"#" * (50 * 1024 * 1024) + b"\n")
    assert main(["check", str(path)]) == 1
    assert "is over the 5,242,880-byte pricebook limit" in capsys.readouterr().err


def test_the_loader_takes_a_plain_model_map(registry: Registry) -> None:
    # Only the models the map names exist for the loader: no registry, no plugin discovery.
    only_per_call = {"per_call": registry.pricing_models["per_call"]}
    with pytest.raises(PricebookError) as error:
        parse_pricebook(SIMPLE_PRICEBOOK, only_per_call, "map.yaml")
    assert error.value.problems == [
        "map.yaml:12:9: plans.basic.charges[1].model: unknown pricing model 'tiered'; known models: per_call"
    ]
    both = {name: registry.pricing_models[name] for name in ("per_call", "tiered")}
    book = parse_pricebook(SIMPLE_PRICEBOOK, both, "map.yaml")
    assert [charge.name for charge in book.plans["basic"].charges] == ["per_call", "tiered"]
    assert book == parse_pricebook(SIMPLE_PRICEBOOK, registry, "map.yaml")  # the registry supplies the same map


def test_json_schema_takes_a_plain_model_map(registry: Registry) -> None:
    schema = json_schema({"per_call": registry.pricing_models["per_call"]})
    assert set(schema["$defs"]) >= {"PerCall"} and "Tiered" not in schema["$defs"]
