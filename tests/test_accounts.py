"""The id grammar, checked at every entry, and account names built and parsed in one module."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.accounts import (
    MAX_ID_LENGTH,
    check_id,
    creator_account,
    creator_of,
    customer_account,
    customer_of,
    grant_account,
    held_account,
    prepaid_account,
    receivable_account,
    wallet_account,
)
from rating.engine import Engine
from rating.errors import InvalidId, PricebookError
from rating.events import Sourced, from_objects
from rating.pricebook.model import Pricebook
from rating.refusals import Refusal
from rating.registry import Registry
from rating.storage import Storage
from rating.wallet.wallets import Wallets
from tests.helpers import NOV, SIMPLE_PRICEBOOK

BAD_IDS = ["", "bob:team", "a b", "tab\there", "nul\x00", "\U0010ffff", "zero\u200bwidth", "x" * (MAX_ID_LENGTH + 1)]
GOOD_IDS = ["acme", "cus_123", "jane@example.com", "agt-abc.123", "日本語", "x" * MAX_ID_LENGTH]


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
def test_ids_that_break_the_grammar_are_refused(value: str) -> None:
    with pytest.raises(InvalidId):
        check_id("customer", value)


@pytest.mark.parametrize("value", GOOD_IDS)
def test_ordinary_ids_are_accepted(value: str) -> None:
    assert check_id("customer", value) == value


def _valid(text: str) -> bool:
    try:
        check_id("customer", text)
    except InvalidId:
        return False
    return True


valid_ids = st.text(min_size=1, max_size=20).filter(_valid)


@given(a=valid_ids, b=valid_ids, grant=valid_ids)
def test_accounts_of_different_ids_never_collide_and_parse_back(a: str, b: str, grant: str) -> None:
    builders = [receivable_account, wallet_account, held_account, prepaid_account, lambda c: grant_account(c, grant)]
    for build in builders:
        assert customer_of(build(a)) == a
        if a != b:
            assert {build(a) for build in builders}.isdisjoint({build(b) for build in builders})
    assert customer_account(grant_account(a, grant)) == (a, "grant")
    assert creator_of(creator_account(a)) == a and customer_of(creator_account(a)) is None


def test_an_event_whose_customer_breaks_the_grammar_is_an_invalid_record(engine: Engine) -> None:
    records = list(
        from_objects(
            [
                {"id": "e1", "customer": "bob:team", "type": "api.call", "timestamp": NOV.isoformat()},
                {"id": "e2", "customer": "\U0010ffffacme", "type": "api.call", "timestamp": NOV.isoformat()},
                {"id": "e3\x00", "customer": "acme", "type": "api.call", "timestamp": NOV.isoformat()},
                {
                    "id": "e4",
                    "customer": "acme",
                    "type": "api.call",
                    "timestamp": NOV.isoformat(),
                    "attribution": {"agent": "a:b"},
                },
            ]
        )
    )
    assert all(isinstance(r, Sourced) and r.event is None for r in records)
    report = engine.rate_batch(records)
    assert report.posted == 0 and {r.code for r in report.rejected} == {Refusal.INVALID_RECORD}


def test_a_pricebook_whose_ids_break_the_grammar_is_refused_at_their_lines(
    book: Callable[[str], Pricebook],
) -> None:
    text = SIMPLE_PRICEBOOK.replace("  acme: {plan: basic}", '  "bob:team": {plan: basic}')
    text += 'agents:\n  "agt:1": {creator: "jane doe"}\n'
    with pytest.raises(PricebookError) as error:
        book(text)
    assert [p.split(":")[1] for p in error.value.problems] == ["18", "20", "20"]
    assert all("must not contain" in p for p in error.value.problems)


def test_wallet_calls_refuse_ids_that_break_the_grammar(storage: Storage) -> None:
    wallets = Wallets(storage)
    for call in (
        lambda: wallets.deposit("bob:team", "USD", Decimal(1), "d1"),
        lambda: wallets.grant("bob:team", "USD", Decimal(1), "g1"),
        lambda: wallets.grant("bob", "USD", Decimal(1), "g:1"),
        lambda: wallets.reserve("bob", "USD", Decimal(1), "r:1", dt.timedelta(minutes=1)),
    ):
        with pytest.raises(InvalidId):
            call()
    assert storage.balances() == {}


def test_one_customer_never_spends_a_grant_of_another_whose_id_it_begins(storage: Storage) -> None:
    clock = lambda: NOV  # noqa: E731
    wallets = Wallets(storage, clock)
    wallets.grant("acme.vip", "USD", Decimal(10), "promo", starts=NOV)
    wallets.grant("acme", "USD", Decimal(1), "small", starts=NOV)
    assert wallets.balance("acme")["USD"].available == Decimal(1)
    reservation = wallets.reserve("acme", "USD", Decimal(1), "r1", dt.timedelta(minutes=5))
    assert reservation.draw == ((grant_account("acme", "small"), Decimal(1)),)
    assert wallets.balance("acme.vip")["USD"].available == Decimal(10)


def test_the_top_up_hook_is_told_the_customer_whose_wallet_fell(
    book: Callable[[str], Pricebook], storage: Storage
) -> None:
    told = []

    class TopUps:
        from rating.hookspecs import hookimpl

        @hookimpl
        def rating_top_up_needed(self, customer: str, asset: str, available: Decimal, amount: Decimal) -> None:
            told.append((customer, available, amount))

    text = SIMPLE_PRICEBOOK.replace(
        "  acme: {plan: basic}",
        '  "jane@example.com": {plan: basic, billing: wallet, top_up: {below: "5", amount: "20"}}',
    )
    registry = Registry.load([TopUps()])
    Wallets(storage, lambda: NOV).deposit("jane@example.com", "USD", Decimal("5.005"), "d1")
    engine = Engine(book(text), storage, registry)
    engine.rate(engine_event := _event("jane@example.com"))
    assert engine_event.customer == "jane@example.com"
    assert told == [("jane@example.com", Decimal("4.995"), Decimal("20"))]


def _event(customer: str) -> object:
    from tests.helpers import event

    return event("e1", customer=customer, tokens=0, model="m")
