"""Named refusals: why an event, a payment or a payout was not accepted.

Like TigerBeetle's result codes, each refusal has one stable code that callers
match on; the message beside it is for people and may change. Event refusals
are checked in the order of :data:`REFUSAL_TABLE`: where one stage checks
several things at once (every meter and charge of the event), the refusal
listed first wins, whatever the order of the meters. The README's table of
refusal codes is this table (a test keeps them equal).
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
    #: A group value or ``unique`` member is not text (a number, boolean, object or list) or is too long.
    INVALID_PROPERTY = "invalid_property"
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
    #: What the period carries into the next one (a rollover allowance, a prepaid commitment) could not be settled
    #: there: a wallet that cannot fund the correction. Fund it and close again.
    CARRY_UNSETTLED = "carry_unsettled"


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
    #: Not a time zone of the tz database, such as ``Europe/Berlin`` or ``UTC`` (``journal export --timezone``).
    INVALID_TIMEZONE = "invalid_timezone"


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


class CustomerRefusal(enum.StrEnum):
    """Why a customer version (added, changed or subscribed as data, :mod:`rating.customers`) was not stored."""

    #: The spec is not a valid customer of the pricebook (the message is the pricebook's own one line).
    INVALID_CUSTOMER = "invalid_customer"
    #: No customer of that id is stored (nor seeded by the pricebook).
    UNKNOWN_CUSTOMER = "unknown_customer"
    #: The change takes effect before the latest event already rated in the customer's open period.
    BEFORE_RATED_USAGE = "before_rated_usage"
    #: A time-zone or period-anchor change that would take effect inside the customer's current period.
    MID_PERIOD_ANCHOR = "mid_period_anchor"
    #: The (customer, sequence) is already stored with other content (a concurrent change won the race).
    CONFLICT = "conflict"


#: Every event refusal in the order the pipeline checks them, with what it means (the README's table).
REFUSAL_TABLE: tuple[tuple[Refusal, str], ...] = (
    (
        Refusal.INVALID_RECORD,
        "the record is not an event: not UTF-8, not JSON, text that is not Unicode (a lone surrogate escaped in"
        " JSON), a key given twice, over a limit (line length, nesting, id length), a field missing or invalid"
        " (a timestamp that is not ISO 8601 text with an offset), an id breaking the id grammar",
    ),
    (
        Refusal.DUPLICATE_CONFLICT,
        "its id was already rated with different content (the same content again is a replay: posted once, not"
        " refused)",
    ),
    (
        Refusal.FUTURE_TIMESTAMP,
        "it is stamped later than now plus `--future-tolerance` (`rating rate`: 5m unless told `none`;"
        " `Engine(future_tolerance=...)` defaults to None, any time, for library callers that back-fill)",
    ),
    (Refusal.NO_VERSION_IN_FORCE, "no version of the pricebook is in force at its timestamp"),
    (Refusal.UNKNOWN_CUSTOMER, "its customer is not under `customers` and there is no `default_plan`"),
    (Refusal.NOT_SUBSCRIBED, "its customer's subscription has not started yet, or has ended, at that time"),
    (Refusal.UNKNOWN_EVENT_TYPE, "no meter counts events of its type"),
    (Refusal.EXCLUDED_BY_FILTER, "meters count its type, but every one's `where` filter excludes it"),
    (Refusal.CLOSED_PERIOD, "its customer's billing period is closed (`rating close-period`)"),
    (Refusal.MISSING_PROPERTY, "a property a meter or a charge reads or groups by is absent"),
    (
        Refusal.INVALID_PROPERTY,
        "a group value or `unique` member is not text (a number, boolean, object or list) or is longer than"
        " 1,024 UTF-8 bytes",
    ),
    (
        Refusal.INVALID_QUANTITY,
        'a quantity is not a decimal number (`"1_000"` and `" 12 "` are not), is negative, or is absurdly large'
        " (10^16 or more); a token count is not a whole number or exceeds the count it is part of",
    ),
    (
        Refusal.CURRENCY_MISMATCH,
        "an amount it carries is in another currency than the charge that prices it (`percentage`)",
    ),
    (Refusal.UNKNOWN_MODEL, "the model it names has no price in the `llm` charge, which declares no `fallback`"),
    (
        Refusal.AMBIGUOUS_MODEL,
        "models of several providers in the `llm` charge fit the model it names, and neither its `provider` nor"
        " the charge's default `provider` says which (or several models of one provider fit it)",
    ),
    (
        Refusal.NOT_EXACT,
        "its charges cannot be computed exactly (a decimal overflow on absurd prices); nothing is rounded",
    ),
    (
        Refusal.SPEND_CAP_REACHED,
        "it would take its customer's period charges beyond the customer's `spend_cap`",
    ),
    (
        Refusal.INSUFFICIENT_FUNDS,
        "its customer pays from a wallet that cannot pay it (also raised by `Wallets.reserve`)",
    ),
)

#: The event refusals in the order the pipeline checks them.
CHECK_ORDER: tuple[Refusal, ...] = tuple(code for code, _ in REFUSAL_TABLE)
_RANK = {code: rank for rank, code in enumerate(CHECK_ORDER)}


def rank(code: Refusal) -> int:
    """Where ``code`` comes in :data:`CHECK_ORDER`: of several refusals found at one stage, the lowest wins."""
    return _RANK[code]


def refusal_table() -> str:
    """:data:`REFUSAL_TABLE` as the README's Markdown table (a test keeps the README equal to it)."""
    rows = ["| code | the event is refused because |", "| --- | --- |"]
    rows += [f"| `{code}` | {meaning} |" for code, meaning in REFUSAL_TABLE]
    return "\n".join(rows)


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
    #: The document's language has no labels: neither built in (en, de), nor shipped (fr, es, pl), nor a
    #: translation file the billing file names under ``languages:``.
    UNKNOWN_LANGUAGE = "unknown_language"


