"""The base of every pricing model: parameters (pydantic) plus a period price function.

A pricing model defines ``period_price(q)``: the total charge for a period in
which the meter's aggregate is ``q``. The charge for one event is
``period_price(after) - period_price(before)``, so the charges of a period always
add up exactly to the price of its total, in any order and any split.

Options every charge has, whatever its model (each keeps that property):

- ``included``: an allowance; the model prices ``max(0, q - included)``; with
  ``rollover: true`` what the previous period left unused is added to it (one
  period back, no chaining).
- ``by_group``: parameter overrides for one group of the meter
  (``{gpt-5: {price: "10"}}``; several group values are joined with ``/``).
- ``discounts``: volume discounts on the charge's period total, e.g. 5% off
  what exceeds 10,000 and 10% off what exceeds 50,000 (graduated);
- ``cap``: the most the charge adds up to per customer and period, across
  groups. With discounts or a cap the engine keeps the charge's running
  total ``R`` as period state and charges ``F(after) - F(before)`` with
  ``F(R) = min(cap, R - discounts(R))``: still exact and order-independent.
- ``asset``: post the charge in another asset than the pricebook currency,
  such as ``CREDITS``;
- ``billing_sources``: which events the charge prices, ``[platform]`` by
  default. A ``byok`` event (the buyer's own provider key) is metered like any
  other, in state of its own, but pays only charges that list ``byok`` (a
  platform fee, say), never the model cost.

Plugins subclass :class:`PricingModel`, give it a ``name`` and a
``model: Literal["name"]`` field, and return the class from the
``rating_pricing_models`` hook. A model whose price depends on each event's
properties rather than on the period's total (a percentage of a payment, an
LLM request priced by its token counts) subclasses :class:`PerEventModel`
instead. A model may not declare a parameter named like one of the common
options above: the registry refuses it (it would silently switch the option on).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from rating.money import ZERO, Percent, bounded, format_decimal, to_decimal
from rating.pricebook.meters import Meter

if TYPE_CHECKING:
    from rating.events import UsageEvent

#: A price or quantity in a pricebook: Decimal from its text; floats and bools are errors.
Price = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(bounded), Field(ge=0)]
PositiveQuantity = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(bounded), Field(gt=0)]

#: The options of the base class, which ``by_group`` overrides may not change.
COMMON_OPTIONS = frozenset(
    {
        "id",
        "meter",
        "model",
        "description",
        "included",
        "rollover",
        "cap",
        "discounts",
        "asset",
        "billing_sources",
        "by_group",
        "display",
        "per",
        "tax_category",
    }
)

#: What a pricebook may say to name a meter or a charge on invoices: one text, or a text per language.
DisplayName = str | dict[str, str]


def check_display(value: Any) -> DisplayName | None:
    """``value`` if it is a non-empty text or a mapping of two-letter language codes to non-empty texts (a
    ``ValueError`` in one line says what is wrong otherwise)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty")
        return value
    if not isinstance(value, dict):
        raise ValueError("must be a text, or a mapping of language to text such as {en: Input tokens}")
    if not value:
        raise ValueError("needs at least one language, e.g. {en: Input tokens, de: Eingabe-Tokens}")
    for language, text in value.items():
        if not (isinstance(language, str) and len(language) == 2 and language.isascii() and language.isalpha()):
            raise ValueError(f"{language!r} is not a two-letter language code such as en or de")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"the text for {language} must be a non-empty text")
    return {language.lower(): text for language, text in value.items()}


def display_name(display: DisplayName | None, fallback: str, language: str = "en") -> str:
    """How an invoice in ``language`` names what ``display`` names: its text in that language (else English,
    else its first), or ``fallback`` humanised (``input_tokens`` is "Input tokens") when there is none."""
    if isinstance(display, str):
        return display
    if display:
        return display.get(language) or display.get("en") or next(iter(display.values()))
    words = fallback.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else fallback


