import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.errors import InvalidAmount, InvalidTransaction, UnbalancedTransaction
from rating.ledger import Posting, Transaction, imbalance, reversal

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=7, allow_nan=False, allow_infinity=False)
assets = st.sampled_from(["USD", "EUR", "CREDITS"])


@st.composite
def balanced_postings(draw: st.DrawFn) -> list[Posting]:
    """Random postings closed per asset by one balancing posting each."""
    postings = draw(st.lists(st.builds(Posting, st.sampled_from(["a", "b", "c"]), assets, amounts), max_size=10))
    for asset, off in imbalance(postings).items():
        postings.append(Posting("balance", asset, -off))
    return postings


@given(balanced_postings())
def test_balanced_postings_make_a_transaction(postings: list[Posting]) -> None:
    transaction = Transaction("t", AT, "ok", tuple(postings))
    assert imbalance(transaction.postings) == {}


@given(balanced_postings(), assets, amounts.filter(lambda a: a != 0))
def test_any_imbalance_in_any_asset_is_refused(postings: list[Posting], asset: str, off: Decimal) -> None:
    with pytest.raises(UnbalancedTransaction, match=f"{asset} off by"):
        Transaction("t", AT, "broken", tuple(postings + [Posting("x", asset, off)]))


@given(balanced_postings())
def test_a_reversal_balances_and_cancels_every_account(postings: list[Posting]) -> None:
    original = Transaction("t", AT, "ok", tuple(postings))
    undo = reversal(original, "t-rev", AT, "refund")
    net: dict[tuple[str, str], Decimal] = {}
    for p in original.postings + undo.postings:
        net[(p.account, p.asset)] = net.get((p.account, p.asset), Decimal(0)) + p.amount
    assert all(v == 0 for v in net.values())
    assert undo.metadata["reverses"] == "t"


@pytest.mark.parametrize("amount", [1.5, 1, "1", Decimal("NaN"), Decimal("Infinity"), True])
def test_a_posting_holds_only_finite_decimals(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        Posting("a", "USD", amount)  # type: ignore[arg-type]


def test_transactions_need_an_aware_timestamp_and_an_id() -> None:
    with pytest.raises(InvalidTransaction, match="timezone-aware"):
        Transaction("t", dt.datetime(2026, 11, 1), "naive", ())
    with pytest.raises(InvalidTransaction, match="needs an id") as missing_id:
        Transaction("", AT, "no id", ())
    assert not isinstance(missing_id.value, UnbalancedTransaction)


def test_fingerprint_changes_with_content_only() -> None:
    one = Transaction("t", AT, "d", (Posting("a", "USD", Decimal("1")), Posting("b", "USD", Decimal("-1"))))
    same = Transaction("t", AT, "d", (Posting("a", "USD", Decimal("1")), Posting("b", "USD", Decimal("-1"))))
    other = Transaction("t", AT, "d", (Posting("a", "USD", Decimal("2")), Posting("b", "USD", Decimal("-2"))))
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()
