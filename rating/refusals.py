"""Named refusals: why an event, a payment or a payout was not accepted.

Like TigerBeetle's result codes, each refusal has one stable code that callers
match on; the message beside it is for people and may change. Event refusals
are listed in the order the engine checks them: an event refused for an
earlier reason is never examined for a later one.
"""

from __future__ import annotations

import enum


class Refusal(enum.StrEnum):
    """Why an event was not rated, in the order the checks run."""

    #: The record is not an event: not UTF-8, not JSON, too long or too deeply nested,
    #: a field missing or invalid, an id that breaks the id grammar.
    INVALID_RECORD = "invalid_record"
    #: The event id was already rated with different content.
    DUPLICATE_CONFLICT = "duplicate_conflict"
    #: The timestamp lies further in the future than the engine's tolerance.
    FUTURE_TIMESTAMP = "future_timestamp"
    #: No version of the pricebook is in force at the event's timestamp.
    NO_VERSION_IN_FORCE = "no_version_in_force"
    #: The customer is not under ``customers`` and there is no ``default_plan``.
    UNKNOWN_CUSTOMER = "unknown_customer"
    #: The customer's subscription has not started yet or has ended at that time.
    NOT_SUBSCRIBED = "not_subscribed"
    #: No meter counts events of this type.
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    #: Meters count this type, but every one's ``where`` filter excludes the event.
    EXCLUDED_BY_FILTER = "excluded_by_filter"
    #: The customer's billing period of the event is closed.
    CLOSED_PERIOD = "closed_period"
    #: A property a meter reads or groups by is absent.
    MISSING_PROPERTY = "missing_property"
    #: A quantity is not a decimal number, is negative, or is absurdly large.
    INVALID_QUANTITY = "invalid_quantity"
    #: An amount the event carries is in another currency than the charge that prices it.
    CURRENCY_MISMATCH = "currency_mismatch"
    #: The model the event names is not priced by the charge, which declares no fallback.
    UNKNOWN_MODEL = "unknown_model"
    #: Models of several providers fit the model the event names, and neither the event's ``provider``
    #: nor the charge's default ``provider`` says which (or several models of one provider fit it).
    AMBIGUOUS_MODEL = "ambiguous_model"
    #: The charges cannot be computed exactly (decimal overflow on absurd prices).
    NOT_EXACT = "not_exact"
    #: The event would take the customer's period charges beyond its ``spend_cap``.
    SPEND_CAP_REACHED = "spend_cap_reached"
    #: The wallet (grants in force and purchased funds) cannot pay the charges.
    INSUFFICIENT_FUNDS = "insufficient_funds"


class PayoutRefusal(enum.StrEnum):
    """Why ``rating payouts`` paid nothing for a week."""

    #: The week is not an ISO week such as ``2026-W47``.
    INVALID_WEEK = "invalid_week"
    #: The week has not ended yet in the pricebook's time zone: its earnings are not all in.
    WEEK_NOT_ENDED = "week_not_ended"


class CloseRefusal(enum.StrEnum):
    """Why ``close-period`` closed nothing for a customer, in the order the checks run."""

    #: No version of the pricebook is in force at the start of the period.
    NO_VERSION_IN_FORCE = "no_version_in_force"
    #: The customer's period has not ended yet (in its own time zone and anchor): usage may still come.
    PERIOD_NOT_ENDED = "period_not_ended"
    #: Usage was rated in the customer's previous period and it is still open: periods close in order.
    PREDECESSOR_OPEN = "predecessor_open"


class ValueRefusal(enum.StrEnum):
    """Why a command-line value was refused (exit code 2, before anything is read or written)."""

    #: Not a duration such as ``90s``, ``5m``, ``2h``, ``1d``, or beyond the longest one.
    INVALID_DURATION = "invalid_duration"
    #: Not a date such as ``2026-11-30``, or outside the supported years.
    INVALID_DATE = "invalid_date"
    #: Not an ISO 8601 time with its offset, or outside the supported years.
    INVALID_TIMESTAMP = "invalid_timestamp"
    #: Not a billing period label (``2026-11-23``, ``2026-W47``, ``2026-11``, ``2026``), or outside the supported years.
    INVALID_PERIOD = "invalid_period"
    #: Not a finite decimal amount within the digits an amount may have.
    INVALID_AMOUNT = "invalid_amount"
    #: Not a whole number within the flag's range.
    INVALID_COUNT = "invalid_count"
    #: A directory where a file is written, a file where a directory is, or a missing parent directory.
    INVALID_PATH = "invalid_path"
    #: Not a ``host:port`` address (``--dask``).
    INVALID_ADDRESS = "invalid_address"