class PriceStep(NamedTuple):
    """One part of a period price, as an invoice line shows it.

    ``kind``: ``included`` (units the allowance covered, at no charge), ``units`` (billable units at one price),
    ``tier`` (a graduated tier's units at its price), ``volume`` (every billable unit at the price of the tier
    the period total fell in), ``flat_fee`` (a tier's flat fee; no quantity). ``tier`` counts from 1; ``lower``
    (exclusive) and ``upper`` (inclusive; None on the open last tier) bound the tier's billable quantities.
    """

    kind: Literal["included", "units", "tier", "volume", "flat_fee"]
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal
    tier: int | None = None
    lower: Decimal | None = None
    upper: Decimal | None = None


class Discount(BaseModel):
    """``percent`` off the part of a charge's period total above ``above``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    above: Annotated[Decimal, BeforeValidator(to_decimal), Field(ge=0)] = Field(description="Threshold amount.")
    percent: Percent = Field(gt=0, description="Discount on what exceeds the threshold, in percent.")


def group_label(group: tuple[str, ...]) -> str:
    """How a group is named in ``by_group``: its values joined with ``/``."""
    return "/".join(group)


class PricingModel(BaseModel):
    """Parameters of one charge in a plan, and how it prices a period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The name pricebooks use in ``model:``; unique across all plugins.
    name: ClassVar[str] = ""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")] | None = Field(
        None,
        description="Stable identity of the charge across versions; (meter, model, asset) when absent. "
        "Running totals of caps and discounts are kept under it.",
    )
    meter: str = Field(description="Name of the meter this charge prices.")
    model: str = Field(description="Name of the pricing model.")
    description: str | None = Field(None, description="Label shown on statements.")
    included: Price = Field(ZERO, description="Units of the meter included each period before this charge applies.")
    rollover: bool = Field(False, description="Unused allowance of the previous period adds to this period's.")
    cap: Price | None = Field(None, description="Most this charge adds up to per customer and period.")
    discounts: tuple[Discount, ...] = Field((), description="Volume discounts on this charge's period total.")
    asset: str | None = Field(None, description="Asset the charge is posted in; the pricebook currency by default.")
    billing_sources: tuple[Literal["platform", "byok"], ...] = Field(
        ("platform",),
        min_length=1,
        description="Events this charge prices: platform-billed (default) and/or byok, the buyer's own provider key.",
    )
    by_group: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Parameter overrides per group of the meter, e.g. {gpt-5: {price: '10'}}."
    )
    display: Annotated[DisplayName | None, BeforeValidator(check_display)] = Field(
        None,
        description="Name on invoices: a text, or a text per language ({en: Input tokens, de: Eingabe-Tokens});"
        " the meter's display name (or its id, humanised) by default.",
    )
    per: Literal[1, 1000, 1000000] | None = Field(
        None, description="Invoices show the unit price per 1,000 or per 1,000,000 units (display only)."
    )
    tax_category: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")] | None = Field(
        None, description="Tax category of the charge's invoice lines; the meter's, else the invoice's one category."
    )

    _variants: dict[str, PricingModel] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_variants(self) -> PricingModel:
        for label, overrides in self.by_group.items():
            fixed = COMMON_OPTIONS.intersection(overrides)
            if fixed:
                raise ValueError(f"by_group.{label} may only override the model's own parameters, not {sorted(fixed)}")
            self._variants[label] = self.variant(overrides)
        return self

    def variant(self, overrides: dict[str, Any]) -> PricingModel:
        """This charge with some parameters replaced (raises ValidationError if they are invalid)."""
        data = self.model_dump(exclude={"by_group"}, exclude_defaults=True) | {"model": self.model}
        return type(self).model_validate(data | overrides)

    def with_carry(self, previous_quantity: Decimal) -> PricingModel:
        """This charge with the allowance the previous period left unused added (for ``rollover``)."""
        carry = self.included - previous_quantity if previous_quantity < self.included else ZERO
        return self.model_copy(update={"included": self.included + carry}) if carry else self

    def for_group(self, group: tuple[str, ...]) -> PricingModel:
        """The model that prices ``group``: its ``by_group`` variant, or this one."""
        if not self.by_group:  # a plain field: private attributes are slow to reach on the hot path
            return self
        return self._variants.get(group_label(group), self)

    def identity(self, currency: str) -> str:
        """The charge's stable identity: its ``id``, or what it is (meter, model, asset), never its position."""
        return self.id or f"{self.meter}.{self.model}.{self.asset or currency}"

    @property
    def tracks_total(self) -> bool:
        """Whether the engine must keep this charge's running period total (for discounts or a cap)."""
        return self.cap is not None or bool(self.discounts)

    def adjusted_total(self, total: Decimal) -> Decimal:
        """What a period total ``total`` of this charge comes to after its discounts and cap."""
        for discount in self.discounts:
            if total > discount.above:
                total -= (total - discount.above) * discount.percent.scaleb(-2)
        return total if self.cap is None else min(self.cap, total)

    def period_price(self, quantity: Decimal) -> Decimal:
        """Total charge for a period whose billable aggregate (allowance deducted) is ``quantity``."""
        raise NotImplementedError

    def billable(self, quantity: Decimal) -> Decimal:
        """The part of the period aggregate beyond the allowance."""
        return quantity - self.included if quantity > self.included else ZERO

    def charge(self, before: Decimal, after: Decimal) -> Decimal:
        """Charge for moving the period aggregate from ``before`` to ``after`` (before any cap)."""
        if self.included:
            before, after = self.billable(before), self.billable(after)
        return self.period_price(after) - self.period_price(before)

    def price_per_unit(self, before: Decimal, after: Decimal) -> Decimal | None:
        """The single price per unit of a billable step, or None when no single price applies."""
        return None

    def billable_steps(self, quantity: Decimal) -> tuple[PriceStep, ...] | None:
        """``period_price(quantity)`` as the steps an invoice shows, their amounts adding up to it exactly; None
        when the model cannot say (then the invoice shows one line). By default one step at
        :meth:`price_per_unit`, when a single price applies to the whole period."""
        if quantity <= 0:
            return ()
        price = self.price_per_unit(ZERO, quantity)
        if price is None or quantity * price != self.period_price(quantity):
            return None
        return (PriceStep("units", quantity, price, quantity * price),)

    def steps(self, quantity: Decimal) -> tuple[PriceStep, ...] | None:
        """The price of a period whose aggregate is ``quantity`` as steps: what the allowance covered (an
        ``included`` step at no charge), then :meth:`billable_steps` of the rest; None when the model cannot say."""
        billable = self.billable(quantity)
        steps = self.billable_steps(billable)
        if steps is None:
            return None
        covered = quantity - billable
        return ((PriceStep("included", covered, None, ZERO),) if covered > 0 else ()) + steps

    def unit_price_of(self, before: Decimal, after: Decimal) -> Decimal | None:
        """:meth:`price_per_unit` of a step, or None when the allowance covered any of it."""
        if before < self.included:
            return None
        return self.price_per_unit(self.billable(before), self.billable(after))

    def meter_problem(self, meter: Meter) -> str | None:
        """Why ``meter`` cannot be priced by this model, or None when it can."""
        return None

    def explain(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        """One line a customer can check by hand: how ``amount`` follows from billable quantities."""
        return (
            f"period {unit} {format_decimal(before)} -> {format_decimal(after)}: "
            f"{format_decimal(self.period_price(after))} - {format_decimal(self.period_price(before))} "
            f"= {format_decimal(amount)} {asset}"
        )

    def describe(self, before: Decimal, after: Decimal, amount: Decimal, unit: str, asset: str) -> str:
        """:meth:`explain` of the billable part, preceded by what the allowance covered."""
        if not self.included:
            return self.explain(before, after, amount, unit, asset)
        low, high = self.billable(before), self.billable(after)
        covered = (after - before) - (high - low)
        parts = []
        if covered:
            parts.append(f"{format_decimal(covered)} {unit} within the {format_decimal(self.included)} included")
        if high != low or not covered:
            parts.append(self.explain(low, high, amount, unit, asset))
        else:
            parts.append(f"charge {format_decimal(amount)} {asset}")
        return "; ".join(parts)


def explain_linear(quantity: Decimal, unit: str, price: Decimal, amount: Decimal, asset: str) -> str:
    """``1,200 input_tokens x 0.0000025 USD = 0.0030000 USD``."""
    return f"{format_decimal(quantity)} {unit} x {format_decimal(price)} {asset} = {format_decimal(amount)} {asset}"


def invalid_overrides(model: type[PricingModel], charge: dict[str, Any]) -> dict[str, ValidationError]:
    """Validation errors of each ``by_group`` entry of a raw charge mapping, by group label.

    The loader calls this before validating the charge, so that an invalid
    override is reported at its own line rather than at the charge.
    """
    base = {k: v for k, v in charge.items() if k != "by_group"}
    overrides = charge.get("by_group")
    errors = {}
    for label, values in overrides.items() if isinstance(overrides, dict) else []:
        if not isinstance(values, dict):
            continue
        try:
            model.model_validate(base | {k: v for k, v in values.items() if k not in COMMON_OPTIONS})
        except ValidationError as error:
            errors[str(label)] = error
    return errors


class EventPrice(NamedTuple):
    """What a per-event model charges for one event, and how, in one line a customer can check."""

    amount: Decimal
    explanation: str
    unit_price: Decimal | None = None


class PerEventModel(PricingModel):
    """A model that prices each event from that event's properties, exactly, with its own explanation.

    The charge of an event is :meth:`price_event`, not a step of a period price.
    It hangs on a meter that counts the event type (``count: true``). ``cap``
    applies to the charge's running total as for every model; ``included``,
    ``rollover`` and ``discounts`` are refused when the pricebook is checked,
    unless the model lists them in :attr:`honours` and applies them itself.
    """

    #: The common options this model applies itself (``included``, ``rollover``, ``discounts``).
    honours: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_what_it_does_not_honour(self) -> PerEventModel:
        used = {"included": bool(self.included), "rollover": self.rollover, "discounts": bool(self.discounts)}
        refused = sorted(option for option, set_ in used.items() if set_ and option not in self.honours)
        if refused:
            raise ValueError(f"the per-event model {self.name} does not take {', '.join(refused)}")
        return self

    def price_event(self, event: UsageEvent, asset: str) -> EventPrice:
        """Price one event from its properties, in ``asset``: an exact Decimal amount and its explanation.

        Raise :class:`~rating.errors.EventError` (with a :class:`~rating.refusals.Refusal`)
        for an event it cannot price, such as a missing or invalid property.
        """
        raise NotImplementedError

    @property
    def kept(self) -> tuple[str, ...]:
        """The period quantities this charge keeps to price its events (free transactions used, say); none by
        default. A charge that keeps any prices each event by what came before it in its period, so its bill
        depends on time order: the engine re-prices a period in place when an event arrives late in it."""
        return ()

    def price_in_period(
        self, event: UsageEvent, asset: str, used: Mapping[str, Decimal]
    ) -> tuple[EventPrice, dict[str, Decimal]]:
        """Price one event by the period quantities :attr:`kept` as earlier events of the period left them
        (``used``), and return them as this event leaves them. Only called when :attr:`kept` names any."""
        raise NotImplementedError

    def check_inputs(self, event: UsageEvent) -> None:
        """Refuse an event being rated whose properties this model reads are not what it accepts.

        Called when an event is rated (and quoted), never on events already stored,
        so that rerate and simulation price what was accepted then. Raise
        :class:`~rating.errors.EventError`; the default accepts what :meth:`price_event` can price.
        """

    def period_price(self, quantity: Decimal) -> Decimal:
        raise TypeError(f"{self.name} prices each event, not a period total")

    def billable_steps(self, quantity: Decimal) -> tuple[PriceStep, ...] | None:
        return None  # each event has its own price: no period steps

    def meter_problem(self, meter: Meter) -> str | None:
        if meter.aggregation != "count":
            return f"{self.name} prices each event: give it a meter that counts the event type (count: true)"
        return None


def declared_common_options(model: type[PricingModel]) -> set[str]:
    """The common options a model class redeclares as parameters of its own (``model`` aside)."""
    declared: set[str] = set()
    for cls in model.__mro__:
        if cls in (PricingModel, PerEventModel) or not issubclass(cls, PricingModel):
            continue
        declared |= set(cls.__dict__.get("__annotations__", {})) & (COMMON_OPTIONS - {"model"})
    return declared
