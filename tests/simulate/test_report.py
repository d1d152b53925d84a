"""The HTML report: one self-contained, well-formed page that says why revenue moves, at the currency's scale."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.money import format_decimal, quantize
from rating.simulate import Scenario, SimulationResult
from rating.simulate.report import DOWN, STYLE, UP, render_report
from tests.helpers import EXAMPLE, ROOT

VOID = {"meta", "img", "br", "hr", "link", "input"}
CANDIDATE = ROOT / "pricebooks" / "candidates" / "ai-gateway-2027.yaml"


@dataclass
class Table:
    """A table as a reader sees it: caption, column headers, rows of cells (text and attributes)."""

    caption: str = ""
    headers: list[str] = field(default_factory=list)
    header_attrs: list[dict[str, str | None]] = field(default_factory=list)
    rows: list[list[tuple[str, dict[str, str | None]]]] = field(default_factory=list)
    attrs: dict[str, str | None] = field(default_factory=dict)

    def column(self, name: str) -> list[str]:
        index = self.headers.index(name)
        return [row[index][0] for row in self.rows]


class Page(HTMLParser):
    """Checks that every tag closes in order, and collects images, links, scripts, tables and text."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.images: list[str] = []
        self.outside: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self.tables: list[Table] = []
        self.html_attrs: dict[str, str | None] = {}
        self._cell: tuple[list[str], dict[str, str | None]] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.html_attrs = values
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "script":
            self.scripts.append(values)
        if values.get("href") or (values.get("src") and not str(values.get("src")).startswith("data:")):
            self.outside.append(str(values.get("href") or values.get("src")))
        if tag == "table":
            self.tables.append(Table(attrs=values))
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self.open and "tbody" in self.open:
            self.tables[-1].rows.append([])
        elif tag in ("th", "td"):
            self._cell = ([], values)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, f"</{tag}> closes nothing open"
        if tag == "caption" and self._caption is not None:
            self.tables[-1].caption = "".join(self._caption).strip()
            self._caption = None
        elif tag in ("th", "td") and self._cell is not None:
            text, values = "".join(self._cell[0]).strip(), self._cell[1]
            if tag == "th":
                self.tables[-1].headers.append(text)
                self.tables[-1].header_attrs.append(values)
            else:
                self.tables[-1].rows[-1].append((text, values))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell[0].append(data)
        if self._caption is not None:
            self._caption.append(data)

    def table(self, caption: str) -> Table:
        return next(table for table in self.tables if table.caption.startswith(caption))


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.open == [], f"left open: {page.open}"
    return page


def write_report(directory: Path, events: int = 500) -> tuple[Path, Path]:
    """The demo events and the report of the example pricebook against the 2027 candidate, in ``directory``."""
    history = write_demo_events(directory / "demo-events.jsonl", events)
    report = directory / "report.html"
    code = main(["simulate", str(history), "-p", str(EXAMPLE), "--vs", str(CANDIDATE), "--report", str(report)])
    assert code == 0
    return history, report


