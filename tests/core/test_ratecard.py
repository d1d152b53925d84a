"""Rate cards: a customer's terms resolved once per stretch in which they cannot change, in a bounded cache.

The oracle is the catalog itself: for any event time, in any order of arrival, the terms read from a card
equal the version, plan, period, charges and contract resolved directly from the compiled versions.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from rating.core.pricer import Pricer
from rating.core.ratecard import RateCards
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from tests.helpers import event

# Two versions; a customer with a plan change, an anniversary in Tokyo and an end; a contract for part of a year.
V1 = """\
pricebook: cards
version: 2026-01-01
currency: USD
meters:
  runs: {event: agent.execution, count: true}
plans:
  basic:
    charges: [{meter: runs, model: per_call, price: "1.00"}]
  pro:
    charges: [{meter: runs, model: per_call, price: "0.50"}]
customers:
  mover: {plan: basic, changes: [{plan: pro, on: 2026-03-10}], until: 2026-09-01}
  tokyo: {plan: pro, timezone: Asia/Tokyo, anniversary: true, since: 2026-02-15}
  bigco: {plan: basic}
default_plan: basic
contracts:
  bigco-deal:
    customer: bigco
    from: 2026-04-01
    until: 2026-07-01
    charges: [{meter: runs, model: per_call, price: "0.25"}]
"""
V2 = V1.replace("version: 2026-01-01", "version: 2026-06-15").replace('price: "0.50"', 'price: "0.40"')
CUSTOMERS = ("mover", "tokyo", "bigco", "walk-in")
YEAR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
#: Where terms change (versions, the plan change, subscription bounds, the contract, month and anniversary ends):
#: events a few days either side of them meet a card resolved on the other side.
EDGES = [
    dt.datetime(*day, tzinfo=dt.UTC)
    for day in ((2026, 2, 15), (2026, 3, 10), (2026, 4, 1), (2026, 6, 15), (2026, 7, 1), (2026, 9, 1), (2026, 10, 1))
]


def catalog() -> Catalog:
    registry = Registry.load()
    return Catalog([parse_pricebook(V1, registry, "v1.yaml"), parse_pricebook(V2, registry, "v2.yaml")])


def resolved_directly(pricer: Pricer, customer: str, at: dt.datetime) -> tuple[object, ...]:
    version = pricer.version_at(at)
    plan = version.plan_at(customer, at)
    charges, contract, name = version.charges_for(customer, plan, at)
    return version.label, plan, version.period(plan, customer, at), charges, contract, name


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(CUSTOMERS),
            st.one_of(
                st.integers(min_value=0, max_value=364 * 24 * 60),
                st.builds(
                    lambda edge, minutes: int((edge - YEAR).total_seconds()) // 60 + minutes,
                    st.sampled_from(EDGES),
                    st.integers(min_value=-4 * 24 * 60, max_value=4 * 24 * 60),
                ),
            ),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_terms_from_cards_equal_terms_resolved_directly_in_any_order(arrivals: list[tuple[str, int]]) -> None:
    pricer, oracle = Pricer(catalog()), Pricer(catalog())
    for number, (customer, minutes) in enumerate(arrivals):
        at = YEAR + dt.timedelta(minutes=minutes)
        try:
            expected = resolved_directly(oracle, customer, at)
        except Exception as refusal:  # outside a subscription: the card refuses alike
            try:
                pricer.terms(event(f"e{number}", customer=customer, type="agent.execution", at=at))
            except type(refusal) as same:
                assert str(same) == str(refusal)
                continue
            raise AssertionError(f"{customer} at {at} was priced, the catalog refuses: {refusal}") from None
        terms = pricer.terms(event(f"e{number}", customer=customer, type="agent.execution", at=at))
        got = (terms.version.label, terms.plan, terms.period, terms.charges, terms.contract, terms.contract_name)
        assert got == expected


def test_a_card_ends_where_the_terms_or_the_period_change() -> None:
    pricer = Pricer(catalog())
    before_change = pricer.cards.at("mover", dt.datetime(2026, 3, 5, tzinfo=dt.UTC))
    assert (before_change.plan, before_change.period) == ("basic", "2026-03")
    assert before_change.start == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert before_change.end == dt.datetime(2026, 3, 10, tzinfo=dt.UTC)  # the plan change, before the month ends
    after_change = pricer.cards.at("mover", dt.datetime(2026, 3, 10, tzinfo=dt.UTC))
    assert (after_change.plan, after_change.start) == ("pro", dt.datetime(2026, 3, 10, tzinfo=dt.UTC))
    assert after_change.end == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    june = pricer.cards.at("mover", dt.datetime(2026, 6, 20, tzinfo=dt.UTC))
    assert (june.version.label, june.start) == ("cards@2026-06-15", dt.datetime(2026, 6, 15, tzinfo=dt.UTC))
    tokyo = pricer.cards.at("tokyo", dt.datetime(2026, 5, 20, tzinfo=dt.UTC))  # anniversary periods, Tokyo midnight
    assert (tokyo.start, tokyo.end) == (
        dt.datetime(2026, 5, 14, 15, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 14, 15, tzinfo=dt.UTC),
    )


def test_the_cache_keeps_the_most_recently_used_cards_only() -> None:
    pricer = Pricer(catalog())
    cards = RateCards(pricer._card, kept=2)
    at = dt.datetime(2026, 5, 2, tzinfo=dt.UTC)
    cards.at("mover", at)
    cards.at("tokyo", at)
    cards.at("mover", at)  # used again: tokyo is now the least recently used
    cards.at("bigco", at)
    assert list(cards._cards) == ["mover", "bigco"]
    assert len(cards) == 2


def test_a_pricer_keeps_one_card_per_customer_however_many_events() -> None:
    pricer = Pricer(catalog())
    resolved = []
    resolve = pricer.cards._resolve
    pricer.cards._resolve = lambda customer, at: resolved.append(customer) or resolve(customer, at)
    start = dt.datetime(2026, 5, 2, tzinfo=dt.UTC)
    for n in range(500):
        customer = f"walk-in-{n % 10}"
        pricer.terms(event(f"e{n}", customer=customer, type="agent.execution", at=start + dt.timedelta(minutes=n)))
    assert sorted(resolved) == sorted(f"walk-in-{n}" for n in range(10))  # once each, not once per event
