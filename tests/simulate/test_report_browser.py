"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright (extra ``[browser]``).

No browser can be downloaded here, so Playwright launches the system's ``chromium`` through
``executable_path``. Without it the test is skipped, unless ``RATING_TEST_REQUIRE_CHROMIUM=1``
(set by ``.ci/run`` after installing it): then a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.simulate.test_report import write_report

REQUIRED = os.environ.get("RATING_TEST_REQUIRE_CHROMIUM") == "1"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium from the system, or a skip (a failure when ``RATING_TEST_REQUIRE_CHROMIUM=1``)."""
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRED:
            pytest.fail("RATING_TEST_REQUIRE_CHROMIUM=1 but Playwright is not installed: pip install -e '.[browser]'")
        pytest.skip("Playwright is not installed (extra [browser])")
    if executable is None:
        if REQUIRED:
            pytest.fail("RATING_TEST_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _column(page: Any, index: int, visible_only: bool = False) -> list[str]:
    selector = "#customers tbody tr" + (":not([hidden])" if visible_only else "")
    return [text.strip() for text in page.locator(f"{selector} td:nth-child({index + 1})").all_inner_texts()]


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", "").removesuffix(" %"))


def test_the_report_renders_sorts_by_a_click_and_filters_in_chromium(browser: Any, tmp_path: Path) -> None:
    _, report = write_report(tmp_path, 800)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.resolve().as_uri())

    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1280 and height > 1500 and len(data) > 50_000  # the whole page, charts and all

    headers = [text.strip() for text in page.locator("#customers thead th").all_inner_texts()]
    change = headers.index("change")
    customers = _column(page, 0)
    unsorted = [_number(text) for text in _column(page, change)]
    assert len(customers) >= 4 and unsorted != sorted(unsorted)  # by customer at first: the click must reorder
    page.get_by_role("button", name="change", exact=True).click()
    ascending = [_number(text) for text in _column(page, change)]
    assert ascending == sorted(ascending) and ascending != ascending[::-1]
    assert page.locator("#customers thead th").nth(change).get_attribute("aria-sort") == "ascending"
    page.get_by_role("button", name="change", exact=True).click()
    descending = [_number(text) for text in _column(page, change)]
    assert descending == sorted(descending, reverse=True)
    assert sorted(_column(page, 0)) == sorted(customers)  # the same rows, reordered

    page.get_by_label("Filter rows").fill(customers[0])
    shown = _column(page, 0, visible_only=True)
    assert shown == [customers[0]]
    assert page.locator("#customers tbody tr[hidden]").count() == len(customers) - 1
    assert page.locator("#shown").inner_text() == f"1 of {len(customers)} rows shown"
    page.get_by_label("Filter rows").fill("")
    assert len(_column(page, 0, visible_only=True)) == len(customers)

    assert errors == []
    assert requests == [report.resolve().as_uri()]  # nothing fetched from anywhere else
