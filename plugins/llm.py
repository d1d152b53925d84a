"""``llm``: one model call priced from its token counts by kind, the way providers price them.

::

    meters:
      llm_calls: {event: llm.request, count: true}
    plans:
      pro:
        charges:
          - meter: llm_calls
            model: llm
            fallback: gpt-5-mini              # price an unknown model as this one (else: unknown_model)
            provider: anthropic               # who serves a request without provider when several could
            aliases: {fast: gpt-5-mini}       # gateway aliases: priced as their target
            models:
              claude-sonnet-4-5:
                provider: anthropic
                match: {starts_with: claude-sonnet-4-5}    # or equals, ends_with, contains, regex, or, and
                prices:                                    # per million tokens (genai-prices' price keys)
                  input_mtok: {base: "3", tiers: [{start: 200000, price: "6"}]}
                  output_mtok: {base: "15", tiers: [{start: 200000, price: "22.5"}]}
                  cache_read_mtok: "0.3"
                  cache_write_mtok: "3.75"
              deepseek-chat:
                prices: {input_mtok: "0.27", output_mtok: "1.10"}
                conditional:                               # the last one in force wins, else prices
                  - window: {start: "16:30", end: "00:30", zone: UTC}
                    prices: {input_mtok: "0.135", output_mtok: "0.55"}
                variants:                                  # per price key, the first that matches overrides
                  - {when: {service_tier: flex}, prices: {input_mtok: "0.1"}}
                minimum: "0.0001"                          # the least one request costs

An event carries ``model`` (the served model), optionally ``requested_model``
(what the client asked for; an alias names its target) and ``service_tier``,
and its counts named as genai-prices' ``Usage`` fields: ``input_tokens``
(cached tokens included, as providers report it), ``cache_read_tokens``,
``cache_write_tokens``, ``output_tokens``, ``input_audio_tokens``, ...

- **Hierarchical usage**: each priced kind is charged for what is left of it
  once the more specific kinds priced apart are taken out: plain input is input
  less cache reads less cache writes when both are priced; a model without a
  cache-write price charges cache writes at the input price.
- **Context tiers**: a price may be ``{base, tiers: [{start, price}]}``; the
  request's ``input_tokens`` (cached included) picks the tier whose ``start``
  it exceeds (strictly), for that price.
- **ConditionalPrices prices** take effect from a date (``from``, by the UTC date of
  the event) or in a daily time window (``window``, in an IANA zone, wrapping
  midnight when ``end`` is before ``start``).
- **Matching** never depends on the order models are declared in. A model
  fits a name by its key or its ``match`` clause (case-insensitive, ``regex``
  as written); a compact date suffix (``-20251211``) is also tried as
  ``-2025-12-11``. An event's ``provider`` keeps only that provider's models
  (or, when it has none that fit, the models that name no provider). A key
  equal to the name designates its model; otherwise models of several
  providers fitting a request without ``provider`` are settled by the charge's
  default ``provider:``, else refused ``ambiguous_model`` (as are several
  models of one provider fitting one name). An unknown model is refused with
  ``unknown_model`` unless ``fallback`` names a model.

Prices are exact: ``price x count / per`` in Decimal, never rounded here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import cache, lru_cache
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from rating_plugins.llm_units import UNITS

from rating.errors import EventError
from rating.events import UsageEvent
from rating.hookspecs import hookimpl
from rating.money import ZERO, format_decimal
from rating.periods import zone
from rating.pricebook.meters import event_quantity
from rating.pricebook.pricing import EventPrice, PerEventModel, Price, PricingModel
from rating.refusals import Refusal

#: usage key -> (price key, per, dimensions)
BY_USAGE = {usage: (key, per, dimensions) for key, (usage, per, dimensions) in UNITS.items()}
_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


class ContextTier(BaseModel):
    """The price that applies when the request's input tokens exceed ``start``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: int = Field(ge=0)
    price: Price


