"""Weekly creator payouts: Monday to Sunday earnings, paid the following Wednesday, once."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.billing.payouts import pay_creators
from rating.cli import main
from rating.engine import Engine
from rating.errors import PayoutRefused
from rating.events import Attribution
from rating.periods import bounds_of
from rating.pricebook.model import Pricebook
from rating.refusals import PayoutRefusal
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.helpers import balances_under, event
from tests.test_revenue_split import SPLIT_BOOK

LATER = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def later() -> dt.datetime:
    return LATER


def execution(id: str, day: int, hour: int = 12) -> object:
    at = dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)
    return event(id, type="agent.execution", at=at).model_copy(update={"attribution": Attribution(agent="agt_1")})


def test_a_week_of_earnings_is_paid_the_following_wednesday_once(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    pricebook = book(SPLIT_BOOK)
    engine = Engine(pricebook, storage, registry)
    for id, day in [("a", 16), ("b", 22), ("c", 23)]:  # Monday and Sunday of W47, Monday of W48
        engine.rate(execution(id, day))
    paid, earlier = pay_creators(storage, pricebook, "2026-W47", later)
    assert [(p.creator, p.amount, p.pay_on) for p in paid] == [("jane", Decimal("2.62"), dt.date(2026, 11, 25))]
    assert earlier == []
    payout = storage.transaction("payout:jane:2026-W47")
    assert payout is not None and payout.timestamp == dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    again, earlier = pay_creators(storage, pricebook, "2026-W47", later)
    assert again == [] and [p.amount for p in earlier] == [Decimal("2.62")]
    # 2 x 1.3136 earned in W47, 2.62 paid: the 0.0072 left joins W48's 1.3136.
    [next_week], _ = pay_creators(storage, pricebook, "2026-W48", later)
    assert next_week.amount == Decimal("1.32")
    assert balances_under(storage, "payable:creator:") == {("payable:creator:jane", "USD"): Decimal("-0.0008")}


def test_only_weeks_are_accepted(book: Callable[[str], Pricebook], storage: Storage) -> None:
    with pytest.raises(PayoutRefused, match="'2026-11' is not an ISO week") as refused:
        pay_creators(storage, book(SPLIT_BOOK), "2026-11")
    assert refused.value.code is PayoutRefusal.INVALID_WEEK


def test_a_week_that_has_not_ended_is_refused_and_nothing_is_paid(
    book: Callable[[str], Pricebook], registry: Registry, storage: Storage
) -> None:
    pricebook = book(SPLIT_BOOK)
    Engine(pricebook, storage, registry).rate(execution("a", 23))  # Monday of W48
    monday = lambda: dt.datetime(2026, 11, 23, 18, tzinfo=dt.UTC)  # noqa: E731
    with pytest.raises(PayoutRefused) as refused:
        pay_creators(storage, pricebook, "2026-W48", monday)
    assert refused.value.code is PayoutRefusal.WEEK_NOT_ENDED
    assert storage.transactions_of("payout") == []
    sunday_night = lambda: dt.datetime(2026, 11, 30, tzinfo=dt.UTC)  # noqa: E731
    assert [p.amount for p in pay_creators(storage, pricebook, "2026-W48", sunday_night)[0]] == [Decimal("1.31")]


WEEKS = ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]


@settings(max_examples=25)
@given(
    days=st.lists(st.integers(min_value=2, max_value=29), min_size=1, max_size=12),
    order=st.lists(st.sampled_from(WEEKS), min_size=1, max_size=8),
)
def test_weeks_paid_in_any_order_and_again_never_pay_more_than_was_earned(
    book: Callable[[str], Pricebook], registry: Registry, days: list[int], order: list[str]
) -> None:
    pricebook = book(SPLIT_BOOK)

    def paid_in(sequence: list[str]) -> Decimal:
        storage = MemoryStorage()
        engine = Engine(pricebook, storage, registry)
        engine.rate_batch([execution(f"x{i}", day) for i, day in enumerate(days)])
        for position, week in enumerate(sequence):
            pay_creators(storage, pricebook, week, later)
            paid = -balances_under(storage, "payouts:").get(("payouts:USD", "USD"), Decimal(0))
            latest = max(sequence[: position + 1], key=WEEKS.index)
            _, _, latest_end = bounds_of(latest, dt.UTC)
            earned = sum(
                (
                    -p.amount
                    for t in storage.transactions_of("rating")
                    if t.timestamp < latest_end
                    for p in t.postings
                    if p.account == "payable:creator:jane"
                ),
                Decimal(0),
            )
            assert Decimal(0) <= paid <= earned
        return paid

    in_order = paid_in(sorted(set(order), key=WEEKS.index))
    assert paid_in(order) == in_order


def test_payouts_command_exports_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "split.yaml").write_text(SPLIT_BOOK)
    (tmp_path / "runs.jsonl").write_text(
        '{"id": "r1", "customer": "acme", "type": "agent.execution", "timestamp": "2026-11-17T10:00:00Z",'
        ' "attribution": {"agent": "agt_1"}}\n'
    )
    assert main(["rate", "runs.jsonl", "-p", "split.yaml"]) == 0
    capsys.readouterr()
    assert main(["payouts", "--week", "2026-W47", "-p", "split.yaml", "-o", "csv"]) == 0
    out = capsys.readouterr().out
    assert list(csv.DictReader(io.StringIO(out))) == [
        {
            "creator": "jane",
            "amount": "1.31",
            "asset": "USD",
            "pay_on": "2026-11-25",
            "transaction": "payout:jane:2026-W47",
        }
    ]
