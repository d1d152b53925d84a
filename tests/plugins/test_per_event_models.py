"""Per-event models: percentage fees and LLM requests, priced from each event's properties, exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from pydantic import ValidationError
from rating_plugins.llm import Llm
from rating_plugins.per_unit import PerUnit
from rating_plugins.percentage import Percentage
from rating_plugins.tiered import Tiered

from rating.engine import Engine
from rating.errors import EventError, PricebookError
from rating.events import UsageEvent
from rating.refusals import Refusal
from rating.storage.memory import MemoryStorage
from rating.testing import check_per_event_model, check_period_model

AT = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
FEE = Percentage(meter="payments", model="percentage", of="amount", percent=D("2.9"), fixed=D("0.30"),
                 minimum=D("0.50"), maximum=D("10"))  # fmt: skip
SONNET = {
    "provider": "anthropic",
    "match": {"starts_with": "claude-sonnet-4-5"},
    "prices": {
        "input_mtok": {"base": "3", "tiers": [{"start": 200000, "price": "6"}]},
        "output_mtok": {"base": "15", "tiers": [{"start": 200000, "price": "22.5"}]},
        "cache_read_mtok": "0.3",
        "cache_write_mtok": "3.75",
    },
}
LLM = Llm.model_validate(
    {
        "meter": "calls",
        "model": "llm",
        "aliases": {"fast": "mini"},
        "models": {
            "claude-sonnet-4-5": SONNET,
            "mini": {"prices": {"input_mtok": "0.25", "output_mtok": "2"}, "minimum": "0.0001"},
            "deepseek-chat": {
                "prices": {"input_mtok": "0.27", "output_mtok": "1.10"},
                "conditional": [
                    {
                        "window": {"start": "16:30", "end": "00:30"},
                        "prices": {"input_mtok": "0.135", "output_mtok": "0.55"},
                    }
                ],
                "variants": [{"when": {"service_tier": "flex"}, "prices": {"input_mtok": "0.1"}}],
            },
        },
    }
)


def call(at: dt.datetime = AT, **properties: object) -> UsageEvent:
    return UsageEvent(id="r", customer="acme", type="llm.request", timestamp=at, properties=properties)


def payment(amount: str, **more: object) -> UsageEvent:
    return UsageEvent(id="p", customer="acme", type="payment", timestamp=AT, properties={"amount": amount, **more})


@pytest.mark.parametrize(
    # An amount of zero is no transaction: it pays neither the fixed part nor the minimum (issue 25).
    ("amount", "fee"),
    [("100.00", D("3.200")), ("1", D("0.50")), ("1000", D("10")), ("0", D("0"))],
)
def test_a_percentage_fee_has_a_fixed_part_a_minimum_and_a_maximum(amount: str, fee: D) -> None:
    priced = FEE.price_event(payment(amount), "USD")
    assert priced.amount == fee and str(fee) in priced.explanation


def test_a_percentage_of_an_amount_in_another_currency_is_refused() -> None:
    with pytest.raises(EventError) as refused:
        FEE.price_event(payment("10", currency="EUR"), "USD")
    assert refused.value.code == Refusal.CURRENCY_MISMATCH
    with pytest.raises(EventError) as missing:
        FEE.price_event(UsageEvent(id="p", customer="a", type="payment", timestamp=AT), "USD")
    assert missing.value.code == Refusal.MISSING_PROPERTY


def test_cache_reads_and_writes_are_taken_out_of_the_input_tokens_they_are_part_of() -> None:
    priced = LLM.price_event(
        call(model="claude-sonnet-4-5", input_tokens=1000, cache_read_tokens=300, cache_write_tokens=200,
             output_tokens=100),
        "USD",
    )  # fmt: skip
    # 500 plain input x 3 + 300 x 0.3 + 200 x 3.75 + 100 x 15, per million tokens
    assert priced.amount == (500 * D(3) + 300 * D("0.3") + 200 * D("3.75") + 100 * D(15)) / 1_000_000


def test_without_a_cache_write_price_cache_writes_pay_the_input_price() -> None:
    priced = LLM.price_event(call(model="mini", input_tokens=1000, cache_write_tokens=400, output_tokens=0), "USD")
    assert priced.amount == 1000 * D("0.25") / 1_000_000


@pytest.mark.parametrize(("tokens", "input_price"), [(199_999, D(3)), (200_000, D(3)), (200_001, D(6))])
def test_a_context_tier_switches_when_the_input_exceeds_its_start(tokens: int, input_price: D) -> None:
    output_price = D(15) if input_price == 3 else D("22.5")
    priced = LLM.price_event(call(model="claude-sonnet-4-5-20250929", input_tokens=tokens, output_tokens=10), "USD")
    assert priced.amount == (tokens * input_price + 10 * output_price) / 1_000_000


@pytest.mark.parametrize(
    ("at", "tier", "input_price"),
    [
        (dt.datetime(2026, 11, 23, 16, 29, tzinfo=dt.UTC), None, D("0.27")),
        (dt.datetime(2026, 11, 23, 16, 30, tzinfo=dt.UTC), None, D("0.135")),
        (dt.datetime(2026, 11, 24, 0, 29, tzinfo=dt.UTC), None, D("0.135")),  # the window wraps midnight
        (dt.datetime(2026, 11, 24, 0, 30, tzinfo=dt.UTC), None, D("0.27")),
        (dt.datetime(2026, 11, 24, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))), None, D("0.27")),
        (dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))), None, D("0.135")),
        (AT, "flex", D("0.1")),
    ],
)
def test_time_windows_and_service_tiers_pick_the_prices(at: dt.datetime, tier: str | None, input_price: D) -> None:
    properties = {"model": "deepseek-chat", "input_tokens": 1000} | ({"service_tier": tier} if tier else {})
    assert LLM.price_event(call(at, **properties), "USD").amount == 1000 * input_price / 1_000_000


def test_models_are_matched_by_alias_dated_name_and_pattern_and_an_unknown_one_is_refused() -> None:
    assert LLM.find("fast") == "mini"
    assert LLM.find("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert LLM.find("DeepSeek-Chat") == "deepseek-chat"
    assert LLM.find("gpt-9") is None
    with pytest.raises(EventError) as refused:
        LLM.price_event(call(model="gpt-9", input_tokens=1), "USD")
    assert refused.value.code == Refusal.UNKNOWN_MODEL
    fallback = LLM.model_copy(update={"fallback": "mini"})
    priced = fallback.price_event(call(model="gpt-9", requested_model="fast", input_tokens=100), "USD")
    assert priced.amount == D("0.0001")  # under mini's minimum
    assert "requested fast, served gpt-9" in priced.explanation and "priced as the fallback" in priced.explanation


def test_inconsistent_usage_and_prices_are_refused() -> None:
    with pytest.raises(EventError) as refused:
        LLM.price_event(call(model="claude-sonnet-4-5", input_tokens=10, cache_read_tokens=20), "USD")
    assert refused.value.code == Refusal.INVALID_QUANTITY
    with pytest.raises(ValidationError, match="cache_read_mtok is priced but not input_mtok"):
        Llm.model_validate({"meter": "c", "model": "llm", "models": {"x": {"prices": {"cache_read_mtok": "1"}}}})
    with pytest.raises(ValidationError, match="unknown price keys bogus_mtok"):
        Llm.model_validate({"meter": "c", "model": "llm", "models": {"x": {"prices": {"bogus_mtok": "1"}}}})


def test_per_event_models_refuse_options_they_do_not_honour() -> None:
    with pytest.raises(ValidationError, match="does not take included"):
        Percentage(meter="p", model="percentage", of="amount", percent=D(1), included=D(5))


def test_the_engine_caps_a_per_event_charge_on_its_running_total(book, registry) -> None:  # type: ignore[no-untyped-def]
    text = """\
