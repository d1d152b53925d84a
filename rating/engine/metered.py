"""Metered requests: hold the quoted price before the work runs, then rate the event and pay it from the hold.

The two phases of a request whose price is known only once it ran (an LLM call,
say): :meth:`~MeteredRequests.authorize` reserves the quoted price of an
estimate from the customer's wallet; :meth:`~MeteredRequests.rate_reserved`
rates the event as it ran and settles the reservation in the same commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from rating.core.charges import RatedEvent
from rating.engine.reports import BatchReport
from rating.errors import ReservationError
from rating.events import UsageEvent
from rating.money import ZERO, plain
from rating.storage.base import ScopeConflict, Storage
from rating.wallet.wallets import Reservation, Wallets


class MeteredRequests:
    """The engine's metered-request half."""

    storage: Storage
    clock: Callable[[], dt.datetime]

    if TYPE_CHECKING:

        def quote(self, event: UsageEvent) -> RatedEvent: ...

        def _post(
            self,
            pending: list[tuple[str, UsageEvent]],
            report: BatchReport,
            *,
            strict: bool,
            raise_rejects: bool = False,
            held: Reservation | None = None,
        ) -> list[RatedEvent]: ...

    def authorize(
        self, estimate: UsageEvent, reservation: str | None = None, timeout: dt.timedelta = dt.timedelta(minutes=5)
    ) -> Reservation:
        """Hold the quoted price of a metered request before the work runs; its first phase.

        ``estimate`` is the request as expected (the tokens asked for, say); its
        price, quoted against the stored state, is reserved from the customer's
        wallet under ``reservation`` (default: the event id) for ``timeout``. The
        second phase is :meth:`rate_reserved` with the event as it ran. Raises
        :class:`~rating.errors.ReservationError` for a price in several assets or
        of zero (a reservation holds one positive amount of one asset), and
        :class:`~rating.errors.InsufficientFunds` when the wallet cannot hold it;
        nothing is posted then. A retry with the same id returns the same hold.
        """
        totals = self.quote(estimate).total()
        if len(totals) > 1:
            raise ReservationError(
                f"request {estimate.id} is priced in {', '.join(sorted(totals))}: a reservation holds one asset"
            )
        asset, amount = next(iter(totals.items()), ("", ZERO))
        if amount <= 0:
            raise ReservationError(
                f"request {estimate.id} is priced at {plain(amount)}{' ' + asset if asset else ''}: nothing to hold"
            )
        wallets = Wallets(self.storage, self.clock)
        return wallets.reserve(estimate.customer, asset, amount, reservation or estimate.id, timeout)

    def rate_reserved(self, event: UsageEvent, reservation: str) -> RatedEvent | None:
        """Rate a metered request's event and pay it from its reservation, in one commit.

        The second phase of a metered request (the first is
        :meth:`Wallets.reserve <rating.wallet.wallets.Wallets.reserve>` of the estimate
        before the work): the held funds pay the rated charges, the rest is
        released to where it was drawn from, and what exceeds the hold is paid as
        any rating is (the wallet, or owed on the receivable). Raises
        :class:`~rating.errors.ReservationError` when the reservation is unknown,
        expired or another customer's, and :class:`~rating.errors.EventError` when
        the event is refused; nothing is posted then and the reservation stays
        open. Returns None for a replay of a request already rated and settled.
        """
        if self.storage.locks_customers:  # requests of different customers settle side by side
            try:
                return self._rate_reserved(event, reservation, frozenset({event.customer}))
            except ScopeConflict:
                pass  # it needs more than its customer's locks (a late arrival re-priced): rated globally
        return self._rate_reserved(event, reservation, None)

    def _rate_reserved(self, event: UsageEvent, reservation: str, scope: frozenset[str] | None) -> RatedEvent | None:
        """:meth:`rate_reserved` in the write scope of ``scope``'s customers (None: global)."""
        with self.storage.writing(scope):
            held = Wallets(self.storage, self.clock).reservation(reservation)
            if held is None:
                already = self.storage.rated_events([event.id]).get(event.id)
                if already is not None and already.canonical_json() == event.canonical_json():
                    return None
                raise ReservationError(f"reservation {reservation} is unknown, or already settled or voided")
            if held.customer != event.customer:
                raise ReservationError(
                    f"reservation {reservation} holds funds of {held.customer!r}, not of {event.customer!r}"
                )
            if held.expires_at <= self.clock():
                raise ReservationError(f"reservation {reservation} expired at {held.expires_at.isoformat()}")
            ratings = self._post([("event", event)], BatchReport(), strict=True, raise_rejects=True, held=held)
        return ratings[0] if ratings else None
