"""The poster: a priced event and the policies' decisions -> one balanced ledger transaction, built once.

Charges credit revenue per plan and meter; the payer (the customer's
receivable, or its wallet for ``billing: wallet`` customers) is debited what is
owed per asset, less what a contract's prepaid commitment covers
(:class:`~rating.core.policies.PrepaidDraw`) and what a metered request's
reservation pays (:class:`~rating.core.policies.ReservationFunding`); a wallet
debit is drawn from the accounts :class:`~rating.core.policies.WalletFunding`
names. Creator and processor shares and provider costs are posted beside them.

The posting unit is a parameter of :class:`Poster`: one transaction per event
(:data:`PER_EVENT`) is the only unit today; a coarser one changes how many
transactions a chunk posts, not the records or their readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal

from rating.accounts import (
    PROVIDERS_ACCOUNT,
    held_account,
    prepaid_account,
    wallet_account,
)
from rating.core.charges import RatedEvent, Usage
from rating.core.policies import PrepaidDraw, ReservationFunding, WalletFunding
from rating.core.pricer import PricedEvent, total_of
from rating.ids import rating_id, release_id
from rating.ledger import Posting, Transaction
from rating.money import ZERO
from rating.statekeys import TERM

#: How many events one rating transaction posts: one per event.
PER_EVENT: Literal["event"] = "event"
PostingUnit = Literal["event"]


def owed(priced: PricedEvent, prepaid: PrepaidDraw | None) -> dict[str, Decimal]:
    """What the payer owes for ``priced`` per asset (zero included), less what ``prepaid`` covers."""
    totals: dict[str, Decimal] = {}
    for charge in priced.charges:
        if charge.amount:
            known = totals.get(charge.asset)  # the first amount as it is: no new Decimal for one charge
            totals[charge.asset] = charge.amount if known is None else known + charge.amount
    if prepaid is not None and prepaid.amount:
        totals[prepaid.asset] -= prepaid.amount
    return totals


class Poster:
    """Builds each rating transaction once from the priced lines and the decisions, per ``unit``."""

    def __init__(self, unit: PostingUnit = PER_EVENT) -> None:
        if unit != PER_EVENT:
            raise ValueError(f"unknown posting unit {unit!r}")
        self.unit = unit

    def post(
        self,
        priced: PricedEvent,
        kept: Iterable[Usage] = (),
        prepaid: PrepaidDraw | None = None,
        reservation: ReservationFunding | None = None,
        funding: WalletFunding | None = None,
        debts: Mapping[str, Decimal] | None = None,
    ) -> RatedEvent:
        """``priced`` as rated: its usage lines then the state lines the policies ``kept``, its charges, and
        the transaction ``rating:EVENT_ID`` that posts them (``debts``: :func:`owed`, when already known)."""
        terms = priced.terms
        event, version, plan = terms.event, terms.version, terms.plan
        book, customer = version.book, event.customer
        if debts is None:
            debts = owed(priced, prepaid)
        postings = []  # in the order they have always been stored: debits, revenue, shares, costs, wallet draws
        if prepaid is not None and prepaid.amount:
            postings.append(Posting(prepaid_account(customer), prepaid.asset, prepaid.amount))
        payer = terms.payer
        if reservation is None and funding is None:  # the common case: the payer owes it all
            postings += [Posting(payer, asset, total) for asset, total in debts.items() if total]
        else:
            # A wallet funding exists only for a wallet payer: its draws replace the payer's debit.
            drawn = funding.assets if funding is not None else frozenset()
            held = reservation.reservation.asset if reservation is not None else None
            for asset, total in debts.items():
                if not total:
                    continue
                used = reservation.used if reservation is not None and asset == held and total > 0 else ZERO
                if asset not in drawn:
                    postings.append(Posting(payer, asset, total - used))
                if used:
                    postings.append(Posting(held_account(customer), asset, used))
        for charge in priced.charges:
            if charge.amount:
                postings.append(Posting(version.revenue[plan, charge.meter], charge.asset, -charge.amount))
        metadata = {"event_id": event.id, "customer": customer, "plan": plan, "pricebook": version.label}
        if terms.contract is not None:
            metadata.update(terms.contract.terms(terms.contract_name))
        agent = book.agents.get(event.attribution.agent or "") if book.revenue_split else None
        if agent is not None and book.revenue_split is not None:
            postings += book.revenue_split.postings(
                total_of(priced.charges, book.currency), book.currency, agent.creator
            )
            metadata["creator"] = agent.creator
        if terms.late_for:
            metadata["late_for"] = terms.late_for
        if priced.costs:
            postings += _owed_to_providers(priced.costs)
        if funding is not None:
            postings += [Posting(account, asset, taken) for account, asset, taken in funding.draws]
        if reservation is not None:
            metadata["reservation"] = reservation.reservation.id
        transaction = Transaction(
            id=rating_id(event.id),
            timestamp=event.timestamp,
            description=f"{event.type} {event.id}",
            postings=tuple(p for p in postings if p.amount),
            metadata=metadata,
        )
        usage = (*priced.usage, *kept)
        return RatedEvent(terms.received, plan, terms.period, usage, tuple(priced.charges), transaction)

    @staticmethod
    def release(decision: ReservationFunding, settled_by: str) -> Transaction:
        """The release ``release:ID`` of what a reservation left unused, back to the accounts it was drawn from,
        in the order they were drawn (as :meth:`~rating.wallet.wallets.Wallets.settle` does)."""
        reservation, used = decision.reservation, decision.used
        customer, asset = reservation.customer, reservation.asset
        kept = dict(decision.kept)
        returned = [Posting(held_account(customer), asset, reservation.amount - used)]
        returned += [Posting(account, asset, kept.get(account, ZERO) - taken) for account, taken in reservation.draw]
        return Transaction(
            release_id(reservation.id),
            decision.at,
            f"settle {used} {asset} by {settled_by}",
            tuple(p for p in returned if p.amount),
            {"customer": customer, "reservation": reservation.id, "actual": str(used), "settled_by": settled_by},
        )

    @staticmethod
    def correction(
        transaction_id: str,
        at: dt.datetime,
        description: str,
        moves: Mapping[tuple[str, str], Decimal],
        payer: str,
        metadata: dict[str, str],
        funding: WalletFunding | None,
    ) -> Transaction:
        """A re-rating's correction: the platform ``moves`` (sorted by account and asset), the payer taking the
        net per asset, or for a wallet debit the accounts ``funding`` draws it from."""
        postings = []
        net: dict[str, Decimal] = {}
        for (account, asset), amount in sorted(moves.items()):
            postings.append(Posting(account, asset, amount))
            net[asset] = net.get(asset, ZERO) - amount
        drawn = funding.assets if funding is not None else ()
        for asset, amount in sorted(net.items()):
            if amount and not (asset in drawn and amount > 0 and payer == wallet_account(metadata["customer"])):
                postings.append(Posting(payer, asset, amount))
        if funding is not None:
            postings += [Posting(account, asset, taken) for account, asset, taken in funding.draws]
        return Transaction(transaction_id, at, description, tuple(postings), metadata)


def correction_debits(moves: Mapping[tuple[str, str], Decimal]) -> dict[str, Decimal]:
    """What a correction's payer owes per asset (positive only): the net of the platform ``moves``, by asset."""
    net: dict[str, Decimal] = {}
    for (_, asset), amount in sorted(moves.items()):
        net[asset] = net.get(asset, ZERO) - amount
    return {asset: amount for asset, amount in sorted(net.items()) if amount > 0}


def _owed_to_providers(costs: list[Posting]) -> list[Posting]:
    """Cost postings and, per asset, what they leave owed to the providers."""
    if not costs:
        return costs
    owed: dict[str, Decimal] = {}
    for cost in costs:
        owed[cost.asset] = owed.get(cost.asset, ZERO) + cost.amount
    return costs + [Posting(PROVIDERS_ACCOUNT, asset, -amount) for asset, amount in owed.items()]


def rating_transaction(priced: PricedEvent, drawn: PrepaidDraw | tuple[str, Decimal] | None = None) -> Transaction:
    """The balanced transaction ``rating:EVENT_ID`` that posts ``priced`` and what a prepaid commitment covers
    (``drawn``), with no funding decision. Kept for one release for callers of the earlier poster;
    :class:`Poster` is the poster."""
    if isinstance(drawn, tuple):
        asset, amount = drawn
        drawn = PrepaidDraw(asset, amount, Usage("", (), TERM, amount, ZERO, amount))  # the line is not posted
    return Poster().post(priced, (), drawn).transaction
