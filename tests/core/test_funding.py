"""rating.core.funding: the pure record types and the arithmetic of a wallet draw (no storage)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rating.core.funding import (
    Grant,
    Reservation,
    consumed,
    consumption_order,
    draw_from,
    funding_sources,
    grant_metadata,
    grant_of,
    release_state,
    released,
    reservation_metadata,
    reservation_of,
)
from rating.ledger import Transaction

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def test_grants_are_spent_by_priority_then_expiry_and_only_while_in_force() -> None:
    late = Grant("late", "acme", "USD", Decimal(3), "promotional", 1, AT, AT + 9 * DAY)
    soon = Grant("soon", "acme", "USD", Decimal(3), "promotional", 1, AT, AT + 2 * DAY)
    first = Grant("first", "acme", "USD", Decimal(2), "rollover", 0, AT, None)
    future = Grant("future", "acme", "USD", Decimal(2), "rollover", 0, AT + 5 * DAY, None)
    assert consumption_order([late, soon, first, future], AT + DAY) == [first, soon, late]
    assert consumption_order([late, soon, first, future], AT + 3 * DAY) == [first, late]
    balances = {"customer:acme:grant:first": Decimal(-2), "customer:acme:wallet": Decimal(-10)}
    sources = funding_sources("acme", "USD", AT, [first], lambda a, _: balances.get(a, Decimal(0)))
    assert sources == [("customer:acme:grant:first", Decimal(2)), ("customer:acme:wallet", Decimal(10))]


def test_a_draw_takes_in_order_and_is_none_when_too_little() -> None:
    sources = [("g", Decimal(2)), ("empty", Decimal(0)), ("w", Decimal(5))]
    assert draw_from(sources, Decimal(3)) == [("g", Decimal(2)), ("w", Decimal(1))]
    assert draw_from(sources, Decimal(8)) is None
    assert consumed((("g", Decimal(2)), ("w", Decimal(1))), Decimal("2.5")) == {"g": Decimal(2), "w": Decimal("0.5")}


def test_grants_and_reservations_read_back_what_their_transactions_say() -> None:
    grant = Grant("promo", "acme", "USD", Decimal("1.50"), "purchased", -1, AT, AT + DAY)
    assert grant_of(Transaction("grant:acme:promo", AT, "g", (), grant_metadata(grant))) == grant
    held = Reservation("r1", "acme", "USD", Decimal(3), AT + DAY, (("customer:acme:wallet", Decimal(3)),))
    opened = Transaction("reserve:r1", AT, "hold", (), reservation_metadata(held))
    assert reservation_of(opened) == held and held.held
    settle = Transaction("release:r1", AT, "s", (), {"customer": "acme", "reservation": "r1", "actual": "2"})
    expire = Transaction("release:r1", AT, "e", (), {"customer": "acme", "reservation": "r1", "reason": "expired"})
    void = Transaction("release:r1", AT, "v", (), {"customer": "acme", "reservation": "r1", "reason": "oops"})
    assert [release_state(t) for t in (settle, expire, void)] == [
        ("r1", "settled"),
        ("r1", "expired"),
        ("r1", "voided"),
    ]
    done = released(held, settle)
    assert (done.state, done.released_by, done.held) == ("settled", "release:r1", False)


def test_wallet_keeps_the_old_names_for_one_release() -> None:
    import rating.core.funding as funding
    import rating.wallet.wallets as wallet

    for name in ("Grant", "Reservation", "consumed", "consumption_order", "draw_from", "funding_sources", "Draw"):
        assert getattr(wallet, name) is getattr(funding, name)
