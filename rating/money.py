"""Exact money: the one place that owns the decimal context, parsing and allocation.

Money is :class:`decimal.Decimal` end to end. Floats are refused rather than
converted, because a float has already lost the price the user wrote.
Amounts keep full precision in the ledger; rounding to an asset's scale happens
once, when a statement is produced (see :func:`quantize`).
"""

from __future__ import annotations

import decimal
import functools
import math
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, TypeVar

from moneyed import CurrencyDoesNotExist, get_currency
from pydantic import BeforeValidator, Field

from rating.errors import InvalidAmount

#: The context every money computation runs in. High precision, and any inexact
#: or invalid operation raises instead of silently rounding.
MONEY_CONTEXT = decimal.Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)

ZERO = Decimal(0)

F = TypeVar("F", bound=Callable[..., Any])


def exact(function: F) -> F:
    """Run ``function`` in :data:`MONEY_CONTEXT`: every sum inside is exact or raises, never rounded to 28 digits."""

    @functools.wraps(function)
    def in_money_context(*args: Any, **kwargs: Any) -> Any:
        with decimal.localcontext(MONEY_CONTEXT):
            return function(*args, **kwargs)

    return in_money_context  # type: ignore[return-value]


HUNDRED = Decimal(100)

#: Decimal text as JSON and people write it: a sign, digits with at most one point, an exponent; nothing else
#: (no white space, no ``_`` separators, no ``NaN`` or ``Infinity``).
DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def to_decimal(value: object, what: str = "value") -> Decimal:
    """Return ``value`` as an exact, finite Decimal, or raise :class:`InvalidAmount`.

    Accepts Decimal, int and decimal text (``"0.0005"``, ``"-1.5e3"``): exactly the grammar
    of :data:`DECIMAL_TEXT`, so ``"1_000"``, ``" 12 "``, ``"1_0"`` and ``"Infinity"``, which
    :class:`~decimal.Decimal` would read, are refused. Refuses float and bool: they are never money.
    """
    if type(value) is Decimal:
        if value.is_finite():
            return value
        raise InvalidAmount(f"{what} must be finite, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (bool, float)):
        raise InvalidAmount(f"{what} must be an exact decimal, not {type(value).__name__} {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        if not value.isascii():  # Decimal reads "١٢٣" as 123: a price must be written in ASCII digits
            raise InvalidAmount(f"{what} must be written with ASCII digits, got {value!r}")
        if DECIMAL_TEXT.fullmatch(value) is None:  # Decimal also reads "1_000", " 12 " and "NaN"
            raise InvalidAmount(f"{what} must be a decimal number, got {value!r}")
        result = Decimal(value)
    else:
        raise InvalidAmount(f"{what} must be a decimal number, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise InvalidAmount(f"{what} must be finite, got {value!r}")
    return result


#: A percentage in a pricebook, from 0 to 100 inclusive, exact (a field may narrow it, e.g. ``Field(gt=0)``).
Percent = Annotated[Decimal, BeforeValidator(to_decimal), Field(ge=0, le=100)]


#: Prices and pricebook quantities stay within 10^15 and 30 decimal places: beyond, exact arithmetic
#: on them could not fit the money context and every event would fail later.
MAX_PRICE_MAGNITUDE = 15
MAX_PRICE_PLACES = 30


def bounded(value: Decimal) -> Decimal:
    """``value`` if it is within :data:`MAX_PRICE_MAGNITUDE` and :data:`MAX_PRICE_PLACES`, else ValueError."""
    if value and value.adjusted() >= MAX_PRICE_MAGNITUDE:
        raise ValueError(f"{value} is too large: pricebook numbers stay below 10^{MAX_PRICE_MAGNITUDE}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and value and -exponent > MAX_PRICE_PLACES:
        raise ValueError(f"{value} has more than {MAX_PRICE_PLACES} decimal places")
    return value


def currency_scale(code: str) -> int:
    """Decimal places of an ISO 4217 currency (2 for USD, 0 for JPY), from py-moneyed's tables.

    Custom assets (CREDITS, TOKENS ...) belong to the pricebook that declares them, with their own
    scale: ask :meth:`rating.pricebook.model.Pricebook.scale_of`, which knows both. Nothing is registered
    process-wide, so two pricebooks in one process may give one custom asset different scales.
    """
    try:
        currency = get_currency(code)
    except CurrencyDoesNotExist:
        raise InvalidAmount(f"unknown currency {code!r}") from None
    if not currency.numeric:
        raise InvalidAmount(f"unknown currency {code!r}")
    return len(str(currency.sub_unit)) - 1


def quantize(amount: Decimal, scale: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``amount`` to ``scale`` places, half to even (banker's rounding) unless told otherwise."""
    with decimal.localcontext(MONEY_CONTEXT) as ctx:
        ctx.traps[decimal.Inexact] = False
        return amount.quantize(Decimal(1).scaleb(-scale), rounding=rounding)


def allocate(amount: Decimal, weights: Sequence[Decimal], scale: int) -> list[Decimal]:
    """Split ``amount`` by ``weights`` into parts of ``scale`` places that add up to ``amount``.

    Largest remainder: every part is first rounded towards zero, then the units
    left over go one by one to the parts with the largest remainders (ties to the
    earliest part). ``amount`` must already be at ``scale``.
    """
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise InvalidAmount("allocation weights must be non-negative and not all zero")
    unit = Decimal(1).scaleb(-scale)
    if amount != quantize(amount, scale):
        raise InvalidAmount(f"cannot allocate {amount} exactly at {scale} decimal places")
    sign = -1 if amount < 0 else 1
    units = int(abs(amount) / unit)
    total_weight = sum(weights)
    with decimal.localcontext(MONEY_CONTEXT) as ctx:
        ctx.traps[decimal.Inexact] = False
        shares = [units * w / total_weight for w in weights]
    return [sign * part * unit for part in _largest_remainder(shares, units)]


def round_to_total(parts: Sequence[Decimal], total: Decimal, scale: int) -> list[Decimal]:
    """``parts`` rounded to ``scale`` places so that they add up to ``total``: signed largest remainder.

    Every part is first rounded down (towards minus infinity, so a negative part
    is treated like a positive one), then the units still missing go one by one to
    the parts with the largest remainders, ties to the earliest part. A part
    already at ``scale`` is never changed. ``total`` must be at ``scale`` and within
    half a unit of the parts' sum (their sum rounded, as period close rounds it).
    """
    unit = Decimal(1).scaleb(-scale)
    with decimal.localcontext(MONEY_CONTEXT):  # the sum is exact or raises
        if total != quantize(total, scale) or abs(total - sum(parts, ZERO)) > unit / 2:
            raise InvalidAmount(f"{total} is not the sum of {len(parts)} parts rounded to {scale} decimal places")
        units = [part.scaleb(scale) for part in parts]  # exact: a power of ten
        return [whole * unit for whole in _largest_remainder(units, int(total.scaleb(scale)))]


def _largest_remainder(shares: Sequence[Decimal], units: int) -> list[int]:
    """Whole numbers, one per share, adding up to ``units``: each share rounded down, then the units left
    over one by one to the shares with the largest remainders (ties to the earliest share)."""
    floors = [math.floor(share) for share in shares]
    left_over = units - sum(floors)
    if not 0 <= left_over <= len(shares):
        raise InvalidAmount(f"{units} units cannot be shared by largest remainder among {len(shares)} parts")
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in by_remainder[:left_over]:
        floors[i] += 1
    return floors


def format_decimal(value: Decimal) -> str:
    """Show a decimal with thousands separators and every digit it has (``1,200``, ``0.0030000``), never as 2.5E-7."""
    return f"{value:,f}"


def plain(value: Decimal) -> str:
    """A decimal's exact value as plain text for programs (``0.00000025``, never ``2.5E-7``), no separators."""
    return f"{value:f}"
