"""rating: exact, auditable rating of metered usage into double-entry ledger postings.

The public API::

    from rating import Engine, Registry, load_pricebook, read_events

    registry = Registry.load()
    engine = Engine(load_pricebook("pricebook.yaml", registry), registry.open_storage("rating.db"), registry)
    report = engine.rate_batch(read_events("events.jsonl"))
"""

from rating.charges import Charge, RatedEvent, Usage
from rating.engine import BatchReport, Engine, Rejection
from rating.errors import (
    EventConflict,
    EventError,
    InsufficientFunds,
    InvalidAmount,
    InvalidId,
    PeriodClosed,
    PluginError,
    PricebookError,
    RatingError,
    StorageError,
    TransactionConflict,
    UnbalancedTransaction,
)
from rating.events import Attribution, Sourced, UsageEvent, read_events
from rating.ledger import Posting, Transaction, reversal
from rating.pricebook import Pricebook, load_pricebook, parse_pricebook
from rating.pricing import PricingModel
from rating.refusals import PaymentRefusal, PayoutRefusal, Refusal
from rating.registry import Registry
from rating.storage import StaleState, Storage

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "BatchReport",
    "Charge",
    "Engine",
    "EventConflict",
    "EventError",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidId",
    "PaymentRefusal",
    "PayoutRefusal",
    "PeriodClosed",
    "PluginError",
    "Posting",
    "Pricebook",
    "PricebookError",
    "PricingModel",
    "RatedEvent",
    "RatingError",
    "Refusal",
    "Registry",
    "Rejection",
    "Sourced",
    "StaleState",
    "Storage",
    "StorageError",
    "Transaction",
    "TransactionConflict",
    "UnbalancedTransaction",
    "Usage",
    "UsageEvent",
    "load_pricebook",
    "parse_pricebook",
    "read_events",
    "reversal",
]
