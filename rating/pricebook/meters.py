"""Meters: which events count, what quantity they carry, how it aggregates, how it groups.

A meter turns an event into a *reading* and advances the *period state* (the
aggregate so far for one customer, meter, group and billing period). Pricing
models only ever see the aggregate before and after an event.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from rating.errors import EventError, InvalidAmount
from rating.events import UsageEvent
from rating.money import ZERO, bounded, to_decimal
from rating.records import PeriodState  # noqa: F401 (re-exported: it was defined here)
from rating.refusals import Refusal

Aggregation = Literal["sum", "count", "max", "unique"]
ONE = Decimal(1)
#: Quantities at or above 10^(MAX_MAGNITUDE + 1) are refused: no real event carries them.
MAX_MAGNITUDE = 15
#: Longest group value or ``unique`` member an event may bring, in UTF-8 bytes: every storage indexes them.
MAX_VALUE_BYTES = 1024
#: A weight of a derived meter: an exact, non-negative decimal.
Weight = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(bounded), Field(ge=0)]


def _check_display(value: Any) -> str | dict[str, str] | None:
    from rating.pricebook.pricing import check_display  # pricing imports this module

    return check_display(value)


def event_quantity(event: UsageEvent, name: str, missing: Decimal | None = None) -> Decimal:
    """The non-negative quantity property ``name`` of ``event`` holds (``missing`` when absent, if given).

    ``missing_property`` when it is absent, ``invalid_quantity`` when it is not a
    decimal number, negative, or absurdly large: meters and per-event models read
    quantities the same way.
    """
    value = event.properties.get(name)
    if value is None:
        value = event.dimension(name)
        if value is None:
            if missing is not None:
                return missing
            raise EventError(Refusal.MISSING_PROPERTY, f"missing property {name!r} (the meter reads it)")
    try:
        quantity = to_decimal(value, name)
    except InvalidAmount as error:
        raise EventError(Refusal.INVALID_QUANTITY, str(error)) from None
    if quantity < 0:
        raise EventError(Refusal.INVALID_QUANTITY, f"{name} must not be negative, got {value}")
    if quantity.adjusted() > MAX_MAGNITUDE:
        raise EventError(
            Refusal.INVALID_QUANTITY,
            f"{name} is absurdly large ({value}); quantities stay below 10^{MAX_MAGNITUDE + 1}",
        )
    return quantity


class Meter(BaseModel):
    """A meter as written in a pricebook: ``{event: llm.request, sum: input_tokens, group_by: [model]}``.

    Exactly one of ``sum``, ``count``, ``max`` or ``unique`` says how readings aggregate:
    ``sum: P`` adds property P, ``count: true`` counts events, ``max: P`` keeps the
    largest P, ``unique: P`` counts distinct values of P. A property name may also be
    an attribution field (``agent``, ``session``, ``order``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str = Field(min_length=1, description="Event type this meter counts, e.g. llm.request.")
    where: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Only events whose properties take one of these values: {model: [a, b]}."
    )
    sum: str | dict[str, Weight] | None = Field(
        None,
        description="Property whose values are added up, or {property: weight} to add a weighted sum "
        "(compute units: {cpu_ms: '0.001', memory_mb_s: '0.0002'}).",
    )
    count: Literal[True] | None = Field(None, description="Count events.")
    max: str | None = Field(None, description="Property whose largest value in the period counts.")
    unique: str | None = Field(None, description="Property whose distinct values are counted.")
    group_by: tuple[str, ...] = Field((), description="Properties that split the meter into groups.")
    unit: str | None = Field(None, description="Name of one unit in explanations; the meter's name by default.")
    description: str | None = None
    display: Annotated[str | dict[str, str] | None, BeforeValidator(_check_display)] = Field(
        None,
        description="Name on invoices: a text, or a text per language ({en: Input tokens, de: Eingabe-Tokens});"
        " the meter's id, humanised, by default.",
    )
    tax_category: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")] | None = Field(
        None, description="Tax category of the meter's invoice lines (a charge's own tax_category wins)."
    )

    @field_validator("where", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: tuple(str(v) for v in (vs if isinstance(vs, list) else [vs])) for k, vs in value.items()}

    @model_validator(mode="after")
    def _one_aggregation(self) -> Meter:
        chosen = [name for name in ("sum", "count", "max", "unique") if getattr(self, name) is not None]
        if len(chosen) != 1:
            found = ", ".join(chosen) or "none"
            raise ValueError(f"a meter needs exactly one of sum, count, max, unique (found: {found})")
        if self.sum == {}:
            raise ValueError("a weighted sum needs at least one property and its weight")
        return self

    @property
    def aggregation(self) -> Aggregation:
        """How readings aggregate over the period."""
        if self.count:
            return "count"
        if self.sum is not None:
            return "sum"
        return "max" if self.max is not None else "unique"

    @property
    def source(self) -> str | None:
        """The property this meter reads, or None for a count or weighted meter."""
        if isinstance(self.sum, dict):
            return None
        return self.sum or self.max or self.unique

    def counts(self, event: UsageEvent) -> bool:
        """Whether ``event`` passes this meter's ``where`` filter (its type is matched by the engine)."""
        for name, allowed in self.where.items():
            value = event.dimension(name)
            if value is None or str(value) not in allowed:
                return False
        return True

    def check_inputs(self, event: UsageEvent) -> None:
        """Refuse an event whose group values or ``unique`` member are not text of at most
        :data:`MAX_VALUE_BYTES` (``invalid_property``); an absent one is left to :meth:`group_of`.

        Checked when an event is rated, never on events already stored: the number 5
        would share a group with the text "5", and an object would be grouped by its repr.
        """
        names = (*self.group_by, self.unique) if self.unique is not None else self.group_by
        for name in names:
            value = event.dimension(name)
            if value is None:
                continue
            if not isinstance(value, str):
                kind = {bool: "a boolean", dict: "an object", list: "a list"}.get(type(value), "a number")
                raise EventError(
                    Refusal.INVALID_PROPERTY, f"property {name!r} is {kind}; the meter groups or counts text values"
                )
            size = len(value) if value.isascii() else len(value.encode("utf-8"))  # events hold no lone surrogate
            if size > MAX_VALUE_BYTES:
                raise EventError(
                    Refusal.INVALID_PROPERTY,
                    f"property {name!r} is longer than {MAX_VALUE_BYTES:,} UTF-8 bytes ({size:,}: {value[:32]!r}...)",
                )

    def group_of(self, event: UsageEvent) -> tuple[str, ...]:
        """The group values of ``event``; a missing group property is an :class:`EventError`."""
        values = []
        for name in self.group_by:
            value = event.properties.get(name)
            if value is None:
                value = event.dimension(name)
            if value is None or value == "":
                raise EventError(Refusal.MISSING_PROPERTY, f"missing property {name!r} (the meter groups by it)")
            values.append(value if type(value) is str else str(value))
        return tuple(values)

    def reading(self, event: UsageEvent) -> Decimal | str:
        """What ``event`` contributes: a non-negative quantity, or the member for a unique meter.

        A weighted meter adds ``weight x property`` over its properties; an absent one counts 0.
        """
        if self.count:
            return ONE
        if isinstance(self.sum, dict):
            total = ZERO
            for weighted, weight in self.sum.items():
                quantity = event_quantity(event, weighted, missing=ZERO)
                if quantity:  # an absent or zero property adds nothing, not even trailing zeros
                    total += weight * quantity
            return total
        if self.unique is not None:
            value = event.dimension(self.unique)
            if value is None:
                raise EventError(Refusal.MISSING_PROPERTY, f"missing property {self.unique!r} (the meter reads it)")
            return str(value)
        name = self.source
        assert name is not None
        return event_quantity(event, name)

    def advance(self, state: PeriodState, reading: Decimal | str) -> Decimal:
        """The aggregate after adding ``reading`` to ``state`` (``state`` itself is not changed)."""
        if isinstance(reading, str):
            members = state.members or set()
            return state.quantity if reading in members else state.quantity + ONE
        if self.max is not None:
            return reading if reading > state.quantity else state.quantity
        return state.quantity + reading
