"""The compiled version's caches stay bounded by the pricebook, not by the customers it has seen."""

from __future__ import annotations

import datetime as dt

from rating.core.compiled import CompiledVersion
from rating.pricebook.model import parse_pricebook
from rating.registry import Registry
from tests.core.books import BOOK

AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_unnamed_customers_share_one_subscription_history_and_the_cache_holds_only_named_ones() -> None:
    version = CompiledVersion(parse_pricebook(BOOK, Registry.load(), "seams.yaml"))
    plans = {version.plan_at(f"walk-in-{n}", AT) for n in range(10_000)}
    plans |= {version.plan_at(customer, AT) for customer in ("capped", "walleted", "bigco")}
    assert plans == {"p"}
    assert set(version._spans) == {"capped", "walleted", "bigco"}  # not 10,003 entries


def test_the_instants_terms_may_change_are_kept_per_named_customer_only() -> None:
    from rating.core.pricer import Pricer
    from rating.pricebook.catalog import Catalog

    pricer = Pricer(Catalog([parse_pricebook(BOOK, Registry.load(), "seams.yaml")]))
    year_start, year_end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert not any(pricer.terms_change_between(f"walk-in-{n}", AT, AT + dt.timedelta(days=1)) for n in range(1000))
    assert pricer.terms_change_between("bigco", year_end - dt.timedelta(days=1), year_end)  # its contract ends
    assert not pricer.terms_change_between("bigco", year_start, AT)
    assert set(pricer._changes) == {"", "bigco"}