class VerifyRefusal(enum.StrEnum):
    """Why ``rating verify`` found the ledger and the per-event records apart (each problem line starts with one)."""

    #: What the rating and correction transactions of a customer credit a revenue account (``revenue:PLAN:METER``)
    #: in an asset is not minus the sum of the customer's charge records of that plan and meter in that asset.
    REVENUE_NOT_RECORDED = "revenue_not_recorded"
    #: A stored period state is not the latest ``after`` of the meter readings of its key (customer, meter, group,
    #: period), or a unique-count state does not count its members.
    STATE_NOT_RECORDED = "state_not_recorded"
    #: A stored API key is not a SHA-256 (64 lowercase hex digits): stored in clear, or damaged; no key can match it.
    API_KEY_NOT_HASHED = "api_key_not_hashed"
    #: A stored API key's scopes are not some of read, write and admin.
    API_KEY_MALFORMED = "api_key_malformed"
    #: A kept idempotent request is not as the server writes it: its key outside the grammar, its owner or
    #: fingerprint not a SHA-256, its time unreadable, or an answer without its HTTP status or body.
    IDEMPOTENCY_MALFORMED = "idempotency_malformed"
    #: An outbox message of a type the library does not announce, or whose payload is not the JSON body of its type;
    #: or a delivery log line in a state the log does not know.
    OUTBOX_MALFORMED = "outbox_malformed"
    #: A delivery log line names an outbox message that is not stored, or an endpoint never added.
    DELIVERY_UNREFERENCED = "delivery_unreferenced"


class WebhookRefusal(enum.StrEnum):
    """Why a webhook endpoint was not stored or a message not replayed (:mod:`rating.webhooks`)."""

    #: A secret Standard Webhooks cannot sign with (``whsec_`` and base64 of at least 24 bytes), or none.
    INVALID_SECRET = "invalid_secret"
    #: The URL is not ``http://`` or ``https://``, or an event type is not one the library announces.
    INVALID_ENDPOINT = "invalid_endpoint"
    #: No webhook endpoint of that id (or it was removed).
    UNKNOWN_ENDPOINT = "unknown_endpoint"
    #: No outbox message of that id.
    UNKNOWN_MESSAGE = "unknown_message"


class JournalRefusal(enum.StrEnum):
    """Why ``rating journal export`` wrote no journal (:mod:`rating.billing.journal`)."""

    #: Ledger accounts with postings in the period that no rule of the account-mapping file maps (all are named).
    UNMAPPED_ACCOUNTS = "unmapped_accounts"
