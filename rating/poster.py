"""The poster: a priced event (and what a prepaid commitment covers) -> one balanced ledger transaction.

Charges credit revenue per plan and meter; the payer (the customer's
receivable, or its wallet for ``billing: wallet`` customers, funded later by
:func:`rating.policies.fund_from_wallet`) is debited what is owed per asset;
creator and processor shares and provider costs are posted beside them.
"""

from __future__ import annotations

from decimal import Decimal

from rating.accounts import PROVIDERS_ACCOUNT, prepaid_account, receivable_account, wallet_account
from rating.ledger import Posting, Transaction, rating_id
from rating.money import ZERO
from rating.pricer import PricedEvent, total_of


def rating_transaction(priced: PricedEvent, drawn: tuple[str, Decimal] | None) -> Transaction:
    """The balanced transaction ``rating:EVENT_ID`` that posts ``priced``."""
    terms = priced.terms
    event, version, plan = terms.event, terms.version, terms.plan
    book, customer = version.book, event.customer
    credits: list[Posting] = []
    owed: dict[str, Decimal] = {}
    for charge in priced.charges:
        if charge.amount:
            credits.append(Posting(version.revenue[plan, charge.meter], charge.asset, -charge.amount))
            known = owed.get(charge.asset)  # the first amount as it is: no new Decimal for one charge
            owed[charge.asset] = charge.amount if known is None else known + charge.amount
    postings = []  # in the order they have always been stored: debits, revenue, shares, costs
    if drawn is not None and drawn[1]:
        asset, amount = drawn
        postings.append(Posting(prepaid_account(customer), asset, amount))
        owed[asset] -= amount
    payer = wallet_account(customer) if book.pays_from_wallet(customer) else receivable_account(customer)
    postings += [Posting(payer, asset, total) for asset, total in owed.items() if total]
    postings += credits
    metadata = {"event_id": event.id, "customer": customer, "plan": plan, "pricebook": version.label}
    if terms.contract is not None:
        metadata.update(terms.contract.terms(terms.contract_name))
    agent = book.agents.get(event.attribution.agent or "") if book.revenue_split else None
    if agent is not None and book.revenue_split is not None:
        postings += book.revenue_split.postings(total_of(priced.charges, book.currency), book.currency, agent.creator)
        metadata["creator"] = agent.creator
    if terms.late_for:
        metadata["late_for"] = terms.late_for
    if priced.costs:
        postings += _owed_to_providers(priced.costs)
    return Transaction(
        id=rating_id(event.id),
        timestamp=event.timestamp,
        description=f"{event.type} {event.id}",
        postings=tuple(p for p in postings if p.amount),
        metadata=metadata,
    )


def _owed_to_providers(costs: list[Posting]) -> list[Posting]:
    """Cost postings and, per asset, what they leave owed to the providers."""
    if not costs:
        return costs
    owed: dict[str, Decimal] = {}
    for cost in costs:
        owed[cost.asset] = owed.get(cost.asset, ZERO) + cost.amount
    return costs + [Posting(PROVIDERS_ACCOUNT, asset, -amount) for asset, amount in owed.items()]
