"""Pricebooks: the YAML a pricing team edits, validated into typed models.

Loading is strict and every problem names ``file:line:column``: unknown keys,
duplicate keys, non-decimal prices, unknown meters, plans or pricing models,
tier boundaries out of order. Each charge is validated by the parameter model of
the pricing model it names, so plugins get the same line-numbered errors.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from rating.accounts import AgentId, CreatorId, CustomerId
from rating.errors import InvalidAmount, PricebookError
from rating.money import currency_scale
from rating.periods import PeriodKind
from rating.pricebook import yamlstrict
from rating.pricebook.meters import Meter
from rating.pricebook.pricing import Price, PricingModel, invalid_overrides
from rating.pricebook.splits import RevenueSplit

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]

#: The loader's view of the plugins: each pricing model by the name a charge gives as ``model:``.
PricingModels = Mapping[str, type[PricingModel]]


class HasPricingModels(Protocol):
    """Something that supplies a model map, such as :class:`rating.registry.Registry`."""

    @property
    def pricing_models(self) -> PricingModels:
        """The pricing models by name."""
        ...


#: What the loader accepts: a plain model map, or an object (the registry) that supplies one.
ModelSource = PricingModels | HasPricingModels


def model_map(models: ModelSource) -> PricingModels:
    """The plain model map behind ``models``."""
    return models if isinstance(models, Mapping) else models.pricing_models


def installed_models() -> PricingModels:
    """The pricing models of the installed plugins: the default when a caller passes no model map."""
    # Imported here, at call time: the loader itself depends on a plain map, not on the plugin machinery
    # (the registry also opens storage), so the pricer and everything below it never load it.
    from rating.registry import Registry

    return Registry.load().pricing_models


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from None
    return value


class AssetSpec(BaseModel):
    """A custom asset such as CREDITS: its decimal scale and what it sells for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: int = Field(ge=0, le=18, description="Decimal places shown on statements.")
    sells_for: dict[str, Price] = Field(default_factory=dict, description="Price of one unit per currency.")
    description: str | None = None


class Plan(BaseModel):
    """A plan: its billing period and the charges that price its meters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: PeriodKind = Field("month", description="Billing period; period state starts fresh each period.")
    charges: tuple[PricingModel, ...] = Field((), description="Each charge names a meter and a pricing model.")
    fee: Price | None = Field(None, description="Fixed fee per period, charged in advance, prorated by time.")
    minimum: Price | None = Field(None, description="Minimum spend per period; the shortfall is billed at close.")
    description: str | None = None


class TopUp(BaseModel):
    """When a wallet's available funds fall below ``below``, buy ``amount`` (a hook places the order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    below: Price
    amount: Price


