"""One rating pipeline: resolve terms -> price -> the ordered policies -> the poster.

Every path that rates goes through :class:`Pipeline`: the engine (billing and
quotes, batches and metered requests), ``rerate`` and the simulation. A
:class:`Mode` is a declared subset of the one ordered list of steps
(:data:`STEPS`); nothing composes the pricer, the policies and the poster by
hand. The README's refusal order (:data:`~rating.refusals.REFUSAL_TABLE`) is
the refusals of :data:`STEPS` in their order (:func:`refusal_order`, a test
keeps them equal).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from rating.core.charges import RatedEvent, Usage
from rating.core.policies import (
    ClosedLookup,
    WalletFunding,
    apply_spend_cap,
    draw_prepaid,
    fund_from_wallet,
    pay_from_reservation,
    refuse_closed_period,
    refuse_future,
    track_arrival,
    wallet_debits,
)
from rating.core.poster import PER_EVENT, Poster, PostingUnit, correction_debits, owed
from rating.core.pricer import PricedEvent, Pricer, StateLookup, Terms
from rating.errors import EventError
from rating.events import UsageEvent
from rating.ids import rating_id
from rating.ledger import Transaction
from rating.pricebook.model import Pricebook
from rating.refusals import Refusal

if TYPE_CHECKING:  # types only
    from rating.core.funding import Grant, Reservation


class Step(NamedTuple):
    """One step of the pipeline and the refusals it may raise, in the order it checks them."""

    name: str
    refusals: tuple[Refusal, ...] = ()
    #: A policy (which modes may leave out), or a stage every event passes.
    policy: bool = True


#: Reading the record (before the pipeline: the readers of :mod:`rating.events`).
READ = Step("read", (Refusal.INVALID_RECORD,), policy=False)
#: The same event id rated before (the engine's idempotency check against storage).
IDEMPOTENCY = Step("idempotency", (Refusal.DUPLICATE_CONFLICT,), policy=False)
FUTURE_TIMESTAMP = Step("future_timestamp", (Refusal.FUTURE_TIMESTAMP,))
TERMS = Step(
    "terms",
    (
        Refusal.NO_VERSION_IN_FORCE,
        Refusal.UNKNOWN_CUSTOMER,
        Refusal.NOT_SUBSCRIBED,
        Refusal.UNKNOWN_EVENT_TYPE,
        Refusal.EXCLUDED_BY_FILTER,
    ),
    policy=False,
)
CLOSED_PERIOD = Step("closed_period", (Refusal.CLOSED_PERIOD,))
PRICE = Step(
    "price",
    (
        Refusal.MISSING_PROPERTY,
        Refusal.INVALID_PROPERTY,
        Refusal.INVALID_QUANTITY,
        Refusal.CURRENCY_MISMATCH,
        Refusal.UNKNOWN_MODEL,
        Refusal.AMBIGUOUS_MODEL,
        Refusal.NOT_EXACT,
    ),
    policy=False,
)
ARRIVAL = Step("arrival")
SPEND_CAP = Step("spend_cap", (Refusal.SPEND_CAP_REACHED,))
PREPAID = Step("prepaid")
RESERVATION = Step("reservation")
WALLET = Step("wallet", (Refusal.INSUFFICIENT_FUNDS,))

#: Every step in the order an event passes them; the poster comes after the last.
STEPS: tuple[Step, ...] = (
    READ,
    IDEMPOTENCY,
    FUTURE_TIMESTAMP,
    TERMS,
    CLOSED_PERIOD,
    PRICE,
    ARRIVAL,
    SPEND_CAP,
    PREPAID,
    RESERVATION,
    WALLET,
)


def refusal_order() -> tuple[Refusal, ...]:
    """The event refusals in the order the pipeline checks them (the README's table is in this order)."""
    return tuple(code for step in STEPS for code in step.refusals)


class Mode(enum.StrEnum):
    """What the pipeline is run for."""

    #: Rate and post: every policy (a reservation only for a metered request).
    BILL = "bill"
    #: Price against stored state and write nothing: no clock, no funding.
    QUOTE = "quote"
    #: Correct history with a fixed pricebook: the usage happened, so the spend is kept, not capped; the
    #: correction (not the event) is funded from the wallet.
    RERATE = "rerate"
    #: Re-price a period for the order of arrival: as :attr:`RERATE`, the prepaid draw-down re-drawn too.
    REPRICE = "reprice"
    #: Price history as if billed on account: a hard cap is counted, never applied; nothing is posted.
    SIMULATE = "simulate"


#: Each mode's policies: a subset of :data:`STEPS`, in their order.
MODES: dict[Mode, tuple[Step, ...]] = {
    Mode.BILL: (FUTURE_TIMESTAMP, CLOSED_PERIOD, ARRIVAL, SPEND_CAP, PREPAID, RESERVATION, WALLET),
    Mode.QUOTE: (CLOSED_PERIOD, ARRIVAL, SPEND_CAP, PREPAID),
    Mode.RERATE: (SPEND_CAP, WALLET),
    Mode.REPRICE: (SPEND_CAP, PREPAID, WALLET),
    Mode.SIMULATE: (SPEND_CAP,),
}
#: The modes whose spend cap refuses (the others keep the spend, or count what it would refuse).
CAPPING = frozenset({Mode.BILL, Mode.QUOTE})
#: The modes that only count what a hard cap would refuse (an alert tells nobody there).
SIMULATING = frozenset({Mode.SIMULATE})


def acts_on(mode: Mode, book: Pricebook, customer: str) -> bool:
    """Whether a policy of ``mode`` can decide anything for ``customer`` under ``book`` (the columnar simulation
    prices by period totals only the customers no policy of :attr:`Mode.SIMULATE` acts on; the others go
    through :meth:`Pipeline.simulate` event by event)."""
    spec = book.customers.get(customer)
    if spec is None:
        return False
    policies = MODES[mode]
    if SPEND_CAP in policies and (spec.spend_cap is not None or (mode not in SIMULATING and spec.spend_alert)):
        return True
    if WALLET in policies and book.pays_from_wallet(customer):
        return True
    return PREPAID in policies and any(
        contract.customer == customer and contract.prepaid is not None for contract in book.contracts.values()
    )


class Wallet(NamedTuple):
    """A wallet view for the funding policy: balances (as a batch leaves them) and grants per customer."""

    balance: Callable[[str, str], Decimal]
    grants: Callable[[str], list[Grant]]


class Rated(NamedTuple):
    """What one event's run of the pipeline decided: its rating, the release of a reservation it settled,
    and the wallet funding it drew."""

    rating: RatedEvent
    release: Transaction | None
    funding: WalletFunding | None


class Pipeline:
    """Terms, pricer, the policies of ``mode`` in their order, and the poster (per ``unit``)."""

    def __init__(
        self,
        pricer: Pricer,
        mode: Mode = Mode.BILL,
        *,
        future_tolerance: dt.timedelta | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        unit: PostingUnit = PER_EVENT,
    ) -> None:
        self.pricer, self.mode = pricer, mode
        self.policies = MODES[mode]
        self.future_tolerance, self.clock = future_tolerance, clock
        self.poster = Poster(unit)
        policies = set(self.policies)
        # Read once here, not per event: the hot loop tests booleans.
        self._future = FUTURE_TIMESTAMP in policies
        self._closed = CLOSED_PERIOD in policies
        self._arrival = ARRIVAL in policies
        self._spend = SPEND_CAP in policies
        self._caps = mode in CAPPING
        self._prepaid = PREPAID in policies
        self._reservation = RESERVATION in policies
        self._wallet = WALLET in policies and mode is Mode.BILL  # rerate funds its corrections: see correct()

    def terms(self, event: UsageEvent) -> Terms:
        """The customer's terms for ``event`` (the refusals of :data:`TERMS`)."""
        return self.pricer.terms(event)

    def latest(self) -> dt.datetime | None:
        """The latest event time accepted now (None: any), read once per chunk."""
        tolerance = self.future_tolerance
        return self.clock() + tolerance if self._future and tolerance is not None else None

    def run(
        self,
        received: UsageEvent,
        lookup: StateLookup,
        is_closed: ClosedLookup | None = None,
        resolved: Terms | EventError | None = None,
        *,
        latest: dt.datetime | None = None,
        held: Reservation | None = None,
        wallet: Wallet | None = None,
    ) -> Rated:
        """Rate ``received`` against the state ``lookup`` shows; raise the refusal of the first step that refuses.

        ``resolved``: its terms when already resolved (or why they could not be); ``latest``: from
        :meth:`latest`; ``held``: the reservation that pays it first; ``wallet``: the view wallet customers
        are funded from (without one, nothing is funded). Nothing it is given is changed.
        """
        if self._future and latest is not None:
            refuse_future(received.timestamp, latest, self.future_tolerance)
        if isinstance(resolved, EventError):
            raise resolved
        terms = resolved or self.pricer.terms(received)
        if self._closed:
            assert is_closed is not None
            terms = refuse_closed_period(terms, is_closed)
        priced = self.pricer.price(terms, lookup)
        kept: list[Usage] = []
        if self._arrival:
            kept.append(track_arrival(terms, lookup))
        if self._spend:
            spend = apply_spend_cap(priced, lookup, enforce=self._caps)
            if spend is not None:
                kept.append(spend)
        prepaid = draw_prepaid(priced, lookup) if self._prepaid else None
        if prepaid is not None:
            kept.append(prepaid.line)
        reservation = funding = debts = None
        if held is not None and self._reservation:
            debts = owed(priced, prepaid)
            reservation = pay_from_reservation(debts, held, self.clock())
        if wallet is not None and self._wallet and terms.from_wallet:
            if debts is None:
                debts = owed(priced, prepaid)
            funding = fund_from_wallet(
                received.customer,
                wallet_debits(debts, reservation),
                received.timestamp,
                wallet.balance,
                wallet.grants,
            )
        rating = self.poster.post(priced, kept, prepaid, reservation, funding, debts)
        release = None if reservation is None else self.poster.release(reservation, rating_id(received.id))
        return tuple.__new__(Rated, (rating, release, funding))  # Rated(...) without its Python-level __new__

    def simulate(
        self, terms: Terms, lookup: StateLookup, spend: StateLookup
    ) -> tuple[PricedEvent, Usage | EventError | None]:
        """Price ``terms`` for a simulation, and what its hard spend cap decides against ``spend`` (what caps
        let through so far): the spend line, the ``spend_cap_reached`` refusal the caller counts (and charges
        all the same), or None when the customer has no hard cap."""
        priced = self.pricer.price(terms, lookup)
        spec = terms.spec
        if not self._spend or spec is None or spec.spend_cap is None:
            return priced, None
        try:
            return priced, apply_spend_cap(priced, spend)
        except EventError as refusal:
            return priced, refusal

    def correct(
        self,
        terms: Terms,
        transaction_id: str,
        at: dt.datetime,
        description: str,
        moves: Mapping[tuple[str, str], Decimal],
        metadata: dict[str, str],
        wallet: Wallet,
    ) -> tuple[Transaction, WalletFunding | None]:
        """A re-rating's correction of ``terms``' event: the platform ``moves``, the payer taking the net, a
        wallet customer's debit funded by the wallet policy (``insufficient_funds`` when it cannot be), built
        once by the poster; and the funding, whose balances the caller keeps."""
        customer = terms.event.customer
        funding = None
        if WALLET in self.policies and terms.from_wallet:
            funding = fund_from_wallet(customer, correction_debits(moves), at, wallet.balance, wallet.grants)
        payer = terms.payer
        return self.poster.correction(transaction_id, at, description, moves, payer, metadata, funding), funding
