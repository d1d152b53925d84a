"""Weekly creator payouts: Monday to Sunday earnings, paid the following Wednesday, once."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from rating.cli import main
from rating.engine import Engine
from rating.errors import RatingError
from rating.events import Attribution
from rating.payouts import pay_creators
from rating.pricebook import Pricebook
from rating.registry import Registry
from rating.storage import Storage
from tests.helpers import event
from tests.test_revenue_split import SPLIT_BOOK


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
    paid, earlier = pay_creators(storage, pricebook, "2026-W47")
    assert [(p.creator, p.amount, p.pay_on) for p in paid] == [("jane", Decimal("2.62"), dt.date(2026, 11, 25))]
    assert earlier == []
    payout = storage.transaction("payout:jane:2026-W47")
    assert payout is not None and payout.timestamp == dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    again, earlier = pay_creators(storage, pricebook, "2026-W47")
    assert again == [] and [p.amount for p in earlier] == [Decimal("2.62")]
    # 2 x 1.3136 earned in W47, 2.62 paid: the 0.0072 left joins W48's 1.3136.
    [next_week], _ = pay_creators(storage, pricebook, "2026-W48")
    assert next_week.amount == Decimal("1.32")
    assert storage.balances("payable:creator:") == {("payable:creator:jane", "USD"): Decimal("-0.0008")}


def test_only_weeks_are_accepted(book: Callable[[str], Pricebook], storage: Storage) -> None:
    with pytest.raises(RatingError, match="'2026-11' is not an ISO week"):
        pay_creators(storage, book(SPLIT_BOOK), "2026-11")


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