class PlanChange(BaseModel):
    """A move to another plan from a date on (local midnight in the customer's time zone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan: str
    on: dt.date


class CustomerSpec(BaseModel):
    """A customer's subscription: its plan, when it starts and ends, later plan changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan: str = Field(description="Plan from the start of the subscription.")
    since: dt.date | None = Field(None, description="Subscription start; the first fee is prorated from it.")
    until: dt.date | None = Field(None, description="Subscription end (exclusive); the last fee is prorated to it.")
    changes: tuple[PlanChange, ...] = Field((), description="Later plan changes, in date order.")
    timezone: str | None = Field(None, description="Time zone of this customer's periods; the pricebook's by default.")
    anniversary: bool = Field(False, description="Periods run from the anniversary of since, not calendar periods.")
    billing: Literal["invoice", "wallet"] = Field(
        "invoice", description="invoice: charges are owed on the receivable; wallet: paid from the prepaid wallet."
    )
    spend_cap: Price | None = Field(
        None,
        description="Hard cap on a period's charges, in the asset the plan bills in (CREDITS for a credits plan):"
        " events beyond it are refused.",
    )
    spend_alert: Price | None = Field(None, description="Soft cap: plugins are told when a period's charges cross it.")
    top_up: TopUp | None = Field(None, description="Wallet auto top-up: plugins are told what to buy when low.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return value if value is None else _check_timezone(value)

    @model_validator(mode="after")
    def _ordered_dates(self) -> CustomerSpec:
        days = [self.since] if self.since else []
        days += [change.on for change in self.changes]
        days += [self.until] if self.until else []
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("since, the changes' dates and until must be in strictly increasing order")
        if self.anniversary and self.since is None:
            raise ValueError("anniversary periods need since: the date they are anchored to")
        return self

    def plans(self) -> list[str]:
        """Every plan this customer is ever on."""
        return [self.plan] + [change.plan for change in self.changes]


class Agent(BaseModel):
    """An agent on the marketplace and the creator its earnings go to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    creator: CreatorId


class Contract(BaseModel):
    """An enterprise contract: one customer's own prices, commitment and service terms, for a time.

    ``charges`` replace the plan's charges on the same meters (and may price
    meters the plan does not). ``commitment`` is a minimum spend per period,
    prorated by the time the contract covers, whose shortfall is billed at
    period close. ``prepaid`` is a commitment paid in advance for the whole
    term: charges in the pricebook currency draw it down before anything is
    owed again. ``sla``, ``priority`` and ``metadata`` are copied into every
    rating transaction of the customer while the contract is in force.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    customer: CustomerId
    starts: dt.date = Field(alias="from", description="First day in force (local midnight).")
    until: dt.date | None = Field(None, description="First day no longer in force.")
    charges: tuple[PricingModel, ...] = Field((), description="Charges replacing the plan's on the same meters.")
    commitment: Price | None = Field(None, description="Committed minimum spend per period, trued up at close.")
    prepaid: Price | None = Field(
        None, description="Commitment paid in advance for the whole term, drawn down by usage."
    )
    sla: str | None = None
    priority: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Contract:
        if self.until is not None and self.until <= self.starts:
            raise ValueError("until must come after from")
        return self

    def terms(self, name: str) -> dict[str, str]:
        """What a rating transaction records of this contract."""
        terms = {"contract": name, **self.metadata}
        if self.sla:
            terms["sla"] = self.sla
        if self.priority:
            terms["priority"] = self.priority
        return terms


class Pricebook(BaseModel):
    """A whole pricebook: meters, plans and customer assignments, in one currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pricebook: Name = Field(description="Name of the pricebook.")
    version: dt.date = Field(description="Date from which this version is in force.")
    currency: str = Field(description="ISO currency (or a defined asset) charges are posted in.")
    timezone: str = Field("UTC", description="IANA time zone that billing periods follow.")
    description: str | None = None
    assets: dict[Name, AssetSpec] = Field(default_factory=dict)
    meters: dict[Name, Meter]
    plans: dict[Name, Plan]
    customers: dict[CustomerId, CustomerSpec] = Field(default_factory=dict)
    default_plan: str | None = Field(None, description="Plan of customers not listed under customers.")
    contracts: dict[Name, Contract] = Field(default_factory=dict, description="Enterprise contracts by name.")
    agents: dict[AgentId, Agent] = Field(default_factory=dict, description="Agents and their creators, for splits.")
    costs: tuple[PricingModel, ...] = Field(
        (),
        description="Provider cost profiles: what usage costs the platform, priced like charges (by_group by model).",
    )
    revenue_split: RevenueSplit | None = Field(None, description="How charges of agents with a creator are shared.")
    late_usage: Literal["refuse", "next_period"] = Field(
        "refuse",
        description="Usage of a closed period: refused (closed_period), or posted into the first open period after it.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    def timezone_of(self, customer: str) -> str:
        """The time zone of ``customer``'s billing periods."""
        spec = self.customers.get(customer)
        return spec.timezone if spec is not None and spec.timezone else self.timezone

    def value_of(self, amount: Decimal, asset: str) -> Decimal | None:
        """What ``amount`` of ``asset`` is worth in the pricebook currency, for reports; None if unpriced.

        Only reports convert: the ledger keeps every asset as posted, so a new
        rate in a later version changes nothing already posted.
        """
        if asset == self.currency:
            return amount
        spec = self.assets.get(asset)
        price = spec.sells_for.get(self.currency) if spec is not None else None
        return None if price is None else amount * price

    def spec_of(self, customer: str) -> CustomerSpec | None:
        """The customer's entry under ``customers``, if any."""
        return self.customers.get(customer)

    def pays_from_wallet(self, customer: str) -> bool:
        """Whether ``customer``'s charges are paid from its prepaid wallet."""
        spec = self.customers.get(customer)
        return spec is not None and spec.billing == "wallet"

    def scale_of(self, asset: str) -> int:
        """Decimal places of ``asset``: its declared ``scale`` if the pricebook declares it, else the ISO currency's."""
        spec = self.assets.get(asset)
        return spec.scale if spec is not None else currency_scale(asset)

    def declared_assets(self) -> set[str]:
        """The assets this pricebook knows: its currency, its custom assets and every charge's or cost's asset."""
        charges = [c for plan in self.plans.values() for c in plan.charges] + list(self.costs)
        charges += [c for contract in self.contracts.values() for c in contract.charges]
        return {self.currency, *self.assets, *(c.asset for c in charges if c.asset is not None)}

    def anchor_of(self, customer: str) -> dt.date | None:
        """The date ``customer``'s periods are anchored to, or None for calendar periods."""
        spec = self.customers.get(customer)
        return spec.since if spec is not None and spec.anniversary else None


