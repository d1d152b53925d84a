"""How an invoice line reads: which part of a charge's price it is (a tier, the allowance) and its unit price per
1,000 or 1,000,000 units, in the invoice's language.

Used by the renderers (which write numbers with Babel) and by credit notes (which copy a line's text, written
without Babel: thousands separated as the language does, for the languages here; English otherwise).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rating.invoices.issue import InvoiceLine
from rating.money import format_decimal

#: Thousands and decimal separators per language, where they are not English's.
_SEPARATORS = {"de": (".", ",")}


def plain_number(value: Decimal, language: str = "en") -> str:
    """``value`` with thousands separators as ``language`` writes them (``1,000,000``; German ``1.000.000``)."""
    text = format_decimal(value.normalize() if value == value.to_integral_value() else value)
    thousands, point = _SEPARATORS.get(language, (",", "."))
    return text.replace(",", "\0").replace(".", point).replace("\0", thousands)


#: How an invoice line says which part of a charge's price it is, and a unit price shown per 1,000 or 1,000,000
#: units, per language (a language without its own words reads English).
LINE_WORDS = {
    "en": {
        "included": "included",
        "units": "beyond the included",
        "all": "tier {tier}: all units",
        "first": "tier {tier}: first {upper}",
        "next": "tier {tier}: next {size}",
        "over": "tier {tier}: over {lower}",
        "volume up to": "volume tier {tier}: up to {upper}",
        "volume between": "volume tier {tier}: over {lower} up to {upper}",
        "volume over": "volume tier {tier}: over {lower}",
        "volume all": "volume tier {tier}: all units",
        "flat_fee": "tier {tier} flat fee",
        "per 1000": "{price} per 1,000",
        "per 1000000": "{price} per 1M",
        "tax of": "{tax} ({name} {rate} % of {taxable})",
    },
    "de": {
        "included": "inklusive",
        "units": "über das Inklusivvolumen hinaus",
        "all": "Stufe {tier}: alle Einheiten",
        "first": "Stufe {tier}: erste {upper}",
        "next": "Stufe {tier}: nächste {size}",
        "over": "Stufe {tier}: über {lower}",
        "volume up to": "Mengenstaffel {tier}: bis {upper}",
        "volume between": "Mengenstaffel {tier}: über {lower} bis {upper}",
        "volume over": "Mengenstaffel {tier}: über {lower}",
        "volume all": "Mengenstaffel {tier}: alle Einheiten",
        "flat_fee": "Grundgebühr Stufe {tier}",
        "per 1000": "{price} pro 1.000",
        "per 1000000": "{price} pro 1 Mio.",
        "tax of": "{tax} ({name} {rate} % auf {taxable})",
    },
}


def line_description(line: InvoiceLine, language: str = "en", number: Any = None) -> str:
    """A line's description as the page shows it: its display name, then which part of the charge's price it
    is (``Input tokens – tier 2: next 4,000,000``), numbers written by ``number``."""
    step = line.step
    if step is None:
        return line.description
    number = number or (lambda value: plain_number(value, language))
    words = LINE_WORDS.get(language, LINE_WORDS["en"])
    lower, upper = step.lower or Decimal(0), step.upper
    values = {"tier": step.tier, "lower": number(lower), "upper": number(upper) if upper is not None else ""}
    values["size"] = number(upper - lower) if upper is not None else ""
    key: str
    if step.kind in ("included", "units", "flat_fee"):
        key = step.kind
    elif step.kind == "volume":
        key = "volume " + ("all" if not lower and upper is None else "up to" if not lower else "over")
        key = "volume between" if lower and upper is not None else key
    else:
        key = "all" if not lower and upper is None else "first" if not lower else "over" if upper is None else "next"
    return f"{line.description} – {words[key].format(**values)}"


def unit_price_text(line: InvoiceLine, language: str = "en", number: Any = None) -> str:
    """A line's unit price as the page shows it: per unit, or per 1,000 or 1,000,000 units when the charge says
    ``per:`` (display only: the line's amount is what was charged); "" when no single price applies."""
    if line.unit_price is None:
        return ""
    number = number or (lambda value: plain_number(value, language))
    if line.per in (1000, 1000000):
        words = LINE_WORDS.get(language, LINE_WORDS["en"])
        return words[f"per {line.per}"].format(price=number(line.unit_price * line.per))
    return str(number(line.unit_price))