pricebook: fees
version: 2026-11-01
currency: USD
meters:
  payments: {event: payment, count: true}
plans:
  shop:
    charges:
      - {meter: payments, model: percentage, of: amount, percent: "10", cap: "25"}
default_plan: shop
"""
    engine = Engine(book(text), MemoryStorage(), registry)
    amounts = [
        engine.rate(UsageEvent(id=f"p{i}", customer="a", type="payment", timestamp=AT, properties={"amount": "100"}))
        for i in range(3)
    ]
    assert [r.charges[0].amount for r in amounts if r] == [D("10.0"), D("10.0"), D("5.0")]
    assert amounts[2].charges[0].explanation == "10% of 100 USD = 10 USD; with the 25 USD period cap: 5 USD"  # type: ignore[union-attr]


def test_a_per_event_charge_needs_a_count_meter(book) -> None:  # type: ignore[no-untyped-def]
    text = """\
pricebook: fees
version: 2026-11-01
currency: USD
meters:
  payments: {event: payment, sum: amount}
plans:
  shop:
    charges:
      - {meter: payments, model: percentage, of: amount, percent: "10"}
"""
    with pytest.raises(PricebookError, match="count: true"):
        book(text)


def test_the_built_in_models_pass_the_conformance_kit() -> None:
    quantities = [D(0), D("0.5"), D(999), D(1000), D(1001), D(12_345)]
    check_period_model(
        PerUnit(meter="m", model="per_unit", unit_price=D("0.3"), by_group={"x": {"unit_price": "1"}}), quantities
    )
    tiers = [{"up_to": "1000", "unit_price": "0.01"}, {"unit_price": "0.005"}]
    check_period_model(Tiered(meter="m", model="tiered", mode="graduated", tiers=tiers), quantities)
    check_per_event_model(FEE, [payment(a) for a in ("0", "1", "17.25", "5000")])
    allowance = FEE.model_copy(update={"free_events": 2, "free_amount": D("10")})
    check_per_event_model(allowance, [payment(a) for a in ("0", "1", "17.25", "5000")])
    check_per_event_model(LLM, [call(model="deepseek-chat", input_tokens=n, output_tokens=n) for n in (0, 1, 10**6)])


def test_the_conformance_kit_catches_a_model_whose_steps_do_not_add_up() -> None:
    class Drifting(PerUnit):
        def charge(self, before: D, after: D) -> D:
            return super().charge(before, after) + D("0.001")

    with pytest.raises(AssertionError, match="add up"):
        check_period_model(Drifting(meter="m", model="per_unit", unit_price=D(1)), [D(0), D(1), D(2)])
