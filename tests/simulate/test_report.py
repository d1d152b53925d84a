"""The HTML report: one self-contained, well-formed page whose tables carry the exact figures."""

from __future__ import annotations

import base64
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rating.cli import main
from rating.cli.demo import write_demo_events
from rating.money import format_decimal
from tests.helpers import EXAMPLE, ROOT

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Page(HTMLParser):
    """Checks that every tag closes in order, and collects images, links and text."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.images: list[str] = []
        self.outside: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if values.get("href") or (values.get("src") and not str(values.get("src")).startswith("data:")):
            self.outside.append(str(values.get("href") or values.get("src")))
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_report_is_one_well_formed_page_with_charts_and_exact_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    events = write_demo_events(tmp_path / "demo-events.jsonl", 500)
    candidate = ROOT / "pricebooks" / "candidates" / "ai-gateway-2027.yaml"
    common = [str(events), "-p", str(EXAMPLE), "--vs", str(candidate)]
    assert main(["simulate", *common, "--report", "report.html"]) == 0
    capsys.readouterr()
    assert main(["simulate", *common, "-o", "csv"]) == 0
    table = capsys.readouterr().out.splitlines()
    page = Page()
    page.feed((tmp_path / "report.html").read_text(encoding="utf-8"))
    page.close()
    assert page.open == [] and page.outside == []
    assert len(page.images) == 3  # change distribution, revenue by plan, top movers
    for image in page.images:
        assert base64.b64decode(image.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(page.text)
    for line in table[1:]:  # every customer's exact totals, as the CSV gives them
        customer, asset, before, after = line.split(",")[:4]
        assert customer in text and format_decimal(Decimal(before)) in text and format_decimal(Decimal(after)) in text
    assert "Top movers: ai-gateway-2027" in text and "USD" in text


def test_customer_ids_matplotlib_would_read_as_mathtext_are_drawn_as_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    lines = write_demo_events(tmp_path / "demo.jsonl", 60).read_text(encoding="utf-8").splitlines()
    odd = ["$$", "$\\undefined{x}$", "$x^$"]
    events = tmp_path / "odd.jsonl"
    records = [json.loads(line) | {"customer": odd[number % len(odd)]} for number, line in enumerate(lines)]
    events.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    candidate = ROOT / "pricebooks" / "candidates" / "ai-gateway-2027.yaml"
    report = tmp_path / "report.html"
    code = main(["simulate", str(events), "-p", str(EXAMPLE), "--vs", str(candidate), "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    page = Page()
    page.feed(report.read_text(encoding="utf-8"))
    page.close()
    assert len(page.images) == 3 and all(customer in " ".join(page.text) for customer in odd)
