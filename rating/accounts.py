"""Identifiers and ledger account names: the id grammar, and every account name built and parsed here only.

Account names join ids with ``:`` (``customer:acme:wallet``). They stay
unambiguous because no id may contain ``:``: customer, agent, creator, grant,
reservation and payment ids follow :data:`ID_GRAMMAR`, checked at every entry
(events, pricebooks, wallet and payment calls). Storage never looks accounts
up by a string prefix: callers name the exact accounts they want, and the
functions here tell what an account belongs to.

Plan, meter, contract and asset names in accounts are pricebook names
(letters, digits, ``_``, ``.``, ``-``), which cannot contain ``:`` either.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache, partial
from typing import Annotated

from pydantic import AfterValidator

from rating.errors import InvalidId

#: The id grammar, as the README states it.
ID_GRAMMAR = (
    "1 to 128 characters, none of them ':', white space, or a control, format, surrogate,"
    " private-use or unassigned character"
)
MAX_ID_LENGTH = 128
#: Event ids are free text, but bounded: at most this many characters, valid UTF-8, no control characters.
MAX_EVENT_ID_LENGTH = 256
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


@lru_cache(maxsize=65536)
def _problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long, more than {MAX_ID_LENGTH}"
    for character in value:
        if character == ":":
            return "must not contain ':'"
        if character.isspace() or unicodedata.category(character) in _FORBIDDEN_CATEGORIES:
            return f"must not contain the character U+{ord(character):04X}"
    return None


def check_id(kind: str, value: object) -> str:
    """``value`` if it is a valid ``kind`` id (customer, agent, creator, grant, ...); else :class:`InvalidId`."""
    if not isinstance(value, str):
        raise InvalidId(f"{kind} id must be text, got {type(value).__name__}")
    problem = _problem(value)
    if problem is not None:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidId(f"{kind} id {shown!r} {problem} (ids are {ID_GRAMMAR})")
    return value


def check_free_text(kind: str, value: str, limit: int = MAX_EVENT_ID_LENGTH) -> str:
    """``value`` if it is bounded free text (event ids, sessions, orders); else :class:`InvalidId`."""
    if not value or len(value) > limit:
        raise InvalidId(f"{kind} must be 1 to {limit} characters, got {len(value)}")
    if value.isascii() and value.isprintable():
        return value  # the common case: ASCII is UTF-8, and its only control characters are not printable
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidId(f"{kind} is not valid UTF-8 (it holds a lone surrogate)") from None
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise InvalidId(f"{kind} must not contain control characters such as NUL")
    return value


#: Pydantic field types that enforce the id grammar.
CustomerId = Annotated[str, AfterValidator(partial(check_id, "customer"))]
AgentId = Annotated[str, AfterValidator(partial(check_id, "agent"))]
CreatorId = Annotated[str, AfterValidator(partial(check_id, "creator"))]
EventId = Annotated[str, AfterValidator(partial(check_free_text, "event id"))]
FreeText = Annotated[str, AfterValidator(partial(check_free_text, "value"))]


# -- accounts of a customer ---------------------------------------------------------


@lru_cache(maxsize=65536)  # one string per customer, not one per posting
def receivable_account(customer: str) -> str:
    """What ``customer`` owes: debited by every charge not paid from a wallet."""
    return f"customer:{customer}:receivable"


@lru_cache(maxsize=65536)
def wallet_account(customer: str) -> str:
    """What ``customer`` can spend from a prepaid wallet (a credit balance: the platform owes it)."""
    return f"customer:{customer}:wallet"


def grant_account(customer: str, grant: str) -> str:
    """What is left of one grant (promotional, purchased, rollover credit) of ``customer``."""
    return f"customer:{customer}:grant:{grant}"


def held_account(customer: str) -> str:
    """What reservations of ``customer`` set aside from the wallet."""
    return f"customer:{customer}:held"


def prepaid_account(customer: str) -> str:
    """A prepaid commitment not yet used: credited by the prepayment, debited as usage draws it down."""
    return f"customer:{customer}:prepaid"


def refund_account(customer: str) -> str:
    """What the platform owes ``customer`` back: invoice amounts already paid and then credited with a refund."""
    return f"customer:{customer}:refund"


# -- the platform's accounts ----------------------------------------------------------

#: Revenue shared out of charges (creator and processor shares): a contra-revenue account.
SHARES_ACCOUNT = "revenue:shares"
#: What is owed to the payment processor.
PROCESSOR_ACCOUNT = "payable:processor"
#: What the platform owes model providers for usage it resold.
PROVIDERS_ACCOUNT = "payable:providers"
#: Where the remainders of expired grants go.
FORFEITED_ACCOUNT = "revenue:forfeited"
#: Where confirmed payments come from.
PAYMENTS_ACCOUNT = "payments:received"


def revenue_account(plan: str, meter: str) -> str:
    """Revenue earned by ``plan`` on ``meter``: credited by every charge."""
    return f"revenue:{plan}:{meter}"


def contract_revenue_account(contract: str) -> str:
    """Revenue from a contract's commitment true-ups."""
    return f"revenue:contract:{contract}"


def cost_account(meter: str) -> str:
    """What usage of ``meter`` cost the platform (debited beside every charge)."""
    return f"expense:provider:{meter}"


def creator_account(creator: str) -> str:
    """Earnings owed to an agent's creator, until paid out."""
    return f"payable:creator:{creator}"


def grants_account(kind: str) -> str:
    """Where grants of ``kind`` (promotional, purchased, rollover) come from."""
    return f"grants:{kind}"


def rounding_account(asset: str) -> str:
    """Where period-close rounding differences of ``asset`` go."""
    return f"rounding:{asset}"


def payouts_account(asset: str) -> str:
    """What has been paid out to creators in ``asset``, for the payment processor."""
    return f"payouts:{asset}"


def tax_account(tax: str, country: str) -> str:
    """Where tax ``tax`` (its name, spaces as ``_``) of ``country`` is held until paid to the authority:
    ``tax:NAME:COUNTRY``."""
    return f"tax:{tax.replace(' ', '_')}:{country}"


# -- parsing ----------------------------------------------------------------------------


def customer_account(account: str) -> tuple[str, str] | None:
    """(customer, role) of a customer's account (``customer:acme:wallet`` is ``("acme", "wallet")``), or None."""
    parts = account.split(":")
    return (parts[1], parts[2]) if len(parts) >= 3 and parts[0] == "customer" else None


def customer_of(account: str) -> str | None:
    """The customer an account belongs to (``customer:ID:...``), or None."""
    owner = customer_account(account)
    return owner[0] if owner is not None else None


def creator_of(account: str) -> str | None:
    """The creator whose earnings ``account`` holds (``payable:creator:ID``), or None."""
    parts = account.split(":")
    return parts[2] if len(parts) == 3 and parts[:2] == ["payable", "creator"] else None


_COST = cost_account("")


def is_cost(account: str) -> bool:
    """Whether ``account`` records what usage cost the platform (``expense:provider:METER``)."""
    return account.startswith(_COST) and account.count(":") == 2
