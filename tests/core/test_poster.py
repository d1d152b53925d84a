"""The poster: priced lines and decisions -> one balanced transaction, built once."""

from __future__ import annotations

from decimal import Decimal

import pytest

import rating.core.poster
from rating.accounts import held_account, prepaid_account, receivable_account, wallet_account
from rating.core.charges import Usage
from rating.core.policies import PrepaidDraw, ReservationFunding, WalletFunding
from rating.core.poster import Poster, owed
from rating.ledger import Transaction
from rating.registry import Registry
from rating.wallet.wallets import Reservation
from tests.core.books import AT, priced, snapshot


def balanced(transaction: Transaction) -> bool:
    sums: dict[str, Decimal] = {}
    for posting in transaction.postings:
        sums[posting.asset] = sums.get(posting.asset, Decimal(0)) + posting.amount
    return not any(sums.values())


def test_the_poster_debits_the_receivable_and_credits_revenue(registry: Registry) -> None:
    event = priced(registry, "capped")
    kept = snapshot(event)
    rating = Poster().post(event)
    postings = [(p.account, p.amount) for p in rating.transaction.postings]
    assert postings[0] == (receivable_account("capped"), Decimal("1.00")) and balanced(rating.transaction)
    assert rating.transaction.id == "rating:e1" and rating.usage == tuple(event.usage)
    assert snapshot(event) == kept


def test_the_poster_applies_prepaid_reservation_and_wallet_decisions_in_one_build(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = priced(registry, "walleted")
    built: list[str] = []

    def counted(*args: object, **kwargs: object) -> Transaction:
        transaction = Transaction(*args, **kwargs)  # type: ignore[arg-type]
        built.append(transaction.id)
        return transaction

    monkeypatch.setattr(rating.core.poster, "Transaction", counted)
    wallet = wallet_account("walleted")
    held = Reservation("r1", "walleted", "USD", Decimal("0.40"), AT, ((wallet, Decimal("0.40")),))
    reserved = ReservationFunding(held, Decimal("0.40"), AT, ((wallet, Decimal("0.40")),))
    funding = WalletFunding(((wallet, "USD", Decimal("0.60")),), (((wallet, "USD"), Decimal("-1")),))
    spend = Usage("policy:spend", (), "2026-11", Decimal(1), Decimal(0), Decimal(1))
    rating_ = Poster().post(event, [spend], None, reserved, funding)
    assert built == ["rating:e1"]  # once: no rebuild by a later decision
    postings = [(p.account, p.amount) for p in rating_.transaction.postings]
    assert (held_account("walleted"), Decimal("0.40")) in postings and (wallet, Decimal("0.60")) in postings
    assert [a for a, _ in postings].count(wallet) == 1  # the payer's debit is the funding's draw, not both
    assert rating_.transaction.metadata["reservation"] == "r1" and balanced(rating_.transaction)
    assert rating_.usage[-1] == spend
    release = Poster.release(reserved, "rating:e1")
    assert release.id == "release:r1" and not release.postings  # it used all it held


def test_a_prepaid_draw_moves_the_debit_to_the_commitment(registry: Registry) -> None:
    event = priced(registry, "bigco")
    line = Usage("policy:prepaid:bigco-2026", (), "term", Decimal(2), Decimal(2), Decimal(4))
    draw = PrepaidDraw("USD", Decimal("1.00"), line)
    assert owed(event, draw) == {"USD": Decimal("1.00")} and owed(event, None) == {"USD": Decimal("2.00")}
    transaction = Poster().post(event, [line], draw).transaction
    postings = [(p.account, p.amount) for p in transaction.postings]
    assert postings[:2] == [(prepaid_account("bigco"), Decimal("1.00")), (receivable_account("bigco"), Decimal("1.00"))]
    assert transaction.metadata["contract"] == "bigco-2026" and balanced(transaction)


def test_the_posting_unit_is_a_parameter() -> None:
    assert Poster().unit == "event"
    with pytest.raises(ValueError, match="posting unit"):
        Poster("chunk")  # type: ignore[arg-type]