class ContextTiered(BaseModel):
    """A price by context size: ``base``, or the last tier whose ``start`` the input tokens exceed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: Price
    tiers: tuple[ContextTier, ...] = Field(min_length=1)

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: tuple[ContextTier, ...]) -> tuple[ContextTier, ...]:
        if any(later.start < earlier.start for earlier, later in zip(tiers, tiers[1:], strict=False)):
            raise ValueError("tiers must be in ascending order of start")
        return tiers

    def at(self, input_tokens: Decimal) -> Decimal:
        for tier in reversed(self.tiers):
            if input_tokens > tier.start:
                return tier.price
        return self.base


def _known_keys(prices: dict[str, Decimal | ContextTiered]) -> dict[str, Decimal | ContextTiered]:
    unknown = sorted(set(prices) - set(UNITS))
    if unknown:
        raise ValueError(
            f"unknown price keys {', '.join(unknown)} (known: input_mtok, output_mtok, cache_read_mtok, ...)"
        )
    return prices


#: Prices by price key (genai-prices' ``input_mtok``, ...), each a number or context tiers; unknown keys refused.
Prices = Annotated[dict[str, Price | ContextTiered], AfterValidator(_known_keys)]
#: A markup in percent, written ``20`` or ``"20%"``.
Markup = Annotated[Price, BeforeValidator(lambda v: v[:-1].strip() if isinstance(v, str) and v.endswith("%") else v)]


class TimeWindow(BaseModel):
    """A daily time window in a time zone; it wraps midnight when ``end`` is before ``start``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.time
    end: dt.time
    zone: str = "UTC"

    def active(self, at: dt.datetime) -> bool:
        local = at.astimezone(zone(self.zone)).time()
        if self.end < self.start:
            return local >= self.start or local < self.end
        return self.start <= local < self.end


class _When(BaseModel):
    """From a date (by the event's UTC date) and/or in a daily window."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    since: dt.date | None = Field(None, alias="from")
    window: TimeWindow | None = None
    prices: Prices

    def active(self, at: dt.datetime) -> bool:
        if self.since is not None and at.astimezone(dt.UTC).date() < self.since:
            return False
        return self.window is None or self.window.active(at)


class ConditionalPrices(_When):
    """Prices in force from a date or in a time window."""


class PriceVariant(_When):
    """Prices for requests whose properties match ``when`` (``service_tier: flex``), key by key."""

    when: dict[str, str] = Field(min_length=1)


class ModelMatch(BaseModel):
    """How a model name is recognised: exactly one of the clauses."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    equals: str | None = None
    starts_with: str | None = None
    ends_with: str | None = None
    contains: str | None = None
    regex: str | None = None
    any_of: tuple[ModelMatch, ...] | None = Field(None, alias="or")
    all_of: tuple[ModelMatch, ...] | None = Field(None, alias="and")

    @model_validator(mode="after")
    def _one_clause(self) -> ModelMatch:
        given = [name for name, value in self.__dict__.items() if value is not None]
        if len(given) != 1:
            raise ValueError("a match has exactly one of equals, starts_with, ends_with, contains, regex, or, and")
        return self

    def matches(self, name: str) -> bool:
        text = name.lower()
        if self.equals is not None:
            return text == self.equals.lower()
        if self.starts_with is not None:
            return text.startswith(self.starts_with.lower())
        if self.ends_with is not None:
            return text.endswith(self.ends_with.lower())
        if self.contains is not None:
            return self.contains.lower() in text
        if self.regex is not None:
            return re.search(self.regex, name) is not None
        if self.any_of is not None:
            return any(clause.matches(name) for clause in self.any_of)
        assert self.all_of is not None
        return all(clause.matches(name) for clause in self.all_of)


