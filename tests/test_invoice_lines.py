"""Invoice lines people can read: display names in the invoice's language, one line per tier reached (their
exact amounts adding up to the charge), the allowance as included units, unit prices per 1,000 or 1M units."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.errors import PricebookError
from rating.invoices.issue import Invoice, LineStep, issue_invoices
from rating.invoices.lines import line_description
from rating.invoices.profiles import parse_billing
from rating.invoices.render import invoice_csv, invoice_html
from rating.invoices.settle import credit_invoice
from rating.pricebook.catalog import Catalog
from rating.pricebook.model import Pricebook, parse_pricebook
from rating.registry import Registry
from rating.storage import Storage
from rating.storage.memory import MemoryStorage
from tests.helpers import SIMPLE_PRICEBOOK, event
from tests.test_invoices import BILLING, ISSUED, NOVEMBER, billed

REGISTRY = Registry.load()

ENGLISH = BILLING.replace("country: DE, language: de}", "country: DE}")

LINES = """\
pricebook: lines
version: 2026-11-01
currency: USD
meters:
  input_tokens: {{event: api.call, sum: tokens, display: {{en: Input tokens, de: Eingabe-Tokens}}}}
  images: {{event: api.call, sum: images}}
plans:
  basic:
    charges:
      - meter: input_tokens
        model: tiered
        mode: {mode}
        per: 1000000
        tiers:
          - {{up_to: 1_000_000, unit_price: "0.0000025"}}
          - {{up_to: 5_000_000, unit_price: "0.0000020"}}
          - {{unit_price: "0.0000015"}}
      - {{meter: images, model: per_unit, unit_price: "0.04", included: 100, display: {{en: Generated images}}}}
customers:
  acme: {{plan: basic}}
