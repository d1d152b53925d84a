"""Billing profiles, the seller and tax rules: who is billed, where, and at what tax rate.

They live in a YAML file of their own (``billing.yaml``), beside the
pricebooks: pricing teams edit prices, finance edits profiles and rates.
Validated like a pricebook, every problem named at ``file:line:column``::

    seller:
      legal_name: Example AI GmbH
      address: [Hauptstr. 1, 10115 Berlin]
      country: DE
      tax_id: DE123456789
    payment_terms_days: 14
    tax_rules:
      - {country: DE, rate: "19", name: VAT, from: 2020-01-01}
      - {country: FR, rate: "20", name: TVA}
      - {country: AU, rate: "10", name: GST}
      - {country: "*", rate: "0", name: not taxable here}   # any other country
    profiles:
      acme:
        legal_name: Acme Labs Inc.
        address: [1 Main St, Springfield]
        country: US
        language: en
    fonts: [fonts/NotoSansJP-Regular.ttf]   # optional: for what DejaVu Sans lacks in PDFs

How a profile's tax is decided (:func:`tax_for`), in this order:

1. ``tax_status: exempt``: no tax (rate 0, rule ``exempt``);
2. a business in the EU with a tax id, in another country than the seller
   (``tax_status: reverse_charge``, or ``taxable`` with those facts): reverse
   charge, rate 0, the customer accounts for the VAT;
3. otherwise the most specific rule in force on the invoice date: for the
   customer's country before ``*``, for its kind of buyer (``business`` with a
   tax id, or ``consumer``) before ``any``, for the seller's country before
   any, then the latest ``from``; none at all is refused with ``no_tax_rule``
   rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from rating.accounts import CustomerId
from rating.errors import PricebookError, RatingError
from rating.invoices.translations import available, load_translation
from rating.pricebook import yamlstrict
from rating.pricebook.model import Problems
from rating.pricebook.pricing import DisplayName, check_display, display_name

#: A text of the billing file an invoice shows: one text, or a text per language (``{en: ..., de: ...}``).
Text = Annotated[DisplayName, BeforeValidator(check_display)]
#: A tax category: what a charge or meter names as ``tax_category``; None is the invoice's one category.
Category = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]

#: Member states of the European Union, for reverse charge.
EU = frozenset(
    ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU")
    + ("IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK")
)


class Payment(BaseModel):
    """How to pay: bank details (IBAN, BIC, bank, account holder), a payment link, or a note; at least one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_holder: str | None = Field(None, min_length=1)
    bank: str | None = Field(None, min_length=1)
    iban: str | None = None
    bic: str | None = Field(None, pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$", description="8 or 11 characters")
    link: str | None = Field(None, pattern=r"^https://\S+$", description="a https:// URL")
    note: str | None = Field(None, min_length=1)

    @field_validator("iban")
    @classmethod
    def _iban(cls, value: str | None) -> str | None:
        """An IBAN, grouped in fours as printed, its check digits verified (ISO 13616, mod 97)."""
        if value is None:
            return None
        compact = value.replace(" ", "").upper()
        if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact):
            raise ValueError(f"not an IBAN: {value!r} (country code, check digits, then 11 to 30 letters or digits)")
        digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
        if int(digits) % 97 != 1:
            raise ValueError(f"the check digits of IBAN {value!r} do not match (a typing error?)")
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    @model_validator(mode="after")
    def _something(self) -> Payment:
        if not (self.iban or self.link or self.note):
            raise ValueError("payment needs an iban, a link or a note")
        return self


class Party(BaseModel):
    """A seller or a buyer as the invoice names it: where it is, its tax and register details, how to reach it,
    and (the seller's, or a profile's own) how to pay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    legal_name: str = Field(min_length=1)
    address: tuple[str, ...] = ()
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code, e.g. DE")
    region: str | None = None
    tax_id: str | None = None
    #: The company register and number, e.g. ``Amtsgericht Berlin HRB 123456``.
    registration: str | None = Field(None, min_length=1)
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, pattern=r"^\+?[0-9][0-9 ()./-]{3,30}$")
    website: str | None = Field(None, pattern=r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?$")
    #: How to pay (a profile's own wins over the seller's).
    payment: Payment | None = None
    #: The seller's logo, a PNG or JPEG file (relative to the billing file), top left on HTML and PDF documents.
    logo: str | None = None


class Profile(Party):
    """A customer's billing profile."""

    tax_status: Literal["taxable", "exempt", "reverse_charge"] = "taxable"
    #: Why the customer is exempt or reverse charged, as the invoice says it (the billing file's
    #: ``reverse_charge_reason`` by default for reverse charge).
    tax_reason: Text | None = None
    language: str = Field("en", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="en, de, fr, es, pl, or a file's")
    #: The currency the customer is invoiced in; it must be the pricebook's.
    currency: str | None = None
    #: Days from issue to due date (net 30 is 30); the billing file's default when absent.
    payment_terms_days: int | None = Field(None, ge=0, le=365)

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("tax_reason") is None:  # a profile without one reads as it always did
            data.pop("tax_reason", None)
        return data

    @property
    def business(self) -> bool:
        """Whether the customer is a business (it has a tax id) rather than a consumer."""
        return bool(self.tax_id)