class PricedModel(BaseModel):
    """One model's prices, how its name is matched, and when other prices apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str | None = None
    match: ModelMatch | None = None
    prices: Prices
    conditional: tuple[ConditionalPrices, ...] = ()
    variants: tuple[PriceVariant, ...] = ()
    minimum: Price | None = Field(None, description="The least one request of this model costs.")

    @model_validator(mode="after")
    def _covered(self) -> PricedModel:
        for prices in [self.prices] + [c.prices for c in self.conditional]:
            problem = coverage_problem(prices)
            if problem:
                raise ValueError(problem)
        return self

    def prices_at(self, at: dt.datetime, context: Mapping[str, str]) -> Prices:
        """The prices in force for a request at ``at`` whose text properties are ``context``."""
        prices = next((c.prices for c in reversed(self.conditional) if c.active(at)), self.prices)
        overrides: Prices = {}
        for variant in self.variants:
            if variant.active(at) and all(context.get(k) == v for k, v in variant.when.items()):
                for key, price in variant.prices.items():
                    overrides.setdefault(key, price)
        return {**prices, **overrides}


def _within(outer: dict[str, str], inner: dict[str, str]) -> bool:
    """Whether a unit of dimensions ``inner`` is part of (or is) the unit of dimensions ``outer``."""
    return outer.items() <= inner.items()


def coverage_problem(prices: Prices) -> str | None:
    """Why these prices cannot price usage consistently (a part priced without its whole), or None."""
    return _coverage_problem(frozenset(prices))


@lru_cache(maxsize=4096)
def _coverage_problem(keys: frozenset[str]) -> str | None:
    priced = {UNITS[key][0]: UNITS[key][2] for key in keys}
    for usage, dims in sorted(priced.items()):
        missing = sorted(
            other
            for other, (_, _, d) in BY_USAGE.items()
            if other != usage and _within(d, dims) and other not in priced
        )
        if missing:
            return (
                f"{BY_USAGE[usage][0]} is priced but not {', '.join(BY_USAGE[m][0] for m in missing)}, which holds it"
            )
    names = sorted(priced)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            a, b = priced[first], priced[second]
            if any(b.get(k, v) != v for k, v in a.items()) or _within(a, b) or _within(b, a):
                continue
            join = {**a, **b}
            both = next((u for u, (_, _, d) in BY_USAGE.items() if d == join), None)
            if both is None or both not in priced:
                key = BY_USAGE[both][0] if both else "a price for their overlap"
                return f"{BY_USAGE[first][0]} and {BY_USAGE[second][0]} are priced, so {key} must be too"
    return None


class Llm(PerEventModel):
    """A model call priced from its token counts by kind (see the module)."""

    name = "llm"

    model: Literal["llm"]
    models: dict[str, PricedModel] = Field(min_length=1, description="Priced models by name.")
    fallback: str | None = Field(None, description="The model an unknown model is priced as; else refused.")
    aliases: dict[str, str] = Field(default_factory=dict, description="Gateway aliases: alias -> model name.")
    markup: Markup = Field(
        ZERO, description="Percent added to every price (sell prices from provider prices): 20 or 20%."
    )
    credit_rate: Price = Field(Decimal(1), description="Units of the charge's asset per unit of the prices' currency.")
    credit_rates: dict[str, Price] = Field(default_factory=dict, description="A credit rate per model, by name.")

    provider: str | None = Field(
        None,
        description="The provider that serves a request without `provider` when models of several providers fit "
        "its name (else the request is refused ambiguous_model).",
    )

    # names already matched, by (name, provider): the models they may be (bounded: names come from events)
    _found: dict[tuple[str, str | None, str | None], tuple[str, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _targets_exist(self) -> Llm:
        for name in [self.fallback, *self.aliases.values()]:
            if name is None:
                continue
            found = self.candidates(name)
            if len(found) != 1:
                which = f"fits {', '.join(found)}" if found else "is not one of the models"
                raise ValueError(f"{name!r} {which} (fallback and aliases name one priced model)")
        return self

    def check_inputs(self, event: UsageEvent) -> None:
        """Counts are whole and non-negative, and none exceeds a count it is part of (see :func:`check_counts`)."""
        check_counts(event)

    def find(self, name: str, provider: str | None = None) -> str | None:
        """The priced model a request for ``name`` served by ``provider`` is priced as, or None when none fits.

        Raises ``EventError`` (``ambiguous_model``) when several fit: see ``candidates``."""
        found = self.candidates(name, provider)
        if len(found) > 1:
            served = f" served by {provider}" if provider else ""
            providers = {_provider(self.models[key]) for key in found}
            hint = (
                "; name the provider in the request, or a default provider in the charge"
                if provider is None and len(providers) > 1
                else "; their matches overlap"
            )
            raise EventError(Refusal.AMBIGUOUS_MODEL, f"model {name!r}{served} fits {', '.join(found)}{hint}")
        return found[0] if found else None

    def candidates(self, name: str, provider: str | None = None) -> tuple[str, ...]:
        """The priced models a request for ``name`` (after aliases) served by ``provider`` may be: one, none, or
        several (ambiguous). Never depends on the order models are declared in:

        - the models that fit ``name``: its key equals the name (case-insensitive), or its ``match`` clause fits;
          if none does, the same for the name with a compact date suffix written with dashes;
        - a request's ``provider`` keeps the models of that provider, or when it has none, those naming no
          provider (they price whoever serves them);
        - a model whose key is the name is that model, whatever else fits (a key designates one model);
        - else, for a request without provider, the charge's default ``provider`` settles a tie among providers.
        """
        key = (name, provider, self.provider)  # the default too: model_copy shares this cache
        if key not in self._found:
            if len(self._found) >= 4096:  # event properties are unbounded: never grow without limit
                self._found.clear()
            self._found[key] = self._search(name, provider)
        return self._found[key]

    def _search(self, name: str, provider: str | None) -> tuple[str, ...]:
        wanted = provider.lower() if provider is not None else None
        for candidate in dict.fromkeys([name, _COMPACT_DATE.sub(_dashed, name)]):
            target = self.aliases.get(candidate, candidate)
            fitting = [key for key, spec in self.models.items() if _fits(key, spec, target)]
            if wanted is not None:
                own = [key for key in fitting if _provider(self.models[key]) == wanted]
                fitting = own or [key for key in fitting if self.models[key].provider is None]
            if not fitting:
                continue
            exact = [key for key in fitting if key.lower() == target.lower()]
            if len(exact) == 1:
                return tuple(exact)
            if wanted is None and self.provider is not None and len({_provider(self.models[k]) for k in fitting}) > 1:
                preferred = [key for key in fitting if _provider(self.models[key]) == self.provider.lower()]
                fitting = preferred or fitting
            return tuple(sorted(fitting))
        return ()

    def price_event(self, event: UsageEvent, asset: str) -> EventPrice:
        served = event.properties.get("model")
        if not isinstance(served, str) or not served:
            raise EventError(Refusal.MISSING_PROPERTY, "missing property 'model' (the llm charge prices by it)")
        provider = event.properties.get("provider")
        if provider is not None and (not isinstance(provider, str) or not provider):
            raise EventError(Refusal.MISSING_PROPERTY, "property 'provider' must be a provider's name (text)")
        key, note = self.find(served, provider), ""
        if key is None:
            if self.fallback is None:
                at = f" at {provider}" if provider else ""
                raise EventError(
                    Refusal.UNKNOWN_MODEL, f"model {served!r}{at} has no price and the charge has no fallback"
                )
            key, note = self.find(self.fallback), f"{served} has no price, priced as the fallback; "
            assert key is not None  # the validator checked that the fallback is priced
        spec = self.models[key]
        context = {name: value for name, value in event.properties.items() if isinstance(value, str)}
        prices = spec.prices_at(event.timestamp, context)
        problem = coverage_problem(prices)
        if problem:
            raise EventError(Refusal.NOT_EXACT, f"{key}: the prices in force are inconsistent: {problem}")
        amount, parts = ZERO, []
        counts = leaf_counts(event, prices)
        input_tokens = (
            reported(event, "input_tokens") if any(isinstance(p, ContextTiered) for p in prices.values()) else ZERO
        )
        for price_key, price in prices.items():
            usage, per, _ = UNITS[price_key]
            count = counts.get(usage, ZERO)
            if count:
                unit_price = price.at(input_tokens) if isinstance(price, ContextTiered) else price
                amount += unit_price * count / per
                parts.append(f"{format_decimal(count)} {usage} x {format_decimal(unit_price)}/{per:,}")
        text = f"{note}{key}: {' + '.join(parts) or 'no priced usage'} = {format_decimal(amount)}"
        minimum = spec.minimum if spec.minimum is not None else ZERO
        raised = amount < minimum
        if raised:
            amount, text = minimum, f"{text} (under the minimum {format_decimal(minimum)})"
        factor = (1 + self.markup / 100) * self.credit_rates.get(key, self.credit_rate)
        if factor != 1:
            amount *= factor
            text += f" x {format_decimal(factor)}"
        text += f" = {format_decimal(amount)} {asset}" if raised or factor != 1 else f" {asset}"
        requested = event.properties.get("requested_model")
        if isinstance(requested, str) and requested != served:
            text = f"requested {requested}, served {served}; {text}"
        return EventPrice(amount, text)


def _fits(key: str, spec: PricedModel, name: str) -> bool:
    """Whether the model ``key`` fits ``name``: by its key (case-insensitive), or by its match clause."""
    return key.lower() == name.lower() or (spec.match is not None and spec.match.matches(name))


def _provider(spec: PricedModel) -> str | None:
    return spec.provider.lower() if spec.provider is not None else None


def _dashed(match: re.Match[str]) -> str:
    year, month, day = (int(match.group(index)) for index in range(2, 5))
    try:
        dt.date(year, month, day)
    except ValueError:
        return match.group(0)
    return f"-{year:04d}-{month:02d}-{day:02d}"


@cache
def _parts_of(usage: str) -> tuple[str, ...]:
    """The usage kinds that are part of ``usage`` (not itself)."""
    dims = BY_USAGE[usage][2]
    return tuple(other for other, (_, _, d) in BY_USAGE.items() if other != usage and _within(dims, d))


@cache
def _overlaps_of(usage: str) -> tuple[tuple[str, str], ...]:
    """The pairs of kinds that overlap exactly in ``usage`` (cache reads and audio input: cached audio)."""
    dims, names = BY_USAGE[usage][2], sorted(BY_USAGE)
    pairs = []
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            a, b = BY_USAGE[first][2], BY_USAGE[second][2]
            compatible = all(b.get(k, v) == v for k, v in a.items()) and not (_within(a, b) or _within(b, a))
            if compatible and {**a, **b} == dims:
                pairs.append((first, second))
    return tuple(pairs)


def reported(event: UsageEvent, usage: str) -> Decimal:
    """A count the event reports, or what it must be when it does not (0, unless a part of it is reported)."""
    properties = event.properties
    if usage in properties:
        return event_quantity(event, usage)
    parts = [other for other in _parts_of(usage) if other in properties and event_quantity(event, other) > 0]
    if parts:
        raise EventError(
            Refusal.MISSING_PROPERTY, f"{', '.join(sorted(parts))} reported without {usage}, which holds them"
        )
    for first, second in _overlaps_of(usage):
        both = first in properties and second in properties
        if both and event_quantity(event, first) > 0 and event_quantity(event, second) > 0:
            raise EventError(
                Refusal.MISSING_PROPERTY, f"{first} and {second} overlap: report {usage}, the tokens they share"
            )
    return ZERO


def check_counts(event: UsageEvent) -> None:
    """Refuse (``invalid_quantity``) usage an event reports that no provider could: a count (tokens, characters,
    pages, searches ...; durations aside) that is not a whole non-negative number, or a specific count greater
    than a count it is part of (``input_audio_tokens`` > ``input_tokens``), whether or not the charge prices it."""
    properties = event.properties
    reported_ = {usage: event_quantity(event, usage) for usage in properties if usage in BY_USAGE}
    for usage, count in reported_.items():
        if BY_USAGE[usage][2]["family"] != "durations" and count != count.to_integral_value():
            raise EventError(Refusal.INVALID_QUANTITY, f"{usage} must be a whole number, got {properties[usage]}")
    for usage, count in reported_.items():
        for part in _parts_of(usage):
            if part in reported_ and reported_[part] > count:
                raise EventError(
                    Refusal.INVALID_QUANTITY,
                    f"{part} ({format_decimal(reported_[part])}) is more than {usage} ({format_decimal(count)}),"
                    " which holds it",
                )


@lru_cache(maxsize=4096)
def _leaf_order(keys: frozenset[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The priced usage kinds, most specific first, each with the priced kinds that are part of it."""
    priced = sorted({UNITS[key][0] for key in keys}, key=lambda usage: (-len(BY_USAGE[usage][2]), usage))
    return tuple((usage, tuple(other for other in _parts_of(usage) if other in priced)) for usage in priced)


def leaf_counts(event: UsageEvent, prices: Prices) -> dict[str, Decimal]:
    """Per priced usage kind, what is left of it once the more specific priced kinds are taken out."""
    leaves: dict[str, Decimal] = {}
    for usage, priced_parts in _leaf_order(frozenset(prices)):
        if usage == "requests":
            leaves[usage] = Decimal(1)
            continue
        parts = sum((leaves[o] for o in priced_parts), ZERO)
        leaf = reported(event, usage) - parts
        if leaf < 0:
            raise EventError(
                Refusal.INVALID_QUANTITY, f"the parts of {usage} reported add up to more than it ({parts})"
            )
        leaves[usage] = leaf
    return leaves


@hookimpl
def rating_pricing_models() -> list[type[PricingModel]]:
    return [Llm]