class PaymentRefusal(enum.StrEnum):
    """Why a payment confirmation credited nothing, in the order the checks run."""

    #: No secret is configured to verify signatures with.
    NO_SECRET = "no_secret"
    #: The confirmation carries no signature.
    UNSIGNED = "unsigned"
    #: The signature is not hex, or matches the payload under none of the active secrets.
    BAD_SIGNATURE = "bad_signature"
    #: The payload is too large, not JSON, too deeply nested, or lacks a field.
    MALFORMED = "malformed"
    #: Its ``created`` time is further from now than the tolerance: an old signature replayed, or a wrong clock.
    STALE = "stale"
    #: The payment did not succeed.
    NOT_SUCCEEDED = "not_succeeded"
    #: The payment or customer id breaks the id grammar.
    INVALID_ID = "invalid_id"
    #: The asset is not one the pricebook declares (case matters: ``usd`` is not ``USD``).
    UNKNOWN_ASSET = "unknown_asset"
    #: The amount is not a positive decimal within the asset's scale and 10^15.
    INVALID_AMOUNT = "invalid_amount"
    #: The payment id was already credited with another customer, asset or amount, or used for another
    #: purpose (invoice payment, top-up, refund, chargeback), or the invoice it names bills another
    #: customer or currency.
    CONFLICT = "conflict"
    #: A refund or chargeback names a payment never credited to that customer, or takes back more than is left.
    UNKNOWN_PAYMENT = "unknown_payment"
    #: The invoice it names cannot take it (unknown, or more than is due: the message names the invoice refusal).
    INVOICE_REFUSED = "invoice_refused"


class RerateRefusal(enum.StrEnum):
    """Why ``rating rerate`` posted nothing at all (per-event refusals of a re-rating are :class:`Refusal` codes)."""

    #: The fixed pricebook would bill a customer's events by another period kind or anchor than billing did
    #: (say weeks instead of months): rerate corrects prices, never the periods billing put usage in.
    PERIOD_MISMATCH = "period_mismatch"


#: The event refusals in the order the engine checks them (for documentation and tests).
CHECK_ORDER: tuple[Refusal, ...] = tuple(Refusal)


class InvoiceRefusal(enum.StrEnum):
    """Why an invoice was not issued, paid or credited."""

    #: The customer's period is not closed yet: its fees, minimums and rounding are not posted.
    PERIOD_OPEN = "period_open"
    #: The customer pays from a wallet: it gets a statement, not an invoice.
    WALLET_BILLED = "wallet_billed"
    #: The billing file has no profile for the customer.
    NO_PROFILE = "no_profile"
    #: No tax rule decides the customer's tax on the invoice date.
    NO_TAX_RULE = "no_tax_rule"
    #: The profile's currency, or an asset charged, is not the pricebook currency the invoice is in.
    CURRENCY_MISMATCH = "currency_mismatch"
    #: The invoice lines do not add up to the customer's receivable movement of the period in the ledger.
    LEDGER_MISMATCH = "ledger_mismatch"
    #: Nothing was charged or posted for the customer in the period.
    NOTHING_TO_INVOICE = "nothing_to_invoice"
    #: No invoice has that number.
    UNKNOWN_INVOICE = "unknown_invoice"
    #: A payment larger than what is still due (overpayment is refused, never kept silently).
    OVERPAYMENT = "overpayment"
    #: A credit larger than what is left to credit of the invoice or its line, or than what is still due
    #: (what was paid is credited only with a refund); or a credit note that would raise what is due.
    CREDIT_EXCEEDS = "credit_exceeds"
    #: A payment or credit reference already used with other content.
    CONFLICT = "conflict"


class DocumentRefusal(enum.StrEnum):
    """Why a document (a PDF invoice or statement) was not rendered; what it shows is issued all the same."""

    #: A character of the text has no glyph in DejaVu Sans nor in the fonts the billing file names
    #: (the message names the character and its field): it is never drawn as ``?`` or left out.
    UNRENDERABLE_TEXT = "unrenderable_text"
