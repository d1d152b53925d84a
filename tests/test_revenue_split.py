"""Revenue split: creator, platform and processor shares of each execution add up to the charge."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rating.engine import Engine
from rating.events import Attribution
from rating.ledger import imbalance
from rating.pricebook import Pricebook, RevenueSplit
from rating.registry import Registry
from rating.storage import Storage
from tests.helpers import NOV, event

SPLIT_BOOK = """\
pricebook: split
version: 2026-11-01
currency: USD
meters:
  runs: {event: agent.execution, count: true}
plans:
  p:
    charges:
      - {meter: runs, model: per_call, price: "2.00"}
default_plan: p
agents:
  agt_1: {creator: jane}
revenue_split:
  creator: "80"
  processor: {percent: "2.9", fixed: "0.30"}
"""


@given(
    amount=st.decimals(min_value=0, max_value=10**6, places=7),
    creator=st.decimals(min_value=0, max_value=100, places=2),
    percent=st.decimals(min_value=0, max_value=100, places=2),
    fixed=st.decimals(min_value=0, max_value=5, places=2),
)
def test_shares_add_up_to_the_charge_exactly(
    amount: Decimal, creator: Decimal, percent: Decimal, fixed: Decimal
) -> None:
    split = RevenueSplit.model_validate({"creator": creator, "processor": {"percent": percent, "fixed": fixed}})
    processor, to_creator, platform = split.shares(amount)
    assert processor + to_creator + platform == amount
    assert min(processor, to_creator, platform) >= 0


def test_each_execution_shares_its_charge(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(SPLIT_BOOK), storage, registry)
    execution = event("x1", type="agent.execution").model_copy(update={"attribution": Attribution(agent="agt_1")})
    rating = engine.rate(execution)
    assert rating is not None and imbalance(rating.transaction.postings) == {}
    # processor: 2.00 x 2.9% + 0.30 = 0.358; creator: 80% of 1.642 = 1.3136; platform keeps 0.3284
    assert storage.balances("payable:") == {
        ("payable:creator:jane", "USD"): Decimal("-1.3136"),
        ("payable:processor", "USD"): Decimal("-0.358"),
    }
    assert rating.transaction.metadata["creator"] == "jane"
    walk_in = engine.rate(event("x2", type="agent.execution", at=NOV))  # no agent with a creator: nothing shared
    assert walk_in is not None and {p.account for p in walk_in.transaction.postings} == {
        "customer:acme:receivable",
        "revenue:p:runs",
    }
