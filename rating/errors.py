"""Every error the library raises on purpose subclasses :class:`RatingError`.

Each class is a named result, in the spirit of TigerBeetle's result codes: a
caller can catch exactly the failure it knows how to handle, and the message is
one line a person can act on.
"""

from __future__ import annotations

from rating.refusals import (
    CustomerRefusal,
    DocumentRefusal,
    InvoiceRefusal,
    JournalRefusal,
    PayoutRefusal,
    Refusal,
    RerateRefusal,
    ValueRefusal,
    WebhookRefusal,
)


class RatingError(Exception):
    """Base class of all errors raised by ``rating``."""


class InvalidAmount(RatingError, ValueError):
    """A value on the money path is not an exact, finite decimal (a float, a bool, NaN, text).

    Also a ValueError, so pydantic reports it as a validation error of the field.
    """


class InvalidValue(RatingError, ValueError):
    """A command-line value (a duration, date, time, period, amount, count, path) is refused (:mod:`rating.cli.args`).

    ``code`` is a :class:`~rating.refusals.ValueRefusal`.
    """

    def __init__(self, code: ValueRefusal, message: str) -> None:
        self.code = ValueRefusal(code)
        super().__init__(message)


class PricebookError(RatingError):
    """A pricebook cannot be loaded. ``problems`` lists every ``file:line:column: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


class InvalidId(RatingError, ValueError):
    """An id breaks the id grammar (:data:`rating.accounts.ID_GRAMMAR`).

    Also a ValueError, so pydantic reports it as a validation error of the field.
    """


class PluginError(RatingError):
    """A plugin is broken: two plugins claim one name, or a hook returned the wrong thing."""


class EventError(RatingError):
    """An event cannot be rated; ``code`` names why (a :class:`~rating.refusals.Refusal`).

    Callers match on ``code``, never on the message, which is for people.
    """

    def __init__(self, code: Refusal, message: str) -> None:
        self.code = Refusal(code)
        super().__init__(message)


class InvalidTransaction(RatingError):
    """A transaction cannot be built: it has no id, or a timestamp without a time zone."""


class UnbalancedTransaction(InvalidTransaction):
    """A transaction's postings do not sum to zero for some asset."""


class TransactionConflict(RatingError):
    """A transaction id is already stored with different content."""


class EventConflict(EventError):
    """An event id was already rated with different content (``duplicate_conflict``)."""

    def __init__(self, message: str) -> None:
        super().__init__(Refusal.DUPLICATE_CONFLICT, message)


class LimitExceeded(RatingError):
    """A write would take an account's balance beyond the limit it was given; nothing was written."""

    def __init__(self, account: str, asset: str, balance: object, limit: object) -> None:
        self.account, self.asset, self.balance, self.limit = account, asset, balance, limit
        super().__init__(f"{account} would reach {balance} {asset}, beyond its limit of {limit} {asset}")


class InsufficientFunds(EventError):
    """A wallet has less available than a reservation or a charge needs (``insufficient_funds``); nothing was posted.

    The one error for this refusal, whether rating an event or reserving funds.
    """

    def __init__(self, message: str) -> None:
        super().__init__(Refusal.INSUFFICIENT_FUNDS, message)


class PayoutRefused(RatingError):
    """A week's payouts were refused; ``code`` names why (a :class:`~rating.refusals.PayoutRefusal`)."""

    def __init__(self, code: PayoutRefusal, message: str) -> None:
        self.code = PayoutRefusal(code)
        super().__init__(message)


class RerateRefused(RatingError):
    """A re-rating was refused as a whole and posted nothing; ``code`` is a :class:`~rating.refusals.RerateRefusal`."""

    def __init__(self, code: RerateRefusal, message: str) -> None:
        self.code = RerateRefusal(code)
        super().__init__(f"{self.code}: {message}")


class UnknownDeposit(RatingError):
    """A refund or chargeback names a deposit the customer never made, or takes back more than is left of it."""


class ReservationError(RatingError):
    """A reservation is unknown, already settled or voided, or not yet expired."""


class PeriodClosed(RatingError):
    """A write would post usage into a closed (customer, period); nothing was written.

    The engine never meets it (it reads closed periods inside the same write); a caller that
    stores ratings priced earlier, outside the write, does.
    """


class StorageError(RatingError):
    """The storage cannot be opened, written or read; ``code`` names the known cases.

    Codes: ``no_database`` (no database, or no rating schema in it, where a command needs an existing one),
    ``schema_outdated`` (a command other than ``rate`` and ``db migrate`` met a database that needs
    ``rating db migrate``), ``schema_newer`` (written by a newer rating), ``damaged`` (the file is not a
    database any more, or a command tripped on a row ``rating verify`` names), or None.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(f"{code}: {message}" if code else message)


class InvoiceError(RatingError):
    """An invoice was not issued; ``code`` is a :class:`~rating.refusals.InvoiceRefusal`."""

    def __init__(self, code: InvoiceRefusal, message: str) -> None:
        self.code = InvoiceRefusal(code)
        super().__init__(f"{self.code}: {message}")


class DocumentError(RatingError):
    """A document (a PDF) was not rendered; ``code`` is a :class:`~rating.refusals.DocumentRefusal`.

    What it renders (an issued invoice, a statement) stands: only the document is not written."""

    def __init__(self, code: DocumentRefusal, message: str) -> None:
        self.code = DocumentRefusal(code)
        super().__init__(f"{self.code}: {message}")


class CustomerError(RatingError):
    """A customer version was not stored; ``code`` is a :class:`~rating.refusals.CustomerRefusal`."""

    def __init__(self, code: CustomerRefusal, message: str) -> None:
        self.code = CustomerRefusal(code)
        super().__init__(f"{self.code}: {message}")


class WebhookError(RatingError):
    """A webhook endpoint was not stored or a message not replayed; ``code`` is a
    :class:`~rating.refusals.WebhookRefusal`."""

    def __init__(self, code: WebhookRefusal, message: str) -> None:
        self.code = WebhookRefusal(code)
        super().__init__(f"{self.code}: {message}")


class JournalError(RatingError):
    """A general-ledger journal was not written; ``code`` is a :class:`~rating.refusals.JournalRefusal`."""

    def __init__(self, code: JournalRefusal, message: str) -> None:
        self.code = JournalRefusal(code)
        super().__init__(f"{self.code}: {message}")
