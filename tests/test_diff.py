"""rating diff: charges matched by identity, every changed parameter named, a reorder is no change."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.pricebook.model import Pricebook
from rating.reports.diff import Change, diff
from tests.helpers import SIMPLE_PRICEBOOK

PER_CALL = '      - {meter: requests, model: per_call, price: "0.01"}\n'
TIERED = SIMPLE_PRICEBOOK.split(PER_CALL)[1].split("customers:")[0]


def test_a_reordered_plan_is_no_change(book: Callable[[str], Pricebook]) -> None:
    reordered = SIMPLE_PRICEBOOK.replace(PER_CALL + TIERED, TIERED + PER_CALL)
    assert reordered != SIMPLE_PRICEBOOK
    assert diff(book(SIMPLE_PRICEBOOK), book(reordered)) == []


def test_prices_tiers_charges_meters_and_customers_that_changed_are_named(book: Callable[[str], Pricebook]) -> None:
    changed = (
        SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "0.02"')
        .replace('{unit_price: "0.0005"}', '{unit_price: "0.0004"}')
        .replace("  acme: {plan: basic}", "  acme: {plan: basic, spend_cap: '50'}\n  zed: {plan: basic}")
        .replace(
            "  tokens: {event: api.call, sum: tokens, group_by: [model]}", "  tokens: {event: api.call, sum: tokens}"
        )
        .replace("plans:\n  basic:\n", "plans:\n  basic:\n    fee: '9'\n")
    )
    changes = diff(book(SIMPLE_PRICEBOOK), book(changed))
    assert Change("changed", "plan basic", "fee: (default) -> 9") in changes
    assert Change("changed", "plan basic", "charge requests.per_call.USD: price: 0.01 -> 0.02") in changes
    tiers = [c for c in changes if c.detail.startswith("charge tokens.tiered.USD: tiers:")]
    assert len(tiers) == 1 and "0.0005" in tiers[0].detail and "0.0004" in tiers[0].detail
    assert Change("changed", "meter tokens", "group_by: ['model'] -> (default)") in changes
    assert Change("changed", "customer acme", "spend_cap: (default) -> 50") in changes
    assert Change("added", "customer zed", "") in changes
    dropped = book(SIMPLE_PRICEBOOK.replace(PER_CALL, ""))
    assert diff(book(SIMPLE_PRICEBOOK), dropped) == [Change("removed", "plan basic", "charge requests.per_call.USD")]


def test_diff_command_with_events_shows_the_money_impact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(SIMPLE_PRICEBOOK)
    after.write_text(SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "0.02"'))
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"id": "e1", "customer": "acme", "type": "api.call", "timestamp": "2026-11-05T12:00:00Z",'
        ' "properties": {"tokens": 10, "model": "m"}}\n'
    )
    assert main(["diff", str(before), str(after), "--events", str(events), "-o", "csv"]) == 0
    captured = capsys.readouterr()
    assert "changed,plan basic,charge requests.per_call.USD: price: 0.01 -> 0.02" in captured.out
    assert "after vs before: 0.010 USD (+50.00%)" in captured.err


def test_each_separable_change_has_its_own_money_impact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(SIMPLE_PRICEBOOK)
    after.write_text(
        SIMPLE_PRICEBOOK.replace('price: "0.01"', 'price: "0.02"')
        .replace('{up_to: 1000, unit_price: "0.001"}', '{up_to: 1000, unit_price: "0.002"}')
        .replace("plans:\n  basic:\n", "plans:\n  basic:\n    fee: '9'\n")
    )
    events = tmp_path / "e.jsonl"
    events.write_text(
        "".join(
            f'{{"id": "e{i}", "customer": "acme", "type": "api.call", "timestamp": "2026-11-05T12:00:00Z",'
            ' "properties": {"tokens": 600, "model": "m"}}\n'
            for i in range(2)
        )
    )
    assert main(["diff", str(before), str(after), "--events", str(events), "-o", "json"]) == 0
    impacts = {
        (row["change"], row["where"]): Decimal(row["impact"]) for row in json.loads(capsys.readouterr().out)["impacts"]
    }
    assert impacts == {
        ("changed", "plan basic: charge requests.per_call.USD"): Decimal("0.02"),  # two calls, a cent dearer each
        ("changed", "plan basic: charge tokens.tiered.USD"): Decimal("1.000"),  # the first 1,000 tokens, 0.001 dearer
        ("changed", "plan basic"): Decimal("9"),  # the new fee, for the whole month
        ("all", "every change together"): Decimal("10.020"),
    }
    assert main(["diff", str(before), str(after), "--events", str(events)]) == 0
    table = capsys.readouterr().out
    assert "fee: (default) -> 9" in table and "every change together" in table


def test_a_changed_price_inside_an_llm_catalogue_is_named_by_its_path(tmp_path, registry) -> None:  # type: ignore[no-untyped-def]
    from rating.pricebook.model import load_pricebook
    from rating.reports.diff import diff

    for name, price in (("before", "2.5"), ("after", "2.75")):
        folder = tmp_path / name
        (folder / "llm").mkdir(parents=True)
        (folder / "llm" / "catalogue.yaml").write_text(
            f'models:\n  gpt-4o: {{prices: {{input_mtok: "{price}", output_mtok: "10"}}}}\n'
        )
        (folder / "book.yaml").write_text(
            "pricebook: gw\nversion: 2026-11-01\ncurrency: USD\nmeters:\n  calls: {event: llm.request, count: true}\n"
            "plans:\n  p:\n    charges:\n      - {meter: calls, model: llm, catalogue: llm/catalogue.yaml}\n"
        )
    before, after = (load_pricebook(tmp_path / name / "book.yaml", registry) for name in ("before", "after"))
    assert [c.detail for c in diff(before, after)] == [
        "charge calls.llm.USD: models.gpt-4o.prices.input_mtok: 2.5 -> 2.75"
    ]