def _describe(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if error["type"] == "missing":
        return f"missing required key {error['loc'][-1]!r}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


class Problems:
    """Problems found while loading, each located in the source document."""

    def __init__(self, source: str, document: yamlstrict.Document) -> None:
        self.source, self.document = source, document
        self.found: list[tuple[tuple[int, int], str]] = []

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        where = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        self.found.append((self.document.position(path), f"{where}: {message}" if where else message))

    def add_validation(
        self, prefix: tuple[str | int, ...], error: ValidationError, only: set[str] | None = None
    ) -> None:
        """Record each error of ``error`` under ``prefix``; with ``only``, just those about these keys."""
        for item in error.errors():
            loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            if only is not None and (not loc or loc[0] not in only):
                continue
            if item["type"] == "extra_forbidden" or item["type"] == "missing":
                self.add(prefix + loc[:-1] if item["type"] == "missing" else prefix + loc, _describe(item))
            else:
                self.add(prefix + loc, _describe(item))

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda item: item[0])
            raise PricebookError([f"{self.source}:{line}:{column}: {message}" for (line, column), message in ordered])


def _validate_charges(data: dict[str, Any], models: PricingModels, problems: Problems) -> None:
    """Replace each charge mapping (of plans and contracts) by its pricing model instance, recording problems."""
    known = ", ".join(sorted(models)) or "none installed"
    for section in ("plans", "contracts"):
        holders = data.get(section)
        for holder_name, holder in holders.items() if isinstance(holders, dict) else []:
            if isinstance(holder, dict) and isinstance(holder.get("charges"), list):
                where = (section, holder_name, "charges")
                holder["charges"] = _valid_charges(holder["charges"], where, models, known, problems)
    if isinstance(data.get("costs"), list):
        data["costs"] = _valid_charges(data["costs"], ("costs",), models, known, problems)


