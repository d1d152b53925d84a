"""The one parsing layer for command-line values: durations, dates, timestamps, periods, amounts, paths.

Every flag of ``rating`` that takes such a value names one of the parsers
below as its argparse ``type=``, so a bad value is answered at parse time,
before anything is read or written, with one line and exit code 2 (see the
README's "Exit codes"). Each parser raises :class:`~rating.errors.InvalidValue`
with a :class:`~rating.refusals.ValueRefusal` code; :func:`flag` turns it into
the ``argparse.ArgumentTypeError`` argparse reports.

Values are bounded so that whatever the commands compute from them (a period's
end, ``now`` plus a tolerance, a window back from ``--until``) stays inside what
:mod:`datetime` and the money context can represent: dates, timestamps and
periods lie in the years :data:`EARLIEST_YEAR` to :data:`LATEST_YEAR`, a
duration is at most :data:`LONGEST`, an amount has at most
:data:`AMOUNT_DIGITS` integer digits and :data:`AMOUNT_PLACES` decimal places.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from rating.errors import InvalidAmount, InvalidValue
from rating.money import to_decimal
from rating.periods import parse_period
from rating.refusals import ValueRefusal

#: The first and last year a date, timestamp or period on the command line may lie in.
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000
#: The longest duration a flag takes (ten years and a bit): ``now`` plus it, ``--until`` minus it, stay representable.
LONGEST = dt.timedelta(days=3660)
#: At most this many digits before the decimal point of an amount (below 10^15, like payments).
AMOUNT_DIGITS = 15
#: At most this many decimal places of an amount.
AMOUNT_PLACES = 18
#: The largest count a count flag takes (``demo --events``, ``simulate --workers``, ``invoice credit --line``).
LARGEST_COUNT = 10_000_000

_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_PERIOD = re.compile(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?|-W[0-9]{2})?")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

T = TypeVar("T")


def _in_range(year: int, text: str, what: ValueRefusal) -> None:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise InvalidValue(what, f"{text!r} lies outside the years {EARLIEST_YEAR} to {LATEST_YEAR}")


def duration(text: str) -> dt.timedelta:
    """``90s``, ``5m``, ``2h`` or ``1d`` as a timedelta, positive and at most :data:`LONGEST`."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidValue(ValueRefusal.INVALID_DURATION, f"{text!r} is not a duration: use 90s, 5m, 2h or 1d")
    value = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not dt.timedelta(0) < value <= LONGEST:
        raise InvalidValue(
            ValueRefusal.INVALID_DURATION, f"{text!r}: a duration is more than 0 and at most {LONGEST.days}d"
        )
    return value


def tolerance(text: str) -> dt.timedelta | None:
    """A :func:`duration`, or ``none`` for no limit at all."""
    return None if text == "none" else duration(text)


def window(text: str) -> str:
    """A report window: ``30d`` or ``24h`` back from ``--until``, or a billing period label such as ``2026-11``."""
    match = _DURATION.fullmatch(text)
    if match is not None and match.group(2) in "dh":
        duration(text)
        return text
    if not _PERIOD.fullmatch(text):
        raise InvalidValue(
            ValueRefusal.INVALID_PERIOD, f"{text!r} is not a window: use 30d, 24h or a period such as 2026-11"
        )
    return period(text)


