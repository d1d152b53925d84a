"""What the ledger actually billed, as a simulation's baseline (``rating simulate --db URL --baseline ledger``).

The baseline counts, for the rated events of a time range, the charges stored
with them and their provider costs, and the period-close transactions (fees,
minimums, commitment true-ups, rounding) of the billing periods those charges
fall in, as they were posted to the customers' receivables. A period not
closed yet has no such transactions: :func:`billed` says which, so that a
difference there is not mistaken for a change of price.
"""

from __future__ import annotations

import datetime as dt

from rating.accounts import receivable_account
from rating.ids import TransactionKind, parse
from rating.simulate import Scenario
from rating.storage import Storage

#: The kinds of period-close transaction that bill a customer (a prepayment is paid in advance, not a charge).
CLOSING_KINDS = (TransactionKind.FEE, TransactionKind.MINIMUM, TransactionKind.COMMITMENT, TransactionKind.ROUNDING)


def billed(
    storage: Storage, since: dt.datetime, until: dt.datetime, currency: str, label: str = "ledger"
) -> tuple[Scenario, list[str]]:
    """What ``storage`` billed for the events with ``since <= timestamp < until``, and notices of open periods.

    ``currency`` is the pricebook currency the figures are reported in.
    """
    scenario = Scenario(label, currency)
    rated = set()
    for activity in storage.activity(since, until):
        rated.add(activity.event.id)
        for asset, amount in activity.costs:
            scenario.add_cost(activity.event.customer, asset, amount)
    for stored in storage.charges():
        if stored.event_id in rated:
            charge = stored.charge
            scenario.add_charge(stored.customer, charge.plan, charge.meter, charge.period, charge.asset, charge.amount)
    scenario.periods = set(scenario.by_period)
    for kind in CLOSING_KINDS:
        for transaction in storage.transactions_of(kind):
            id = parse(transaction.id)
            customer, period = id.customer, id.period
            if period not in scenario.periods:
                continue
            for posting in transaction.postings:
                if posting.account == receivable_account(customer):
                    scenario.add_closing(customer, posting.asset, posting.amount)
    keys = {(customer, period) for period, amounts in scenario.by_period.items() for customer in amounts}
    still_open = sorted(keys - storage.closed_periods(keys))
    notices = (
        [
            f"ledger: {len(still_open):,} customer periods are not closed yet (for instance {still_open[0][0]}"
            f" {still_open[0][1]}): their fees, minimums and rounding are not in the baseline"
        ]
        if still_open
        else []
    )
    return scenario, notices
