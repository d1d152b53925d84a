"""Which priced model an ``llm`` request is: by (provider, model), never by the order of a catalogue.

Issue 20, item 10: imported with ``--provider google`` before ``anthropic``,
Google's Claude entries took the plain names and ``model:
anthropic/claude-3-haiku`` was priced by Google's entry (0.11080865 instead of
0.13779805): the first match in catalogue order won and the event's
``provider`` was ignored.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from rating_plugins.llm import Llm

from rating.errors import EventError
from rating.events import UsageEvent
from rating.imports.genai_prices import catalogue_names, import_genai_prices
from rating.refusals import Refusal

genai_prices = pytest.importorskip("genai_prices")

AT = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
#: The issue's request: 134,947 one-hour cache writes, which Google's entry (no 1h price) prices as plain writes.
USAGE = {"input_tokens": 416_276, "cache_read_tokens": 35, "cache_write_tokens": 134_947,
         "cache_write_1h_tokens": 134_947, "output_tokens": 0}  # fmt: skip
ANTHROPIC, GOOGLE = D("0.13779805"), D("0.11080865")  # genai-prices' calc_price, provider_id anthropic / google


def charge(models: dict[str, Any], **options: Any) -> Llm:
    return Llm.model_validate({"meter": "calls", "model": "llm", "models": models, **options})


def request(**properties: Any) -> UsageEvent:
    return UsageEvent(id="r", customer="c", type="llm.request", timestamp=AT, properties=USAGE | properties)


def outcome(llm: Llm, **properties: Any) -> tuple[str, D | str]:
    """What pricing the request gives: (model key, amount), or ("refused", code)."""
    try:
        priced = llm.price_event(request(**properties), "USD")
    except EventError as error:
        return "refused", str(error.code)
    return priced.explanation.split(":")[0], priced.amount


@pytest.fixture(scope="module")
def imported() -> dict[str, Any]:
    return import_genai_prices(["google", "anthropic"], ["claude-3-haiku", "claude-3-5-haiku"]).models


def old_import(models: dict[str, Any]) -> dict[str, Any]:
    """The catalogue as the import wrote it before: google first took the plain names, anthropic's got prefixed."""
    by_provider = sorted(models.items(), key=lambda item: item[1]["provider"] != "google")
    return {key if value["provider"] == "google" else f"anthropic/{key.split('/')[-1]}": value
            for key, value in ((k.split("/")[-1], v) for k, v in by_provider)}  # fmt: skip


def test_the_issue_case_anthropic_claude_is_priced_by_anthropic_not_by_googles_entry(imported: dict[str, Any]) -> None:
    for models in (imported, old_import(imported)):
        llm = charge(models)
        assert outcome(llm, model="anthropic/claude-3-haiku")[1] == ANTHROPIC
        assert outcome(llm, model="claude-3-haiku-20240307", provider="anthropic")[1] == ANTHROPIC
        assert outcome(llm, model="claude-3-haiku", provider="Anthropic")[1] == ANTHROPIC
        assert outcome(llm, model="claude-3-haiku@20240307", provider="google")[1] == GOOGLE
    assert outcome(charge(imported), model="anthropic/claude-3-haiku") == ("anthropic/claude-3-haiku", ANTHROPIC)


def test_a_name_several_providers_serve_is_refused_unless_the_request_or_the_charge_names_one(
    imported: dict[str, Any],
) -> None:
    assert outcome(charge(imported), model="claude-3-haiku") == ("refused", Refusal.AMBIGUOUS_MODEL)
    assert outcome(charge(imported), model="claude-3-haiku-20240307") == ("refused", Refusal.AMBIGUOUS_MODEL)
    with pytest.raises(EventError, match="anthropic/claude-3-haiku, google/claude-3-haiku; name the provider"):
        charge(imported).price_event(request(model="claude-3-haiku"), "USD")
    by_default = charge(imported, provider="anthropic")
    assert outcome(by_default, model="claude-3-haiku") == ("anthropic/claude-3-haiku", ANTHROPIC)
    # the request's provider wins over the charge's default
    assert outcome(by_default, model="claude-3-haiku", provider="google") == ("google/claude-3-haiku", GOOGLE)


def test_a_provider_without_a_price_for_the_model_is_unknown_never_another_providers_price(
    imported: dict[str, Any],
) -> None:
    assert outcome(charge(imported), model="claude-3-haiku", provider="aws") == ("refused", Refusal.UNKNOWN_MODEL)
    generic = imported | {"haiku-any": {"match": {"contains": "haiku"}, "prices": {"input_mtok": "1"}}}
    # a model that names no provider prices whoever serves it, when that provider has no model of its own
    assert outcome(charge(generic), model="claude-3-haiku", provider="aws")[0] == "haiku-any"
    assert outcome(charge(generic), model="claude-3-haiku", provider="anthropic")[0] == "anthropic/claude-3-haiku"
    assert outcome(charge(imported), model="claude-3-haiku", provider=7) == ("refused", Refusal.MISSING_PROPERTY)


