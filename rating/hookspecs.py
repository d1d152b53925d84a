"""Every hook a plugin can implement. Plugins are found through the entry-point group
``rating.plugins``; the built-ins in ``rating_plugins`` are registered the same way.

Hooks are for discovery and extension, not for the per-event hot path: the engine
resolves pricing models once and calls them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from rating.events import UsageEvent
    from rating.ledger import Transaction
    from rating.pricebook.pricing import PricingModel
    from rating.storage.base import Storage

PROJECT = "rating"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def rating_pricing_models() -> list[type[PricingModel]]:
    """Called once when a :class:`~rating.registry.Registry` is built.

    Return the :class:`~rating.pricebook.pricing.PricingModel` subclasses this plugin
    provides. Each class's ``name`` is what pricebooks write in ``model:``; two
    plugins offering the same name is an error, and so is a parameter named
    like one of the options every charge has (``cap``, ``included``, ...).

    Two kinds: a period-price model defines ``period_price(q)`` and is charged
    ``P(after) - P(before)``; a :class:`~rating.pricebook.pricing.PerEventModel` defines
    ``price_event(event, asset)`` and prices each event from its properties
    (``percentage``, ``llm``). :mod:`rating.testing` checks either.
    """
    raise NotImplementedError


@hookspec
def rating_storage_adapters() -> dict[str, Callable[..., Storage]]:
    """Called once when a :class:`~rating.registry.Registry` is built.

    Return a mapping from URL scheme (``memory``, ``sqlite``, ``postgresql``) to a
    factory that takes the whole URL (and the keyword ``read_only=True`` for reading
    commands: open without migrating, refuse a schema that is not current; and
    ``existing=True`` for writing commands that must not create a database: open it
    writable, but refuse a missing one, ``no_database``, or an old schema,
    ``schema_outdated``, without migrating) and returns an open
    :class:`~rating.storage.base.Storage`.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def rating_enrich_event(event: UsageEvent) -> UsageEvent | None:
    """Called for each event before it is rated, only when some plugin implements it.

    Return a new event (for example with a derived property added), or None to
    leave it to the next plugin. The first non-None result is rated. Must not
    change ``id`` or ``customer``, and must be deterministic: the event is stored
    as received and enriched again whenever it is rated.
    """


@hookspec
def rating_spend_alert(customer: str, period: str, spent: Decimal, threshold: Decimal, asset: str) -> None:
    """Called after posting, when a customer's charges in ``period`` cross its ``spend_alert``.

    Called once per crossing, with the period's charges so far. Return value is ignored.
    """


@hookspec
def rating_top_up_needed(customer: str, asset: str, available: Decimal, amount: Decimal) -> None:
    """Called after posting, when a wallet customer's available funds fall below its ``top_up.below``.

    ``amount`` is what the pricebook says to buy. The top-up itself is credited only
    by a verified payment confirmation (:func:`rating.billing.payments.confirm_payment`).
    """


@hookspec
def rating_transaction_posted(transaction: Transaction) -> None:
    """Called after a transaction is durably stored, once per new transaction.

    The posting unit is the event: a rated event's transaction is ``rating:EVENT_ID``, so for ratings this
    hook fires once per rated event (corrections, closes, payments and grants are transactions of their own).

    Not called for replays that stored nothing. Return value is ignored; an
    exception here does not undo the posting.
    """