def _valid_charges(
    charges: list[Any], where: tuple[str, ...], models: PricingModels, known: str, problems: Problems
) -> list[PricingModel]:
    valid = []
    for index, charge in enumerate(charges):
        path = where + (index,)
        if not isinstance(charge, dict):
            problems.add(path, "a charge must be a mapping with meter and model")
            continue
        model_name = charge.get("model")
        model = models.get(str(model_name))
        if model is None:
            at = path + ("model",) if "model" in charge else path
            problems.add(at, f"unknown pricing model {model_name!r}; known models: {known}")
            continue
        if "catalogue" in charge:
            charge = _with_catalogue(charge, path, problems)
            if charge is None:
                continue
        for label, error in invalid_overrides(model, charge).items():
            problems.add_validation(path + ("by_group", label), error, only=set(charge["by_group"][label]))
            del charge["by_group"][label]
        try:
            valid.append(model.model_validate(charge))
        except ValidationError as error:
            problems.add_validation(path, error)
    return valid


def _with_catalogue(charge: dict[str, Any], path: tuple[str | int, ...], problems: Problems) -> dict[str, Any] | None:
    """``charge`` with the parameters of the YAML file its ``catalogue:`` names (relative to the pricebook) under
    its own: the charge's keys win, and mappings (such as an ``llm`` charge's ``models``) merge key by key."""
    name = charge.pop("catalogue")
    file = Path(problems.source).parent / str(name)
    try:
        document = yamlstrict.load(yamlstrict.read_file(file, "catalogue"))
    except OSError as error:
        problems.add(path + ("catalogue",), f"cannot read catalogue {file}: {error}")
        return None
    except yamlstrict.YamlError as error:
        problems.add(path + ("catalogue",), f"catalogue {file}:{error}")
        return None
    if not isinstance(document.data, dict):
        problems.add(path + ("catalogue",), f"catalogue {file} must be a mapping of the charge's parameters")
        return None
    merged = dict(document.data)
    for key, value in charge.items():
        known = merged.get(key)
        merged[key] = {**known, **value} if isinstance(known, dict) and isinstance(value, dict) else value
    return merged


def _check_references(book: Pricebook, problems: Problems) -> None:
    def known(asset: str) -> bool:
        try:
            return bool(book.scale_of(asset) >= 0)
        except InvalidAmount:
            return False

    if not known(book.currency):
        problems.add(("currency",), f"unknown currency {book.currency!r}: use an ISO code or define it under assets")
    meters = ", ".join(sorted(book.meters)) or "none defined"
    holders: list[tuple[tuple[str, ...], tuple[PricingModel, ...]]]
    holders = [(("plans", name, "charges"), plan.charges) for name, plan in book.plans.items()]
    holders += [(("contracts", name, "charges"), contract.charges) for name, contract in book.contracts.items()]
    holders.append((("costs",), book.costs))
    for where, charges in holders:
        identities: dict[str, int] = {}
        for index, charge in enumerate(charges):
            identity = charge.identity(book.currency)
            if where != ("costs",) and identity in identities:
                problems.add(
                    (*where, index),
                    f"charge {identity!r} is the same charge as [{identities[identity]}] (meter, model and asset):"
                    " give each an id",
                )
            identities.setdefault(identity, index)
            path: tuple[str | int, ...] = (*where, index, "meter")
            meter = book.meters.get(charge.meter)
            if meter is None:
                problems.add(path, f"unknown meter {charge.meter!r}; meters: {meters}")
            elif (problem := charge.meter_problem(meter)) is not None:
                problems.add(path, problem)
            if charge.asset is not None and not known(charge.asset):
                problems.add(
                    (*where, index, "asset"),
                    f"unknown asset {charge.asset!r}: use an ISO code or define it under assets",
                )
    plans = ", ".join(sorted(book.plans))
    for customer, spec in book.customers.items():
        if spec.plan not in book.plans:
            problems.add(("customers", customer, "plan"), f"unknown plan {spec.plan!r}; plans: {plans}")
        for index, change in enumerate(spec.changes):
            if change.plan not in book.plans:
                problems.add(
                    ("customers", customer, "changes", index, "plan"), f"unknown plan {change.plan!r}; plans: {plans}"
                )
        kinds = {book.plans[p].period for p in spec.plans() if p in book.plans}
        if len(kinds) > 1:
            problems.add(("customers", customer), f"plan changes must keep one period kind, found {sorted(kinds)}")
    if book.default_plan is not None and book.default_plan not in book.plans:
        problems.add(("default_plan",), f"unknown plan {book.default_plan!r}; plans: {plans}")
    in_force: dict[str, list[tuple[dt.date, dt.date, str]]] = {}
    for name, contract in sorted(book.contracts.items(), key=lambda item: item[1].starts):
        end = contract.until or dt.date.max
        for start, stop, other in in_force.get(contract.customer, []):
            if contract.starts < stop and start < end:
                problems.add(("contracts", name), f"overlaps contract {other!r} of customer {contract.customer!r}")
        in_force.setdefault(contract.customer, []).append((contract.starts, end, name))


