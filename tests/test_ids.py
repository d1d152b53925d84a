"""Transaction ids: one module builds them, and parses back what it built.

The ids are stored and idempotency depends on them, so the first table holds the
exact strings the library posted before :mod:`rating.ids` existed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rating import ids, ledger
from rating.accounts import check_free_text, check_id, tax_account
from rating.billing import rerate
from rating.errors import InvalidId
from rating.ids import TransactionKind as K
from rating.invoices import issue as invoices
from rating.ledger import Transaction
from rating.periods import period_label

#: (builder, its arguments, the id today's code posts, its kind, its parts by name), one row per way an id is built.
EXAMPLES: list[tuple[Callable[..., str], tuple[Any, ...], str, K, dict[str, object]]] = [
    (ids.rating_id, ("e1",), "rating:e1", K.RATING, {"event": "e1"}),
    (ids.rating_id, ("order:7:line:2",), "rating:order:7:line:2", K.RATING, {"event": "order:7:line:2"}),
    (ids.rerate_id, ("e1", 1), "rerate:e1:1", K.RERATE, {"event": "e1", "sequence": 1}),
    (ids.rerate_id, ("a:b", 12), "rerate:a:b:12", K.RERATE, {"event": "a:b", "sequence": 12}),
    (
        ids.fee_id,
        ("acme", "2026-11", 0),
        "fee:acme:2026-11:0",
        K.FEE,
        {"customer": "acme", "period": "2026-11", "sequence": 0},
    ),
    (ids.minimum_id, ("acme", "2026-11"), "minimum:acme:2026-11", K.MINIMUM, {"customer": "acme", "period": "2026-11"}),
    (
        ids.commitment_id,
        ("acme", "2026-W47"),
        "commitment:acme:2026-W47",
        K.COMMITMENT,
        {"customer": "acme", "period": "2026-W47"},
    ),
    (ids.prepayment_id, ("acme-2026",), "prepayment:acme-2026", K.PREPAYMENT, {"contract": "acme-2026"}),
    (
        ids.rounding_id,
        ("acme", "2026-11-23", "USD"),
        "rounding:acme:2026-11-23:USD",
        K.ROUNDING,
        {"customer": "acme", "period": "2026-11-23", "asset": "USD"},
    ),
    (ids.closing_id, ("acme", "2026"), "close:acme:2026", K.CLOSE, {"customer": "acme", "period": "2026"}),
    (ids.tax_id, ("acme", "2026-11"), "tax:acme:2026-11", K.TAX, {"customer": "acme", "period": "2026-11"}),
    (ids.settle_id, ("wire-42",), "settle:wire-42", K.SETTLE, {"payment": "wire-42"}),
    (ids.credit_id, ("CN-2026-000001",), "credit:CN-2026-000001", K.CREDIT, {"number": "CN-2026-000001"}),
    (ids.deposit_id, ("top-1",), "deposit:top-1", K.DEPOSIT, {"reference": "top-1"}),
    (ids.deposit_id, ("payment:pi_1",), "deposit:payment:pi_1", K.DEPOSIT, {"reference": "payment:pi_1"}),
    (ids.deposit_id, ("CN-2026-000001",), "deposit:CN-2026-000001", K.DEPOSIT, {"reference": "CN-2026-000001"}),
    (ids.refund_id, ("re_1",), "refund:re_1", K.REFUND, {"payment": "re_1"}),
    (ids.chargeback_id, ("cb_1",), "chargeback:cb_1", K.CHARGEBACK, {"payment": "cb_1"}),
    (ids.grant_id, ("acme", "welcome"), "grant:acme:welcome", K.GRANT, {"customer": "acme", "grant": "welcome"}),
    (
        ids.forfeit_id,
        ("acme", "welcome", 0),
        "forfeit:acme:welcome:0",
        K.FORFEIT,
        {"customer": "acme", "grant": "welcome", "sequence": 0},
    ),
    (ids.reserve_id, ("r-1",), "reserve:r-1", K.RESERVE, {"reservation": "r-1"}),
    (ids.release_id, ("r-1",), "release:r-1", K.RELEASE, {"reservation": "r-1"}),
    (ids.payment_marker_id, ("pi_1",), "payment:pi_1", K.PAYMENT, {"payment": "pi_1"}),
    (ids.payout_id, ("alice", "2026-W03"), "payout:alice:2026-W03", K.PAYOUT, {"creator": "alice", "week": "2026-W03"}),
]


@pytest.mark.parametrize(("build", "args", "literal", "kind", "parts"), EXAMPLES)
def test_every_builder_posts_todays_id_and_parses_back(
    build: Callable[..., str], args: tuple[Any, ...], literal: str, kind: K, parts: dict[str, object]
) -> None:
    built = build(*args)
    assert built == literal
    assert ids.kind_of(built) is kind
    assert ids.prefix_of(built) == kind.value == Transaction(built, dt.datetime.now(dt.UTC), "", ()).kind
    parsed = ids.parse(built)
    assert parsed.kind is kind
    assert str(parsed) == built
    assert {name: getattr(parsed, name) for name in ids.LAYOUTS[kind]} == parts


def test_the_table_covers_every_kind() -> None:
    assert {row[3] for row in EXAMPLES} == set(K) == set(ids.LAYOUTS)
    assert [kind.value for kind in K] == [
        "rating",
        "rerate",
        "fee",
        "minimum",
        "commitment",
        "prepayment",
        "rounding",
        "close",
        "tax",
        "settle",
        "credit",
        "deposit",
        "refund",
        "chargeback",
        "grant",
        "forfeit",
        "reserve",
        "release",
        "payment",
        "payout",
    ]


def test_a_deposit_a_payment_funded_names_the_payment() -> None:
    reference = ids.paid_reference("pi_1")
    assert reference == "payment:pi_1" == ids.payment_marker_id("pi_1")
    assert ids.deposit_id(reference) == "deposit:payment:pi_1"
    assert ids.paid_by(reference) == "pi_1"
    assert ids.paid_by("top-1") is None
    assert ids.paid_by(ids.parse("deposit:payment:pi:x").reference) == "pi:x"


def test_take_back_ids_are_refunds_or_chargebacks_only() -> None:
    assert ids.take_back_id("refund", "re_1") == "refund:re_1"
    assert ids.take_back_id(K.CHARGEBACK, "cb_1") == "chargeback:cb_1"
    with pytest.raises(InvalidId, match="refund or a chargeback"):
        ids.take_back_id("grant", "x")


@pytest.mark.parametrize(
    "id",
    [
        "t2",  # no kind this module builds
        "transfer:1",
        "close",  # a kind without its parts
        "rating:",
        "close:acme",  # a part short
        "close:acme:2026-11:extra",  # a part too many: the customer would hold ':'
        "fee:a:b:2026-11:0",
        "close::2026-11",  # an empty part
        "fee:acme:2026-11:01",  # a counter not in its canonical form
        "fee:acme:2026-11:-1",
        "rerate:e1:one",
        "forfeit:acme:welcome:١",  # a digit, but not an ASCII one
    ],
)
def test_parse_refuses_what_no_builder_makes(id: str) -> None:
    with pytest.raises(InvalidId):
        ids.parse(id)


def test_a_part_the_kind_has_not_is_refused() -> None:
    parsed = ids.parse("close:acme:2026-11")
    assert parsed.has("customer") and not parsed.has("event")
    with pytest.raises(InvalidId, match="close id has no event"):
        parsed.event  # noqa: B018


def test_ids_built_elsewhere_keep_their_first_word_as_kind() -> None:
    assert ids.kind_of("t2") is None
    assert ids.prefix_of("t2") == "t2" == Transaction("t2", dt.datetime.now(dt.UTC), "", ()).kind
    assert ids.prefix_of("transfer:9") == "transfer"


def test_the_old_names_stay_importable() -> None:
    assert ledger.rating_id is ids.rating_id and ledger.closing_id is ids.closing_id
    assert (ledger.RATING_PREFIX, ledger.CLOSING_PREFIX) == ("rating:", "close:")
    assert ledger.RERATE == rerate.RERATE == K.RERATE == "rerate"
    assert callable(invoices.tax_account)


def test_the_tax_account_is_named_with_the_other_accounts() -> None:
    assert tax_account("VAT standard", "DE") == "tax:VAT_standard:DE"


# -- properties over valid ids ---------------------------------------------------------------

#: Ids that follow the id grammar (customers, grants, reservations, payments, creators).
_GRAMMAR = st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"], exclude_characters=":")
valid_ids = st.text(_GRAMMAR, min_size=1, max_size=20)
#: Event ids are free text: ':' included.
event_ids = st.lists(st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=12), min_size=1, max_size=4).map(
    ":".join
)
moments = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 12, 1), timezones=st.just(dt.UTC))
periods = st.builds(period_label, moments, st.sampled_from(["day", "week", "month", "year"]), st.just(dt.UTC))
counts = st.integers(min_value=0, max_value=10**9)


def _valid(*values: str) -> None:
    for value in values:
        try:
            check_id("id", value)
        except InvalidId:
            assume(False)


def _event(value: str) -> None:
    try:
        check_free_text("event id", value)
    except InvalidId:
        assume(False)


@given(valid_ids, periods, counts, st.sampled_from(["USD", "EUR", "credits"]))
def test_period_ids_round_trip_for_every_valid_customer_and_period(
    customer: str, period: str, number: int, asset: str
) -> None:
    _valid(customer)
    for build, kind in [
        (ids.minimum_id, K.MINIMUM),
        (ids.commitment_id, K.COMMITMENT),
        (ids.closing_id, K.CLOSE),
        (ids.tax_id, K.TAX),
    ]:
        parsed = ids.parse(build(customer, period))
        assert (parsed.kind, parsed.customer, parsed.period) == (kind, customer, period)
    fee = ids.parse(ids.fee_id(customer, period, number))
    assert (fee.kind, fee.customer, fee.period, fee.sequence) == (K.FEE, customer, period, number)
    rounding = ids.parse(ids.rounding_id(customer, period, asset))
    assert (rounding.customer, rounding.period, rounding.asset) == (customer, period, asset)
    payout = ids.parse(ids.payout_id(customer, period))
    assert (payout.kind, payout.creator, payout.week) == (K.PAYOUT, customer, period)


@given(valid_ids, valid_ids, counts)
def test_wallet_ids_round_trip_for_every_valid_id(customer: str, other: str, number: int) -> None:
    _valid(customer, other)
    grant = ids.parse(ids.grant_id(customer, other))
    assert (grant.kind, grant.customer, grant.grant) == (K.GRANT, customer, other)
    forfeit = ids.parse(ids.forfeit_id(customer, other, number))
    assert (forfeit.customer, forfeit.grant, forfeit.sequence) == (customer, other, number)
    for build, kind, name in [
        (ids.reserve_id, K.RESERVE, "reservation"),
        (ids.release_id, K.RELEASE, "reservation"),
        (ids.payment_marker_id, K.PAYMENT, "payment"),
        (ids.settle_id, K.SETTLE, "payment"),
        (ids.refund_id, K.REFUND, "payment"),
        (ids.chargeback_id, K.CHARGEBACK, "payment"),
        (ids.deposit_id, K.DEPOSIT, "reference"),
        (ids.credit_id, K.CREDIT, "number"),
        (ids.prepayment_id, K.PREPAYMENT, "contract"),
    ]:
        parsed = ids.parse(build(other))
        assert (parsed.kind, parsed.part(name), str(parsed)) == (kind, other, build(other))
    paid = ids.parse(ids.deposit_id(ids.paid_reference(other)))
    assert ids.paid_by(paid.reference) == other


@given(event_ids, st.integers(min_value=1, max_value=10**6))
def test_event_ids_round_trip_even_with_colons(event: str, number: int) -> None:
    _event(event)
    assert ids.parse(ids.rating_id(event)).event == event
    correction = ids.parse(ids.rerate_id(event, number))
    assert (correction.event, correction.sequence) == (event, number)
    assert str(correction) == ids.rerate_id(event, number)