def test_the_report_is_one_self_contained_page_with_charts_and_figures_at_the_currency_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    events, report = write_report(tmp_path)
    capsys.readouterr()
    assert main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", str(CANDIDATE), "-o", "csv"]) == 0
    table = capsys.readouterr().out.splitlines()
    source = report.read_text(encoding="utf-8")
    page = read_page(report)
    assert page.outside == [] and not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", source)
    assert "http" not in source.replace("http-equiv", "")  # no URL at all: no CDN, font or image from outside
    assert page.scripts == [{}]  # one script, inlined
    assert page.html_attrs.get("lang") == "en"
    # change distribution in money and in percent, revenue by plan, top movers by money and by percent
    assert len(page.images) == 5
    for image in page.images:
        assert base64.b64decode(image.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    customers = page.table("Per customer")
    assert customers.headers == ["customer", "plan", "asset", "ai-gateway", "ai-gateway-2027", "change", "change %"]
    assert all(attrs.get("scope") == "col" for attrs in customers.header_attrs)
    scales = {"USD": 2, "CREDITS": 4}  # the pricebook declares CREDITS with 4 places
    rows = {row[0][0]: row for row in customers.rows}
    for line in table[1:]:  # every customer's totals, as the CSV gives them exactly, shown at the asset's scale
        customer, asset, before, after = line.split(",")[:4]
        cells = rows[customer]
        for (text, attrs), exact in ((cells[3], before), (cells[4], after)):
            assert text == format_decimal(quantize(Decimal(exact), scales[asset]))
            assert Decimal(str(attrs["data-v"])) == Decimal(exact)  # the exact figure, to sort by
    assert set(customers.column("plan")) == {"team", "developer", "credits"}
    text = " ".join(page.text)
    assert not re.search(r"\d\.\d{5,}", text)  # no 27.01000000: every figure at its scale


def test_the_report_states_its_scope_at_the_top(tmp_path: Path) -> None:
    events, report = write_report(tmp_path, 300)
    page = read_page(report)
    text = " ".join(page.text)
    scope = text[text.index("Scope") : text.index("Revenue per pricebook")]
    assert f"{EXAMPLE}: ai-gateway, version 2026-11-01" in scope and f"{CANDIDATE}: ai-gateway" in scope
    stamps = sorted(json.loads(line)["timestamp"] for line in events.read_text(encoding="utf-8").splitlines())
    first, last = (stamp.replace("+00:00", "") for stamp in (stamps[0], stamps[-1]))
    assert re.search(rf"{re.escape(first)}\S* to {re.escape(last)}", scope)
    assert "events 300 " in scope
    distinct = {json.loads(line)["customer"] for line in events.read_text(encoding="utf-8").splitlines()}
    assert f"customers {len(distinct)} " in scope


def test_the_per_change_impacts_are_those_rating_diff_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, report = write_report(tmp_path)
    capsys.readouterr()
    assert main(["diff", str(EXAMPLE), str(CANDIDATE), "--events", str(events), "-o", "json"]) == 0
    expected = json.loads(capsys.readouterr().out)["impacts"]
    impacts = read_page(report).table("What each change does to revenue: ai-gateway-2027")
    assert impacts.headers == ["change", "where", "asset", "impact"]
    assert len(impacts.rows) == len(expected) >= 3
    for row, wanted in zip(impacts.rows, expected, strict=True):
        assert [text for text, _ in row[:3]] == [wanted["change"], wanted["where"], wanted["asset"]]
        assert Decimal(str(row[3][1]["data-v"])) == Decimal(wanted["impact"])
    total = impacts.rows[-1]
    assert total[0][0] == "all" and total[3][0] == "+40.11" and "up" in str(total[3][1]["class"])


def _result() -> SimulationResult:
    """Yen and a custom asset: a customer paying more, one paying less, one the same (to the rounded figure)."""
    before, after = Scenario("now", "JPY"), Scenario("next", "JPY")
    for scenario, amounts in ((before, ("1200.4", "900", "5.0001")), (after, ("1500.6", "600", "5.0004"))):
        for customer, amount in zip(("more", "less", "same"), amounts, strict=True):
            scenario.add_charge(customer, "basic", "calls", "2026-11", "JPY", Decimal(amount))
        scenario.add_charge("tokens", "basic", "calls", "2026-11", "TOKENS", Decimal("0.123456789"))
        scenario.add_closing("same", "JPY", Decimal("-0.0002"))
    after.add_closing("more", "JPY", Decimal(1000))
    return SimulationResult(before, [after])


def test_amounts_at_the_scale_of_their_asset_and_changes_coloured_by_direction(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_report(_result(), scales={"TOKENS": 3}), encoding="utf-8")
    page = read_page(path)
    rows = {row[0][0]: row for row in page.table("Per customer").rows}
    assert [text for text, _ in rows["more"][3:7]] == ["1,200", "2,501", "+1,300", "+108.31 %"]
    assert [text for text, _ in rows["less"][3:7]] == ["900", "600", "-300", "-33.33 %"]
    assert [text for text, _ in rows["same"][3:6]] == ["5", "5", "0"]  # never -0
    assert [text for text, _ in rows["tokens"][3:5]] == ["0.123", "0.123"]
    assert rows["more"][5][1]["class"] == "n up" and rows["less"][5][1]["class"] == "n down"
    assert rows["same"][5][1]["class"] == "n"  # a change below the yen's scale is no change to see
    assert rows["more"][3][1]["title"] == "exactly 1200.4"
    assert f".up {{ color: {UP}; }}" in STYLE and f".down {{ color: {DOWN}; }}" in STYLE
    assert UP == "#0b6b3a" and DOWN == "#a1260d"  # revenue up green, down red
    plans = page.table("Revenue by plan in JPY")
    next_basic = next(row for row in plans.rows if row[1][0] == "next")
    assert [text for text, _ in next_basic[2:]] == ["2,106", "1,000", "3,106"]  # the plan's fees count
    by_percent = page.table("Top movers by percent: next")
    assert [row[0][0] for row in by_percent.rows] == ["more", "less", "same"]


def test_customer_ids_matplotlib_would_read_as_mathtext_are_drawn_as_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = write_demo_events(tmp_path / "demo.jsonl", 60).read_text(encoding="utf-8").splitlines()
    odd = ["$$", "$\\undefined{x}$", "$x^$"]
    events = tmp_path / "odd.jsonl"
    records = [json.loads(line) | {"customer": odd[number % len(odd)]} for number, line in enumerate(lines)]
    events.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    report = tmp_path / "report.html"
    code = main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", str(CANDIDATE), "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    page = read_page(report)
    assert len(page.images) >= 3 and all(customer in " ".join(page.text) for customer in odd)


def test_the_scope_of_parquet_history_and_of_a_ledger_baseline(
    demo_history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = demo_history
    assert main(["to-parquet", str(events), "events.parquet"]) == 0
    common = ["-p", str(EXAMPLE), "--vs", str(CANDIDATE), "--report"]
    assert main(["simulate", "events.parquet", *common, "parquet.html"]) == 0
    page = read_page(Path("parquet.html"))
    text = " ".join(page.text)
    assert "events 300 " in text and "customers 5 " in text and "not counted" not in text
    assert page.table("What each change does to revenue: ai-gateway-2027").rows[-1][0][0] == "all"
    ledger = ["simulate", "--db", "history.db", "--from", "2026-11-01", "--to", "2026-12-01", "--baseline", "ledger"]
    assert main([*ledger, "--vs", str(EXAMPLE), "--vs", str(CANDIDATE), "--report", "ledger.html"]) == 0
    page = read_page(Path("ledger.html"))
    text = " ".join(page.text)
    assert "baseline ledger what the ledger of history.db billed from 2026-11-01" in text
    assert "What each change does" not in text  # the ledger is no pricebook to take changes from
    assert page.table("Per customer").headers[3:5] == ["ledger", "ai-gateway"]
    capsys.readouterr()
