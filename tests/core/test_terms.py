"""Terms: what the pricebook says applies to an event, resolved before any meter reads it."""

from __future__ import annotations

import pytest

from rating.errors import EventError
from rating.refusals import Refusal
from rating.registry import Registry
from tests.core.books import AT, pricer
from tests.helpers import event


def test_terms_resolve_plan_period_meters_and_the_contract_in_force(registry: Registry) -> None:
    terms = pricer(registry).terms(event("e1", customer="bigco", type="agent.execution", at=AT))
    assert (terms.plan, terms.period, [name for name, _ in terms.meters]) == ("p", "2026-11", ["runs"])
    assert terms.contract_name == "bigco-2026" and terms.contract is not None
    assert terms.late_for is None and terms.received is terms.event  # nothing enriches it


def test_terms_refuse_an_event_no_meter_counts(registry: Registry) -> None:
    with pytest.raises(EventError) as refused:
        pricer(registry).terms(event("e1", customer="capped", type="nothing.counts.this", at=AT))
    assert refused.value.code == Refusal.UNKNOWN_EVENT_TYPE