def test_overlapping_models_of_one_provider_are_ambiguous_whatever_their_order() -> None:
    models = {
        "gpt-4o": {"provider": "openai", "match": {"starts_with": "gpt-4o"}, "prices": {"input_mtok": "2.5"}},
        "mini": {"provider": "openai", "match": {"starts_with": "gpt-4o-mini"}, "prices": {"input_mtok": "0.15"}},
    }
    for ordered in (models, dict(reversed(models.items()))):
        assert outcome(charge(ordered), model="gpt-4o-mini-2024-07-18") == ("refused", Refusal.AMBIGUOUS_MODEL)
        assert outcome(charge(ordered), model="gpt-4o-2024-08-06")[0] == "gpt-4o"
        assert outcome(charge(ordered), model="mini")[0] == "mini"  # a key designates its model


def test_aliases_and_the_fallback_must_name_one_model(imported: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="'claude-3-haiku' fits anthropic/claude-3-haiku, google/claude"):
        charge(imported, aliases={"cheap": "claude-3-haiku"})
    assert charge(imported, aliases={"cheap": "claude-3-haiku"}, provider="anthropic").find("cheap") == (
        "anthropic/claude-3-haiku"
    )


def test_the_imported_catalogue_is_the_same_whatever_order_the_providers_come_in() -> None:
    first = import_genai_prices(["google", "anthropic", "openai"], ["claude-3-haiku", "gpt-4o", "gemini-2.5-pro"])
    second = import_genai_prices(["openai", "anthropic", "google"], ["claude-3-haiku", "gpt-4o", "gemini-2.5-pro"])
    assert list(first.models.items()) == list(second.models.items())
    assert {"anthropic/claude-3-haiku", "google/claude-3-haiku", "gpt-4o", "gemini-2.5-pro"} <= set(first.models)


SERVED = [("anthropic", "claude-3-haiku"), ("google", "claude-3-haiku"), ("openrouter", "anthropic/claude-3-haiku"),
          ("openai", "gpt-4o"), ("azure", "gpt-4o"), ("google", "gemini-2.5-pro")]  # fmt: skip


@given(st.permutations(SERVED))
def test_catalogue_names_are_unique_and_independent_of_order(models: list[tuple[str, str]]) -> None:
    names = catalogue_names(models)
    assert len(set(names.values())) == len(models)
    assert names == catalogue_names(sorted(models))
    assert names[("openai", "gpt-4o")] == "openai/gpt-4o" and names[("google", "gemini-2.5-pro")] == "gemini-2.5-pro"


#: Requests that probe every rule: exact keys, prefixed names, dated names, providers known, unknown and absent.
PROBES = [
    {"model": name} | ({"provider": provider} if provider else {})
    for name in ("claude-3-haiku", "claude-3-haiku-20240307", "anthropic/claude-3-haiku", "google/claude-3-haiku",
                 "claude-3-5-haiku-latest", "claude-3-5-haiku@20241022", "gemini-2.5-pro", "gpt-4o-2024-08-06",
                 "CLAUDE-3-HAIKU", "unknown-model")
    for provider in (None, "anthropic", "google", "openai", "aws")
]  # fmt: skip


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    return import_genai_prices(
        ["anthropic", "google", "openai"], ["claude-3-haiku", "claude-3-5-haiku", "claude-3-5-haiku-latest", "gpt-4o",
                                            "gemini-2.5-pro"]
    ).models  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(order=st.randoms(use_true_random=False), default=st.sampled_from([None, "anthropic", "google"]))
def test_no_price_depends_on_the_order_of_the_catalogue(catalogue: dict[str, Any], order: Any, default: Any) -> None:
    items = list(catalogue.items())
    shuffled = items[:]
    order.shuffle(shuffled)
    expected, permuted = charge(dict(items), provider=default), charge(dict(shuffled), provider=default)
    for probe in PROBES:
        assert outcome(permuted, **probe) == outcome(expected, **probe), probe


NAMES = ["m", "m-1", "m-10", "x/m", "n"]
CLAUSES = st.one_of(
    st.builds(lambda v: {"equals": v}, st.sampled_from(NAMES)),
    st.builds(lambda v: {"starts_with": v}, st.sampled_from(["m", "m-1", "x/"])),
    st.builds(lambda v: {"contains": v}, st.sampled_from(["m", "-1", "/"])),
)
MODELS = st.dictionaries(
    st.sampled_from(NAMES + ["a/m", "b/m", "other"]),
    st.fixed_dictionaries(
        {
            "provider": st.sampled_from([None, "a", "b"]),
            "match": st.one_of(st.none(), CLAUSES),
            "prices": st.builds(lambda p: {"input_mtok": str(p)}, st.integers(1, 9)),
        }
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(models=MODELS, order=st.randoms(use_true_random=False), default=st.sampled_from([None, "a", "b"]))
def test_any_hand_written_charge_prices_the_same_in_any_declared_order(
    models: dict[str, Any], order: Any, default: Any
) -> None:
    entries = {key: {k: v for k, v in spec.items() if v is not None} for key, spec in models.items()}
    items = list(entries.items())
    order.shuffle(items)
    expected, permuted = charge(entries, provider=default), charge(dict(items), provider=default)
    for name in NAMES + ["a/m", "b/m", "nothing"]:
        for provider in (None, "a", "b", "c"):
            probe = {"model": name} | ({"provider": provider} if provider else {})
            assert outcome(permuted, **probe) == outcome(expected, **probe), probe
