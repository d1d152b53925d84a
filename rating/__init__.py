"""rating: exact, auditable rating of metered usage into double-entry ledger postings.

The public API::

    from rating import Engine, Registry, load_pricebook, read_events

    registry = Registry.load()
    engine = Engine(load_pricebook("pricebook.yaml", registry), registry.open_storage("rating.db"), registry)
    report = engine.rate_batch(read_events("events.jsonl"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rating.core.charges import Charge, RatedEvent, Usage
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
    from rating.pricebook.model import Pricebook, load_pricebook, parse_pricebook
    from rating.pricebook.pricing import PricingModel
    from rating.refusals import PaymentRefusal, PayoutRefusal, Refusal
    from rating.registry import Registry
    from rating.storage import StaleState, Storage

from rating import _compat

_compat.install()  # the modules that moved into packages in 0.2 import under their old names for one release

__version__ = "0.1.0"

# The public names and the module each comes from. They load on first use (PEP 562), so that
# importing one module of the package (``import rating.money``) loads that module and what it
# imports, not the engine, storage and plugin machinery behind ``Engine``.
_EXPORTS: dict[str, str] = {
    "Attribution": "rating.events",
    "BatchReport": "rating.engine",
    "Charge": "rating.core.charges",
    "Engine": "rating.engine",
    "EventConflict": "rating.errors",
    "EventError": "rating.errors",
    "InsufficientFunds": "rating.errors",
    "InvalidAmount": "rating.errors",
    "InvalidId": "rating.errors",
    "PaymentRefusal": "rating.refusals",
    "PayoutRefusal": "rating.refusals",
    "PeriodClosed": "rating.errors",
    "PluginError": "rating.errors",
    "Posting": "rating.ledger",
    "Pricebook": "rating.pricebook.model",
    "PricebookError": "rating.errors",
    "PricingModel": "rating.pricebook.pricing",
    "RatedEvent": "rating.core.charges",
    "RatingError": "rating.errors",
    "Refusal": "rating.refusals",
    "Registry": "rating.registry",
    "Rejection": "rating.engine",
    "Sourced": "rating.events",
    "StaleState": "rating.storage",
    "Storage": "rating.storage",
    "StorageError": "rating.errors",
    "Transaction": "rating.ledger",
    "TransactionConflict": "rating.errors",
    "UnbalancedTransaction": "rating.errors",
    "Usage": "rating.core.charges",
    "UsageEvent": "rating.events",
    "load_pricebook": "rating.pricebook.model",
    "parse_pricebook": "rating.pricebook.model",
    "read_events": "rating.events",
    "reversal": "rating.ledger",
}

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


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access, then keep it on the package."""
    module = _EXPORTS.get(name)
    if module is None:
        # AttributeError (not ImportError) lets ``from rating import submodule`` fall back to the import system.
        raise AttributeError(f"module 'rating' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The loaded names and the public names not loaded yet."""
    return sorted({*globals(), *_EXPORTS})