def date(text: str) -> dt.date:
    """A calendar day written ``2026-11-30``."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise InvalidValue(ValueRefusal.INVALID_DATE, f"{text!r} is not a date: use 2026-11-30")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as error:
        raise InvalidValue(ValueRefusal.INVALID_DATE, f"{text!r} is not a date ({error})") from None
    _in_range(day.year, text, ValueRefusal.INVALID_DATE)
    return day


def timestamp(text: str) -> dt.datetime:
    """An ISO 8601 time with its offset, e.g. ``2026-11-30T12:00:00Z``."""
    try:
        moment = dt.datetime.fromisoformat(text) if text.isascii() else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidValue(
            ValueRefusal.INVALID_TIMESTAMP, f"{text!r} is not a time: use ISO 8601 with a zone, e.g. 2026-11-30T12:00Z"
        )
    if moment.tzinfo is None:
        raise InvalidValue(ValueRefusal.INVALID_TIMESTAMP, f"{text!r} needs a time zone, e.g. {text}Z")
    _in_range(moment.year, text, ValueRefusal.INVALID_TIMESTAMP)
    return moment


def period(text: str) -> str:
    """A billing period label: ``2026-11-23`` (day), ``2026-W47`` (week), ``2026-11`` (month) or ``2026`` (year)."""
    try:
        if not _PERIOD.fullmatch(text):  # parse_period alone would take "2026-+1" or full-width digits
            raise ValueError(f"{text!r} is not a period: use 2026-11-23, 2026-W47, 2026-11 or 2026")
        _, first = parse_period(text)
    except ValueError as error:
        raise InvalidValue(ValueRefusal.INVALID_PERIOD, str(error)) from None
    _in_range(first.year, text, ValueRefusal.INVALID_PERIOD)
    return text


def week(text: str) -> str:
    """An ISO week label such as ``2026-W47``."""
    if parse_period(period(text))[0] != "week":
        raise InvalidValue(ValueRefusal.INVALID_PERIOD, f"{text!r} is not an ISO week: use 2026-W47")
    return text


def amount(text: str) -> Decimal:
    """A decimal amount such as ``12.50``: finite, at most 15 integer digits and 18 decimal places."""
    try:
        value = to_decimal(text, "the amount")
    except InvalidAmount as error:
        raise InvalidValue(ValueRefusal.INVALID_AMOUNT, str(error)) from None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite Decimal's exponent is an int
    if value.adjusted() >= AMOUNT_DIGITS or -exponent > AMOUNT_PLACES:
        raise InvalidValue(
            ValueRefusal.INVALID_AMOUNT,
            f"{text!r}: an amount has at most {AMOUNT_DIGITS} digits before the point and {AMOUNT_PLACES} after",
        )
    return value


def percentage(text: str) -> Decimal:
    """A percentage such as ``20%`` or ``-5``, as the number of percent."""
    return amount(text.removesuffix("%"))


def count(text: str) -> int:
    """A whole number from 1 to :data:`LARGEST_COUNT`."""
    if not re.fullmatch(r"[0-9]{1,9}", text) or not 1 <= int(text) <= LARGEST_COUNT:
        raise InvalidValue(ValueRefusal.INVALID_COUNT, f"{text!r} is not a whole number from 1 to {LARGEST_COUNT:,}")
    return int(text)


def port(text: str) -> int:
    """A TCP port from 1 to 65535."""
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= 65_535:
        raise InvalidValue(ValueRefusal.INVALID_ADDRESS, f"{text!r} is not a port from 1 to 65535")
    return int(text)


def _path(text: str) -> Path:
    if not text or "\x00" in text:  # the OS would refuse it with a ValueError
        raise InvalidValue(ValueRefusal.INVALID_PATH, f"{text!r} is not a file name")
    return Path(text)


def output_file(text: str) -> str:
    """A file to write: not a directory, in a directory that exists."""
    path = _path(text)
    if path.is_dir():
        raise InvalidValue(ValueRefusal.INVALID_PATH, f"{text}: is a directory, not a file to write")
    if not path.parent.is_dir():
        raise InvalidValue(ValueRefusal.INVALID_PATH, f"{text}: no such directory {str(path.parent)!r}")
    return text


def output_dir(text: str) -> str:
    """A directory to write files into: it exists, or can be made (no file is in the way)."""
    path = _path(text)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InvalidValue(ValueRefusal.INVALID_PATH, f"{text}: {folder} is a file, not a directory")
            break
    return text


def database(text: str) -> str:
    """A storage URL, or a SQLite file path that is not a directory."""
    if "://" not in text and not text.startswith("memory:") and _path(text).is_dir():
        raise InvalidValue(ValueRefusal.INVALID_PATH, f"{text}: is a directory, not a database file")
    return text


_ADDRESS = re.compile(r"([a-z]+://)?([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}/?")


def address(text: str) -> str:
    """A Dask scheduler address such as ``tcp://host:8786``."""
    if not _ADDRESS.fullmatch(text):
        raise InvalidValue(ValueRefusal.INVALID_ADDRESS, f"{text!r} is not a scheduler address: use tcp://host:8786")
    return text


def flag(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse ``type=``: its :class:`InvalidValue` becomes argparse's one-line usage error."""

    def as_type(text: str) -> T:
        try:
            return parse(text)
        except InvalidValue as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    as_type.__name__ = parse.__name__  # argparse names the type in some of its messages
    return as_type