class TaxRule(BaseModel):
    """A tax rate for buyers of a country (``*``: any country without a rule of its own) from a date on.

    ``seller``: only when the seller charges from that country; ``buyer``: only
    for businesses (with a tax id) or consumers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    country: str = Field(pattern=r"^([A-Z]{2}|\*)$")
    seller: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    buyer: Literal["business", "consumer", "any"] = "any"
    rate: Decimal = Field(ge=0, le=100, description="percent, e.g. 19")
    name: str = "VAT"
    since: dt.date = Field(dt.date(1970, 1, 1), alias="from")
    #: Only for lines of this tax category (a charge's or meter's ``tax_category``); None: any category.
    category: Category | None = None
    #: The tax's name per language on invoices (``{de: USt.}``); ``name`` where none is given.
    names: dict[str, str] = {}
    #: Why this rate applies, as the invoice says it (an exemption, a reduced rate): a text or one per language.
    reason: Text | None = None


class Billing(BaseModel):
    """The billing file: seller, payment terms, tax rules and customer profiles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seller: Party
    payment_terms_days: int = Field(14, ge=0, le=365)
    invoice_series: str = Field("INV", pattern=r"^[A-Z][A-Z0-9]{0,9}$")
    tax_rules: tuple[TaxRule, ...] = ()
    profiles: dict[CustomerId, Profile] = {}
    #: What an invoice says of reverse charge besides its standard note (the legal basis, say): a text or one
    #: per language; a profile's ``tax_reason`` wins.
    reverse_charge_reason: Text | None = None
    #: Font files (TrueType or OpenType; relative to the billing file) that PDFs draw what DejaVu Sans does not
    #: cover with, tried in order: a CJK font for Japanese or Chinese names, say.
    fonts: tuple[str, ...] = ()
    #: Translation files (relative to the billing file) of the languages beyond those with labels built in or
    #: shipped (:mod:`rating.invoices.translations`), by language: ``{it: languages/it.yaml}``.
    languages: dict[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")], str] = {}


class AppliedTax(BaseModel):
    """The tax decision snapshotted into an invoice: rate, rule and why (``reason``: the text the invoice shows,
    in its language), for lines of ``category`` (None: the invoice's one category); ``names`` per language."""

    model_config = ConfigDict(frozen=True)

    rate: Decimal
    name: str
    rule: str
    category: str | None = None
    names: dict[str, str] = {}
    reason: str | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in ("category", "names", "reason"):
            if not data.get(name):
                data.pop(name, None)
        return data

    def label(self, language: str) -> str:
        """The tax's name in ``language``: its name for it, else its ``name``."""
        return self.names.get(language) or self.name


class TaxError(RatingError):
    """No tax rule decides a customer's tax: the invoice is not issued (code ``no_tax_rule``)."""


def tax_for(billing: Billing, profile: Profile, on: dt.date, category: str | None = None) -> AppliedTax:
    """The tax that applies to ``profile``'s invoice lines of ``category`` (None: lines without one) dated ``on``.

    A rule naming a category applies to that category only and wins over one that names none, after the
    buyer's country (a rule for the country before ``*``)."""
    language = profile.language
    if profile.tax_status == "exempt":
        reason = _text(profile.tax_reason, language)
        return AppliedTax(rate=Decimal(0), name="exempt", rule="exempt", category=category, reason=reason)
    seller = billing.seller.country
    abroad_business = profile.country in EU and seller in EU and profile.country != seller and profile.tax_id
    if profile.tax_status == "reverse_charge" or abroad_business:
        reason = _text(profile.tax_reason or billing.reverse_charge_reason, language)
        why = f"reverse charge {profile.country}"
        return AppliedTax(rate=Decimal(0), name="reverse charge", rule=why, category=category, reason=reason)
    kind = "business" if profile.business else "consumer"
    rules = [
        r
        for r in billing.tax_rules
        if r.country in (profile.country, "*") and r.seller in (None, seller) and r.buyer in (kind, "any")
        if r.since <= on and r.category in (None, category)
    ]
    if rules:
        # The most specific rule wins (the buyer's country over '*', a category over any, a buyer kind over any),
        # then the latest.
        rule = max(
            rules,
            key=lambda r: (r.country != "*", r.category is not None, r.buyer != "any", r.seller is not None, r.since),
        )
        described = f"{rule.country} {rule.buyer} from {rule.since}"
        if rule.category is not None:
            described = f"{rule.country} {rule.category} {rule.buyer} from {rule.since}"
        return AppliedTax(
            rate=rule.rate,
            name=rule.name,
            rule=described,
            category=category,
            names=rule.names,
            reason=_text(rule.reason, language),
        )
    of = f" (tax category {category})" if category is not None else ""
    raise TaxError(f"no tax rule for country {profile.country}{of} on {on.isoformat()} (add one, or a '*' rule)")


def _text(text: DisplayName | None, language: str) -> str | None:
    """A billing file's text in ``language`` (else English, else its first), or None."""
    return display_name(text, "", language) if text else None


def parse_billing(text: str, source: str = "<billing>", base: Path | None = None) -> Billing:
    """Validate billing YAML text; :class:`~rating.errors.PricebookError` lists every problem with its position.

    Its ``fonts`` are resolved against ``base`` (the billing file's folder) and must be files."""
    try:
        document = yamlstrict.load(text)
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{source}:{error}"]) from None
    problems = Problems(source, document)
    if not isinstance(document.data, dict):
        problems.add((), "a billing file is a mapping with seller, tax_rules and profiles")
        problems.raise_if_any()
    try:
        billing = Billing.model_validate(document.data)
    except ValidationError as error:
        problems.add_validation((), error)
        problems.raise_if_any()
        raise
    fonts = tuple(str(base / font) if base is not None else font for font in billing.fonts)
    for index, font in enumerate(fonts):
        if not Path(font).is_file():
            problems.add(("fonts", index), f"no font file {font}")
    seller = billing.seller
    if seller.logo is not None:
        logo = Path(seller.logo) if base is None else base / seller.logo
        problem = _image_problem(logo)
        if problem:
            problems.add(("seller", "logo"), problem)
        seller = seller.model_copy(update={"logo": str(logo.resolve())})
    languages = {code: str(base / path) if base is not None else path for code, path in billing.languages.items()}
    for code, path in languages.items():
        try:
            load_translation(path, _label_keys())
        except PricebookError as error:
            problems.add(("languages", code), "; ".join(error.problems))
    known = available(languages)
    for customer, profile in billing.profiles.items():
        if profile.logo is not None:
            problems.add(("profiles", customer, "logo"), "only the seller has a logo (seller: logo:)")
        if profile.language not in known:
            problems.add(
                ("profiles", customer, "language"),
                f"no labels for language {profile.language!r}: {', '.join(known)}, or a translation file under"
                " languages:",
            )
    problems.raise_if_any()
    return billing.model_copy(update={"fonts": fonts, "seller": seller, "languages": languages})


def _label_keys() -> frozenset[str]:
    """The keys of the English labels: every key a translation file may have."""
    from rating.invoices.render import WORDS  # render reads this module's parties: imported when needed

    return frozenset(WORDS["en"])


def _image_problem(path: Path) -> str | None:
    """What is wrong with ``path`` as a logo (None: it is a PNG or JPEG file)."""
    try:
        with path.open("rb") as file:
            start = file.read(8)
    except OSError as error:
        return f"cannot read logo file {path}: {error.strerror or error}"
    if not (start.startswith(b"\x89PNG\r\n\x1a\n") or start.startswith(b"\xff\xd8\xff")):
        return f"logo file {path} is not a PNG or JPEG image"
    return None


def load_billing(path: str | Path) -> Billing:
    """Read and validate a billing file."""
    try:
        text = yamlstrict.read_file(path, "billing file")
    except OSError as error:
        raise PricebookError([f"{path}: cannot read billing file: {error}"]) from None
    except yamlstrict.YamlError as error:
        raise PricebookError([f"{path}:{error}"]) from None
    return parse_billing(text, str(path), Path(path).parent)
