"""Rate cards: a customer's terms for a stretch of time in which nothing about them changes, resolved once.

A card holds what pricing needs for every event of one customer between two
instants: the version in force, the plan, the billing period (label and
bounds), the charges by meter and the contract. The card ends at the first of
the period's end and the next instant at which the customer's terms may change
(a version taking effect, a plan change, a subscription or a contract starting
or ending). A steady-state event touches its customer's card, not the catalog:
no bisection of versions, no scan of subscription spans or contracts, no period
labelling.

Cards are kept per customer in a least-recently-used cache of
:data:`CARDS_KEPT` customers (one card each, the last one used), so memory is
bounded whatever the number of customers seen; a customer whose card was
evicted, or whose event falls outside it, has a new card resolved. Threads
may share a pricer: a card is immutable, and two threads resolving the same
customer's card at once resolve equal cards.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from rating.core.compiled import Charges, CompiledVersion
from rating.pricebook.model import Contract, CustomerSpec

#: How many customers' rate cards a pricer keeps (about 1 KB each): the least recently used go first.
CARDS_KEPT = 65_536


class RateCard(NamedTuple):
    """A customer's terms for every event in ``[start, end)``."""

    start: dt.datetime
    end: dt.datetime
    version: CompiledVersion
    plan: str
    period: str
    charges: Charges
    contract: Contract | None
    contract_name: str
    #: The customer's entry in the version (None: a customer it does not name), for the policies.
    spec: CustomerSpec | None
    #: The account that owes the charges: the customer's wallet or its receivable.
    payer: str
    #: Whether the charges are paid from the customer's wallet.
    from_wallet: bool


class RateCards:
    """The rate card of each recently seen customer, resolved by ``resolve`` when missing or outgrown."""

    def __init__(self, resolve: Callable[[str, dt.datetime], RateCard], kept: int | None = None) -> None:
        """``kept``: how many customers' cards (default :data:`CARDS_KEPT`, read when the cache is made)."""
        kept = CARDS_KEPT if kept is None else kept
        if kept < 1:
            raise ValueError("a rate card cache keeps at least one card")
        self._resolve = resolve
        self._kept = kept
        self._cards: OrderedDict[str, RateCard] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cards)

    def at(self, customer: str, timestamp: dt.datetime) -> RateCard:
        """``customer``'s card for ``timestamp`` (raises what resolving raises: no version, not subscribed)."""
        cards = self._cards
        card = cards.get(customer)
        if card is not None and card.start <= timestamp < card.end:
            try:  # noqa: SIM105 - the hot path: a try costs nothing when nothing is raised, suppress() a call
                cards.move_to_end(customer)
            except KeyError:  # another thread evicted it meanwhile: the card itself is still right
                pass
            return card
        card = cards[customer] = self._resolve(customer, timestamp)
        try:
            cards.move_to_end(customer)
            while len(cards) > self._kept:
                cards.popitem(last=False)
        except KeyError:  # threads evicting at once: the next call evicts what is left over
            pass
        return card

    def clear(self) -> None:
        """Forget every card (the terms they hold changed)."""
        self._cards.clear()
