"""The pricer: event + period-state view + compiled pricebook versions -> priced usage lines.

Pure: no I/O, no wallet, no ledger. The same pricer serves billing (the
:class:`~rating.core.pipeline.Pipeline` runs it before the policies and the
poster) and simulation (the pipeline's simulate mode posts nothing).

Pricing runs in two stages, so that a policy can refuse an event between them
(a closed period is refused before any meter reads the event):

1. :meth:`Pricer.terms` resolves the customer's terms at the event's time: the
   version in force, the plan, the billing period, the meters that count the
   event, the charges by meter (a contract's replacing the plan's) and the
   contract;
2. :meth:`Pricer.price` reads each meter, advances the period state the view
   shows (without changing it) and prices every charge as
   ``P(after) - P(before)``, each charge with its identity (running-total key
   and version label), so its explanation is made only when someone reads it
   (:func:`rating.core.charges.explanation_of`), which saves a fifth of the memory
   path's time; storage is handed records (:mod:`rating.records`), never a
   charge that holds its pricing model.

Every meter and charge of the event is read and priced before a refusal is
raised, and of the refusals found the one first in
:data:`~rating.refusals.CHECK_ORDER` is raised: which one an event gets never
depends on the order of its meters (a missing property on one meter comes
before an inexact amount on another, as the README lists them).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import NamedTuple

from rating.accounts import cost_account, receivable_account, wallet_account
from rating.core.charges import Charge, StateKey, Usage
from rating.core.compiled import Charges, CompiledVersion
from rating.core.ratecard import RateCard, RateCards
from rating.core.subscriptions import spans, with_spec
from rating.errors import EventError, PluginError
from rating.events import UsageEvent
from rating.ledger import Posting
from rating.money import ZERO, format_decimal
from rating.periods import bounds_of, zone
from rating.pricebook.catalog import Catalog
from rating.pricebook.meters import Meter, PeriodState
from rating.pricebook.model import Contract, CustomerSpec
from rating.pricebook.pricing import EventPrice, PerEventModel, PricingModel
from rating.refusals import Refusal, rank
from rating.statekeys import kept_state, state_suffix

#: A view of period state: the state of a key as the caller sees it (stored, or as a batch leaves it).
StateLookup = Callable[[StateKey], PeriodState]
#: What enriches an event before it is priced (the ``rating_enrich_event`` hook), if anything does.
Enrich = Callable[..., UsageEvent | None]


class Terms(NamedTuple):
    """A customer's terms for one event: what the pricebook says applies, before any meter is read."""

    received: UsageEvent
    event: UsageEvent  # enriched; the received event is what is stored
    version: CompiledVersion
    plan: str
    period: str
    meters: Sequence[tuple[str, Meter]]
    charges: Charges
    contract: Contract | None
    contract_name: str
    #: The closed period a late event belongs to, when ``late_usage: next_period`` moved it into ``period``.
    late_for: str | None = None
    #: The customer's entry in the version, if it names the customer (from the rate card: no lookup per event).
    spec: CustomerSpec | None = None
    #: The account that owes the charges (the wallet or the receivable).
    payer: str = ""
    #: Whether the charges are paid from the customer's wallet.
    from_wallet: bool = False


class PricedEvent(NamedTuple):
    """An event's usage lines, charges and provider costs, priced against a state view."""

    terms: Terms
    usage: list[Usage]
    charges: list[Charge]
    costs: list[Posting]


#: How many versions compiled with a customer's earlier spec a pricer keeps (events dated before a change).
ERA_VERSIONS_KEPT = 256