def parse_pricebook(text: str, models: ModelSource, source: str = "<pricebook>") -> Pricebook:
    """Validate pricebook YAML text. Raises :class:`PricebookError` listing every problem.

    ``models`` maps each pricing model name to its class (:func:`model_map`); a
    :class:`~rating.registry.Registry` supplies one and may be passed as it is.
    """
    try:
        document = yamlstrict.load(text)
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{source}:{error}"]) from None
    problems = Problems(source, document)
    data = document.data
    if not isinstance(data, dict):
        problems.add((), "a pricebook must be a mapping with pricebook, version, currency, meters and plans")
        problems.raise_if_any()
    _validate_charges(data, model_map(models), problems)
    try:
        book = Pricebook.model_validate(data)
    except ValidationError as error:
        problems.add_validation((), error)
        problems.raise_if_any()
        raise
    _check_references(book, problems)
    problems.raise_if_any()
    return book


#: Largest pricebook file accepted: real ones are kilobytes.
MAX_PRICEBOOK_BYTES = yamlstrict.MAX_FILE_BYTES


def load_pricebook(path: str | Path, models: ModelSource | None = None) -> Pricebook:
    """Read and validate a pricebook file (see :func:`parse_pricebook`); by default with the installed models."""
    path = Path(path)
    try:
        text = yamlstrict.read_file(path, "pricebook", MAX_PRICEBOOK_BYTES)
    except OSError as error:
        raise PricebookError([f"{path}: cannot read pricebook: {error.strerror}"]) from None
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{path}:{error}"]) from None
    return parse_pricebook(text, installed_models() if models is None else models, str(path))


def json_schema(models: ModelSource) -> dict[str, Any]:
    """JSON Schema of the pricebook format with every pricing model of ``models``, for editors."""
    schema = Pricebook.model_json_schema()
    by_name = model_map(models)
    classes = tuple(by_name[name] for name in sorted(by_name))
    charges: dict[str, Any] = {"type": "object"}
    if classes:
        charge_type: Any = Annotated[Union[classes], Field(discriminator="model")]  # noqa: UP007
        charges = TypeAdapter(charge_type).json_schema(ref_template="#/$defs/{model}")
        schema.setdefault("$defs", {}).update(charges.pop("$defs", {}))
    schema["$defs"].pop("PricingModel", None)
    schema["title"] = "rating pricebook"
    return _replace_ref(schema, "#/$defs/PricingModel", charges)


def _replace_ref(node: Any, ref: str, replacement: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": ref}`` replaced (charges of plans, contracts and costs alike)."""
    if isinstance(node, dict):
        if node.get("$ref") == ref:
            return replacement
        return {key: _replace_ref(value, ref, replacement) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace_ref(item, ref, replacement) for item in node]
    return node


def summary(book: Pricebook) -> Mapping[str, Any]:
    """A short description of a valid pricebook, for ``rating check``."""
    return {
        "pricebook": book.pricebook,
        "version": book.version.isoformat(),
        "currency": book.currency,
        "meters": len(book.meters),
        "plans": {name: [f"{c.meter}:{c.model}" for c in plan.charges] for name, plan in book.plans.items()},
        "customers": len(book.customers),
        "contracts": len(book.contracts),
    }