"""


def issue(book: Pricebook, events: list, billing: str = ENGLISH, storage: Storage | None = None) -> Invoice:  # type: ignore[type-arg]
    storage = storage if storage is not None else MemoryStorage()
    billed(book, storage, events, "2026-11")
    [invoice] = issue_invoices(storage, Catalog([book]), parse_billing(billing), "2026-11", issued=ISSUED).issued
    return invoice


def test_a_graduated_charge_has_a_line_per_tier_reached_and_they_add_up_to_it(book) -> None:  # type: ignore[no-untyped-def]
    calls = [event(f"e{i}", at=NOVEMBER, tokens=t, images=0) for i, t in enumerate((800_000, 537_498))]
    storage = MemoryStorage()
    invoice = issue(book(LINES.format(mode="graduated")), calls, storage=storage)
    rows = [(line_description(line), line.quantity, line.unit_price, line.exact, line.amount) for line in invoice.lines]
    assert rows == [
        ("Input tokens – tier 1: first 1,000,000", 1_000_000, Decimal("0.0000025"), Decimal("2.5"), Decimal("2.50")),
        ("Input tokens – tier 2: next 4,000,000", 337_498, Decimal("0.0000020"), Decimal("0.674996"), Decimal("0.67")),
    ]
    assert sum(line.exact for line in invoice.lines) == Decimal("3.174996")  # what the two events were charged
    assert [line.step for line in invoice.lines] == [
        LineStep(kind="tier", tier=1, lower=Decimal(0), upper=Decimal(1_000_000)),
        LineStep(kind="tier", tier=2, lower=Decimal(1_000_000), upper=Decimal(5_000_000)),
    ]
    page = invoice_html(invoice)
    assert "Input tokens – tier 2: next 4,000,000" in page and "2.00 per 1M" in page and "2.50 per 1M" in page
    # The CSV keeps the exact unit price: per: is display only.
    assert '"Input tokens – tier 1: first 1,000,000",1000000,input_tokens,0.0000025,2.50,' in invoice_csv([invoice])
    # A credit note's lines read as the invoice's.
    note, _ = credit_invoice(storage, invoice.number, "cancel", "cancelled")
    assert [line.description for line in note.lines] == [row[0] for row in rows]


def test_a_volume_charge_shows_the_tier_that_applied(book) -> None:  # type: ignore[no-untyped-def]
    calls = [event(f"e{i}", at=NOVEMBER, tokens=t, images=0) for i, t in enumerate((800_000, 537_498))]
    invoice = issue(book(LINES.format(mode="volume")), calls)
    [line] = invoice.lines
    assert (line.quantity, line.unit_price, line.exact) == (1_337_498, Decimal("0.0000020"), Decimal("2.674996"))
    assert line_description(line) == "Input tokens – volume tier 2: over 1,000,000 up to 5,000,000"


def test_the_allowance_is_a_line_of_included_units(book) -> None:  # type: ignore[no-untyped-def]
    calls = [event(f"e{i}", at=NOVEMBER, tokens=0, images=n) for i, n in enumerate((60, 70))]
    invoice = issue(book(LINES.format(mode="graduated")), calls)
    rows = [(line_description(line), line.quantity, line.unit_price, line.amount) for line in invoice.lines]
    assert rows == [
        ("Generated images – included", 100, None, Decimal("0.00")),
        ("Generated images – beyond the included", 30, Decimal("0.04"), Decimal("1.20")),
    ]


def test_display_names_follow_the_invoice_s_language_and_default_to_the_id_humanised(book) -> None:  # type: ignore[no-untyped-def]
    calls = [event("e1", at=NOVEMBER, tokens=10, images=101)]
    german = issue(book(LINES.format(mode="graduated")), calls, BILLING)  # acme reads German
    assert [line.description for line in german.lines] == ["Eingabe-Tokens", "Generated images", "Generated images"]
    page = invoice_html(german)
    assert "Eingabe-Tokens – Stufe 1: erste 1.000.000" in page and "2,50 pro 1 Mio." in page
    plain = issue(book(SIMPLE_PRICEBOOK), [event("e1", at=NOVEMBER, tokens=10, model="m")])
    assert [line.description for line in plain.lines] == ["Requests", "Tokens (m)"]


def test_a_charge_whose_steps_do_not_add_up_keeps_one_line_per_price(book) -> None:  # type: ignore[no-untyped-def]
    capped = SIMPLE_PRICEBOOK.replace("        mode: graduated\n", "        mode: graduated\n        cap: '1'\n")
    invoice = issue(book(capped), [event("e1", at=NOVEMBER, tokens=1500, model="m")])
    assert [(line.description, line.step, line.amount) for line in invoice.lines] == [
        ("Requests", None, Decimal("0.01")),
        ("Tokens (m)", None, Decimal("1.00")),
    ]


@pytest.mark.parametrize(
    ("display", "message"),
    [
        ('""', "must not be empty"),
        ("{english: Tokens}", "'english' is not a two-letter language code"),
        ("{de: ''}", "the text for de must be a non-empty text"),
        ("[a, b]", "must be a text, or a mapping of language to text"),
    ],
)
def test_a_bad_display_name_is_one_clear_line(display: str, message: str) -> None:
    text = SIMPLE_PRICEBOOK.replace(
        "{event: api.call, count: true}", f"{{event: api.call, count: true, display: {display}}}"
    )
    with pytest.raises(PricebookError) as raised:
        parse_pricebook(text, REGISTRY, "book.yaml")
    [problem] = raised.value.problems
    assert problem.startswith("book.yaml:5:") and "meters.requests.display: " + message in problem


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["graduated", "volume"]),
    st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=6),
)
def test_tier_lines_add_up_exactly_to_the_charge(mode: str, quantities: list[int]) -> None:
    book = parse_pricebook(LINES.format(mode=mode), REGISTRY)
    storage: Storage = MemoryStorage()
    calls = [
        event(f"e{i}", at=NOVEMBER + dt.timedelta(minutes=i), tokens=q, images=0) for i, q in enumerate(quantities)
    ]
    billed(book, storage, calls, "2026-11")
    report = issue_invoices(storage, Catalog([book]), parse_billing(ENGLISH), "2026-11", issued=ISSUED)
    if not sum(quantities):
        return
    [invoice] = report.issued
    charged = sum((s.charge.amount for s in storage.charges("acme")), Decimal(0))
    tiers = [line for line in invoice.lines if line.step is not None and line.step.kind in ("tier", "volume")]
    assert sum(line.exact for line in tiers) == charged
    assert sum(line.quantity or 0 for line in tiers) == sum(quantities)
    assert sum(line.amount for line in invoice.lines) == invoice.subtotal


def test_a_price_change_within_the_period_splits_a_meter_and_says_so(book) -> None:  # type: ignore[no-untyped-def]
    from rating.billing.close import close_period
    from rating.engine import Engine
    from tests.helpers import later

    first = book(LINES.format(mode="graduated"))
    second = book(
        LINES.format(mode="graduated").replace("version: 2026-11-01", "version: 2026-11-15").replace('"0.04"', '"0.05"')
    )
    catalog, storage = Catalog([first, second]), MemoryStorage()
    engine = Engine(catalog, storage, REGISTRY, clock=later)
    engine.rate_batch(
        [event("e1", at=NOVEMBER, tokens=0, images=150), event("e2", at=NOVEMBER.replace(day=20), tokens=0, images=10)]
    )
    close_period(engine, "2026-11")
    [invoice] = issue_invoices(storage, catalog, parse_billing(ENGLISH), "2026-11", issued=ISSUED).issued
    assert [(line.description, line.quantity, line.unit_price, line.amount) for line in invoice.lines] == [
        ("Generated images, prices of 2026-11-01", 150, None, Decimal("2.00")),
        ("Generated images, prices of 2026-11-15", 10, Decimal("0.05"), Decimal("0.50")),
    ]