class Pricer:
    """Prices events by the versions of one pricebook."""

    def __init__(
        self, catalog: Catalog, enrich: Enrich | None = None, *, describe: bool = False, check_inputs: bool = False
    ) -> None:
        """``describe``: return charges with their explanation text already made (tests of the text read it so).

        ``check_inputs``: refuse events whose group values, ``unique`` members or model inputs are not what
        the meters and models accept (:meth:`Meter.check_inputs <rating.pricebook.meters.Meter.check_inputs>`,
        :meth:`PerEventModel.check_inputs <rating.pricebook.pricing.PerEventModel.check_inputs>`): for events being
        rated, not for those already stored (rerate, simulation), which were accepted when they came.
        """
        self.catalog = catalog
        self.versions = [CompiledVersion(book) for book in catalog.versions]
        self._enrich = enrich
        self._describe = describe
        self._check_inputs = check_inputs
        #: Per customer the pricebooks name (the others share the key ""): the instants its terms may change.
        self._changes: dict[str, list[dt.datetime]] = {}
        #: The terms of recently seen customers, resolved once per stretch in which they cannot change.
        self.cards = RateCards(self._card)
        #: Versions compiled with a customer's earlier spec (catalog.eras), by version, customer and era.
        self._era_versions: dict[tuple[int, str, int], CompiledVersion] = {}

    def terms_change_between(self, customer: str, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether ``customer``'s terms may change in ``(start, end]``: a version taking effect, a plan change,
        a subscription or a contract starting or ending. Events on either side of such an instant are priced
        by different terms, so their order decides the bill; between two of them it does not."""
        instants = self._instants(customer)
        first_after = bisect.bisect_right(instants, start)
        return first_after < len(instants) and instants[first_after] <= end

    def _instants(self, customer: str) -> list[dt.datetime]:
        """The instants at which ``customer``'s terms may change, in order."""
        # Customers no version names (no subscription, no contract) share one list: the cache is bounded by
        # the pricebooks, not by the customers seen.
        eras = self.catalog.eras.get(customer, ())
        if not eras and not any(customer in v.book.customers or customer in v.contracts for v in self.versions):
            customer = ""
        instants = self._changes.get(customer)
        if instants is None:
            found = {self.catalog.starts(index) for index in range(len(self.catalog.versions))}
            found.update(end for end, _ in eras)
            books = [version.book for version in self.versions]
            books += [with_spec(book, customer, spec) for book in books for _, spec in eras]
            for book in books:
                for span in spans(book, customer):
                    found.update((span.start, span.end))
            for version in self.versions:
                for span, _ in version.contracts.get(customer, ()):
                    found.update((span.start, span.end))
            instants = self._changes[customer] = sorted(found)
        return instants

    def _version_for(self, customer: str, timestamp: dt.datetime) -> CompiledVersion:
        """The compiled version in force at ``timestamp``, with ``customer``'s spec of then where it was kept as
        data and has changed since (:attr:`Catalog.eras <rating.pricebook.catalog.Catalog.eras>`)."""
        version = self.version_at(timestamp)
        eras = self.catalog.eras.get(customer)
        if not eras or timestamp >= eras[-1][0]:
            return version
        era = bisect.bisect_right([end for end, _ in eras], timestamp)
        key = (self.versions.index(version), customer, era)
        compiled = self._era_versions.get(key)
        if compiled is None:
            book = with_spec(version.book, customer, eras[era][1])
            if book is version.book:  # the version cannot rate that spec: as with_customers, its own entry
                return version
            if len(self._era_versions) >= ERA_VERSIONS_KEPT:  # rare (late events before a change): start afresh
                self._era_versions.clear()
            compiled = self._era_versions[key] = CompiledVersion(book)
        return compiled

    def _card(self, customer: str, timestamp: dt.datetime) -> RateCard:
        """Resolve ``customer``'s rate card at ``timestamp``: its terms until the period ends or they may change."""
        version = self._version_for(customer, timestamp)
        plan = version.plan_at(customer, timestamp)
        charges, contract, contract_name = version.charges_for(customer, plan, timestamp)
        period, start, end = version.period_bounds(plan, customer, timestamp)
        instants = self._instants(customer)
        at = bisect.bisect_right(instants, timestamp)
        if at:
            start = max(start, instants[at - 1])
        if at < len(instants):
            end = min(end, instants[at])
        book = version.book
        from_wallet = book.pays_from_wallet(customer)
        payer = wallet_account(customer) if from_wallet else receivable_account(customer)
        return RateCard(
            start, end, version, plan, period, charges, contract, contract_name, book.spec_of(customer), payer,
            from_wallet,
        )  # fmt: skip

    def version_at(self, timestamp: dt.datetime) -> CompiledVersion:
        """The compiled version in force at ``timestamp``; ``no_version_in_force`` before the first."""
        index = self.catalog.index_at(timestamp)
        if index is None:
            first = self.catalog.versions[0].version.isoformat()
            raise EventError(
                Refusal.NO_VERSION_IN_FORCE,
                f"no version of pricebook {self.catalog.name} is in force yet (the first takes effect {first})",
            )
        return self.versions[index]

    def terms(self, received: UsageEvent) -> Terms:
        """Resolve what applies to ``received``: version, plan, period, meters, charges and contract (from the
        customer's rate card)."""
        # The event is stored as received, so a replay compares equal; enrichment is redone.
        event = received if self._enrich is None else self._enriched(received)
        card = self.cards.at(event.customer, event.timestamp)
        version = card.version
        meters = version.meters_by_type.get(event.type)
        if not meters:
            raise EventError(Refusal.UNKNOWN_EVENT_TYPE, f"no meter counts events of type {event.type!r}")
        if version.filtered:
            meters = [(name, meter) for name, meter in meters if not meter.where or meter.counts(event)]
            if not meters:
                raise EventError(
                    Refusal.EXCLUDED_BY_FILTER,
                    f"no meter counts this {event.type} event (every meter's where filter excludes it)",
                )
        # tuple.__new__ skips the named tuple's argument parsing: terms per event.
        return _new_terms(
            Terms,
            (
                received,
                event,
                version,
                card.plan,
                card.period,
                meters,
                card.charges,
                card.contract,
                card.contract_name,
                None,
                card.spec,
                card.payer,
                card.from_wallet,
            ),
        )

    def price(self, terms: Terms, lookup: StateLookup) -> PricedEvent:
        """Read each meter and price each charge of ``terms`` against the state ``lookup`` shows.

        Raises the refusal first in :data:`~rating.refusals.CHECK_ORDER` of all that its meters and
        charges raise (an inexact sum is ``not_exact``), whatever the order of the meters.
        """
        event, version, plan, period = terms.event, terms.version, terms.plan, terms.period
        label = version.label
        customer, currency = event.customer, version.book.currency
        usage: list[Usage] = []
        charges: list[Charge] = []
        costs: list[Posting] = []
        refusals: list[EventError] = []  # every meter and charge is priced; the first in the check order wins
        check = self._check_inputs
        source = event.billing_source
        suffix = state_suffix(source)
        for name, meter in terms.meters:
            if check:
                try:
                    meter.check_inputs(event)
                except EventError as error:
                    refusals.append(error)
            try:
                group = meter.group_of(event)
                reading = meter.reading(event)
                state_name = name + suffix
                state = lookup((customer, state_name, group, period))
                before = state.quantity
                after = meter.advance(state, reading)
            except (EventError, ArithmeticError) as error:
                refusals.append(_refusal(error))
                continue  # no reading, nothing to price; other meters may still find an earlier refusal
            usage.append(Usage(state_name, group, period, reading, before, after))
            unit = meter.unit or name
            for cost in version.costs_by_meter.get(name, ()):
                if source in cost.billing_sources:
                    try:
                        model = cost.for_group(group)
                        if isinstance(model, PerEventModel):
                            if check:
                                _checked(model, event, refusals)
                            amount = model.price_event(event, cost.asset or currency).amount
                        else:
                            amount = model.charge(before, after)
                    except (EventError, ArithmeticError) as error:
                        refusals.append(_refusal(error))
                        continue
                    costs.append(Posting(cost_account(name), cost.asset or currency, amount))
            for total_key, charge in terms.charges.get(name, ()):
                if source not in charge.billing_sources:
                    continue
                identity = total_key  # what renders the explanation again from the catalog
                try:
                    pricing = charge.for_group(group)
                    asset = pricing.asset or currency
                    if isinstance(pricing, PerEventModel):
                        if check:
                            _checked(pricing, event, refusals)
                        if pricing.kept:
                            where = (customer, total_key + suffix, period)
                            each = _price_in_period(pricing, event, asset, where, lookup, usage)
                        else:
                            each = pricing.price_event(event, asset)
                    else:
                        each = None
                    if pricing.rollover:  # the carry into the period billing put the event in
                        previous = version.previous_period(plan, customer, _in_period(terms))
                        pricing = pricing.with_carry(lookup((customer, state_name, group, previous)).quantity)
                    amount = uncapped = pricing.charge(before, after) if each is None else each.amount
                    if charge.tracks_total:
                        total_key += suffix
                        running = lookup((customer, total_key, (), period)).quantity
                        usage.append(Usage(total_key, (), period, uncapped, running, running + uncapped))
                        amount = charge.adjusted_total(running + uncapped) - charge.adjusted_total(running)
                except (EventError, ArithmeticError) as error:
                    refusals.append(_refusal(error))
                    continue
                if each is not None:  # described now: the explanation needs the event
                    text = each.explanation if amount == uncapped else _capped(each.explanation, charge, amount, asset)
                    charges.append(
                        Charge(plan, name, group, period, pricing.name, before, after, amount, asset, unit, None,
                               uncapped, text, each.unit_price, identity, label)
                    )  # fmt: skip
                    continue
                # tuple.__new__ skips the named tuple's argument parsing: a charge per meter and event.
                line = _new_charge(Charge, (
                    plan, name, group, period, pricing.name, before, after, amount, asset, unit, pricing, uncapped,
                    None, None, identity, label,
                ))  # fmt: skip
                # A carried-over allowance is described now: the catalog alone cannot render its carry again.
                charges.append(line.described() if self._describe or pricing.rollover else line)
        if refusals:
            raise min(refusals, key=lambda refusal: rank(refusal.code))
        return PricedEvent(terms, usage, charges, costs)

    @staticmethod
    def state_keys(terms: Terms) -> Iterator[StateKey]:
        """The period-state keys :meth:`price` reads for ``terms`` (its meters' and its running totals'), so a
        caller can read them all in one query first. Rollover carries and policies may read a few more."""
        event, period = terms.event, terms.period
        suffix = state_suffix(event.billing_source)
        for name, meter in terms.meters:
            yield (event.customer, name + suffix, meter.group_of(event), period)
            for total_key, charge in terms.charges.get(name, ()):
                if charge.tracks_total:
                    yield (event.customer, total_key + suffix, (), period)
                for part in charge.kept if isinstance(charge, PerEventModel) else ():
                    yield (event.customer, kept_state(total_key + suffix, part), (), period)

    def _enriched(self, event: UsageEvent) -> UsageEvent:
        assert self._enrich is not None
        result = self._enrich(event=event) or event
        if result.id != event.id or result.customer != event.customer:
            raise PluginError(f"a rating_enrich_event plugin changed the id or customer of event {event.id}")
        return result


_new_charge = _new_terms = tuple.__new__


def _refusal(error: EventError | ArithmeticError) -> EventError:
    """``error`` as a refusal: a decimal overflow or an inexact sum on absurd quantities or prices is ``not_exact``."""
    if isinstance(error, EventError):
        return error
    return EventError(Refusal.NOT_EXACT, f"cannot be priced exactly: {type(error).__name__}")


def _checked(model: PerEventModel, event: UsageEvent, refusals: list[EventError]) -> None:
    """Keep what :meth:`~rating.pricebook.pricing.PerEventModel.check_inputs` refuses and let the charge be priced:
    pricing may find an earlier refusal (a model missing) than the check (a token count)."""
    try:
        model.check_inputs(event)
    except EventError as error:
        refusals.append(error)


def _in_period(terms: Terms) -> dt.datetime:
    """An instant of the period billing put the event in: its own time, or for late usage moved into a later
    period (``late_for``) that period's start."""
    event = terms.event
    if terms.late_for is None:
        return event.timestamp
    book = terms.version.book
    return bounds_of(terms.period, zone(book.timezone_of(event.customer)), book.anchor_of(event.customer))[1]


def _price_in_period(
    pricing: PerEventModel,
    event: UsageEvent,
    asset: str,
    where: tuple[str, str, str],
    lookup: StateLookup,
    usage: list[Usage],
) -> EventPrice:
    """Price ``event`` by the period quantities the charge keeps (``where``: customer, running total, period),
    and add a usage line for each, as the event moves it."""
    customer, total, period = where
    names = {part: kept_state(total, part) for part in pricing.kept}
    used = {part: lookup((customer, name, (), period)).quantity for part, name in names.items()}
    each, now = pricing.price_in_period(event, asset, used)
    usage.extend(Usage(name, (), period, now[part] - used[part], used[part], now[part]) for part, name in names.items())
    return each


def _capped(text: str, charge: PricingModel, amount: Decimal, asset: str) -> str:
    """A per-event charge's explanation, with what its cap left of it."""
    return f"{text}; with the {format_decimal(charge.cap or ZERO)} {asset} period cap: {format_decimal(amount)} {asset}"


def advance(lookup: StateLookup, customer: str, usage: Sequence[Usage]) -> None:
    """Move the state ``lookup`` shows to where ``usage`` leaves it (the caller's view, never storage)."""
    for line in usage:
        state = lookup(line.key(customer))
        state.quantity = line.after
        if isinstance(line.reading, str):
            if state.members is None:
                state.members = set()
            state.members.add(line.reading)


def total_of(charges: Sequence[Charge], asset: str) -> Decimal:
    """What ``charges`` add up to in ``asset``."""
    return sum((c.amount for c in charges if c.asset == asset), Decimal(0))
