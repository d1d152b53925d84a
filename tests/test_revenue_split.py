"""Revenue split: creator, platform and processor shares of each execution add up to the charge."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.engine import Engine
from rating.events import Attribution, UsageEvent
from rating.ledger import imbalance
from rating.pricebook.model import Pricebook
from rating.pricebook.splits import RevenueSplit
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.helpers import NOV, balances_under, event

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
    credit = split.shares(-amount)
    assert sum(credit) == -amount and max(credit[0], credit[1]) <= 0


def test_each_execution_shares_its_charge(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(SPLIT_BOOK), storage, registry)
    execution = event("x1", type="agent.execution").model_copy(update={"attribution": Attribution(agent="agt_1")})
    rating = engine.rate(execution)
    assert rating is not None and imbalance(rating.transaction.postings) == {}
    # processor: 2.00 x 2.9% + 0.30 = 0.358; creator: 80% of 1.642 = 1.3136; platform keeps 0.3284
    assert balances_under(storage, "payable:") == {
        ("payable:creator:jane", "USD"): Decimal("-1.3136"),
        ("payable:processor", "USD"): Decimal("-0.358"),
    }
    assert rating.transaction.metadata["creator"] == "jane"
    walk_in = engine.rate(event("x2", type="agent.execution", at=NOV))  # no agent with a creator: nothing shared
    assert walk_in is not None and {p.account for p in walk_in.transaction.postings} == {
        "customer:acme:receivable",
        "revenue:p:runs",
    }


VOLUME_SPLIT_BOOK = """\
pricebook: split
version: 2026-11-01
currency: USD
meters:
  runs: {event: agent.execution, count: true}
plans:
  p:
    charges:
      - meter: runs
        model: tiered
        mode: volume
        tiers:
          - {up_to: 10, unit_price: "10"}
          - {unit_price: "1"}
default_plan: p
agents:
  agt_1: {creator: jane}
revenue_split:
  creator: "80"
"""


def executions(count: int) -> list[UsageEvent]:
    run = event("x", type="agent.execution").model_copy(update={"attribution": Attribution(agent="agt_1")})
    return [run.model_copy(update={"id": f"x{i}"}) for i in range(count)]


def test_a_credit_takes_back_the_creator_share_of_what_it_credits(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    engine = Engine(book(VOLUME_SPLIT_BOOK), storage, registry)
    engine.rate_batch(executions(11))  # ten at 10 USD, then the 11th re-prices all eleven at 1 USD: -89
    assert balances_under(storage, "revenue:p:") == {("revenue:p:runs", "USD"): Decimal(-11)}
    assert balances_under(storage, "payable:creator:") == {("payable:creator:jane", "USD"): Decimal("-8.8")}


VOLUME_CHARGE = VOLUME_SPLIT_BOOK.split("    charges:\n", 1)[1].split("default_plan", 1)[0]
CHARGES = [
    VOLUME_CHARGE,
    VOLUME_CHARGE.replace("mode: volume", "mode: graduated"),
    '      - {meter: runs, model: per_call, price: "2.5"}\n',
    '      - {meter: runs, model: per_unit, unit_price: "0.7", included: 3}\n',
    '      - {meter: runs, model: package, size: 4, price: "9"}\n',
    '      - {meter: runs, model: per_call, price: "3", discounts: [{above: "10", percent: "50"}], cap: "25"}\n',
]


@settings(max_examples=60)
@given(
    charge=st.sampled_from(CHARGES),
    count=st.integers(min_value=1, max_value=30),
    chunk=st.integers(min_value=1, max_value=7),
    basis=st.sampled_from(["gross", "after_processor"]),
    creator=st.decimals(min_value=0, max_value=60, places=2),
    percent=st.decimals(min_value=0, max_value=40, places=2),
)
def test_shares_of_a_period_are_the_split_of_its_net_charges(
    book: Callable[[str], Pricebook],
    registry: Registry,
    charge: str,
    count: int,
    chunk: int,
    basis: str,
    creator: Decimal,
    percent: Decimal,
) -> None:
    text = VOLUME_SPLIT_BOOK.replace(VOLUME_CHARGE, charge)
    text = text.replace('  creator: "80"', f'  basis: {basis}\n  creator: "{creator}"\n')
    text += f'  processor: {{percent: "{percent}"}}\n'
    storage = MemoryStorage()
    engine = Engine(book(text), storage, registry)
    runs = executions(count)
    for start in range(0, count, chunk):
        engine.rate_batch(runs[start : start + chunk])
    net = -balances_under(storage, "revenue:p:").get(("revenue:p:runs", "USD"), Decimal(0))
    to_processor = net * percent / 100
    base = net if basis == "gross" else net - to_processor
    shares = balances_under(storage, "payable:")
    assert -shares.get(("payable:creator:jane", "USD"), Decimal(0)) == base * creator / 100
    assert -shares.get(("payable:processor", "USD"), Decimal(0)) == to_processor


def test_shares_declared_on_the_gross_are_exact_and_must_add_up(book: Callable[[str], Pricebook]) -> None:
    split = RevenueSplit.model_validate(
        {"basis": "gross", "creator": "70", "platform": "20", "processor": {"percent": "10"}}
    )
    assert split.shares(Decimal("3.33")) == (Decimal("0.333"), Decimal("2.331"), Decimal("0.666"))
    assert split.shares(Decimal("-1")) == (Decimal("-0.1"), Decimal("-0.7"), Decimal("-0.2"))
    with pytest.raises(ValueError, match="add up to 95, not 100"):
        RevenueSplit.model_validate(
            {"basis": "gross", "creator": "70", "platform": "15", "processor": {"percent": "10"}}
        )
    with pytest.raises(ValueError, match="needs basis: gross"):
        RevenueSplit.model_validate({"creator": "70", "platform": "30"})


def test_the_fixed_processor_fee_is_per_positive_charge_and_never_refunded() -> None:
    split = RevenueSplit.model_validate({"creator": "80", "processor": {"percent": "2.9", "fixed": "0.30"}})
    assert split.shares(Decimal("0.10"))[0] == Decimal("0.10")  # never more than the charge
    processor, to_creator, platform = split.shares(Decimal("-10"))
    assert processor == Decimal("-0.290") and to_creator == Decimal("-7.768")
    assert processor + to_creator + platform == Decimal(-10)
