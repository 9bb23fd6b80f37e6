"""The app in a real browser: Playwright driving Debian's Chromium (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import app as qsearch_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(
    os.environ.get("QSEARCH_SCREENSHOT") or Path(__file__).parents[1] / "assets" / "screenshot.png"
)


@pytest.fixture(scope="module")
def page(app_server):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` (make test tries to)")
    _, url = app_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.wait_for_selector("#qs-query textarea", timeout=30_000)
        yield page
        browser.close()


def search(page, query: str, contains: str) -> None:
    """Search, and wait until the first result card shows `contains` (the old results may show it too)."""
    page.evaluate("window.qsBefore = document.querySelector('#qs-results').innerHTML")
    page.fill("#qs-query textarea", query)
    page.press("#qs-query textarea", "Enter")
    page.wait_for_function(
        f"document.querySelector('#qs-results').innerHTML !== window.qsBefore && "
        f"(document.querySelector('#qs-results .qs-card') || {{innerText: ''}})"
        f".innerText.includes({contains!r})",
        timeout=60_000,
    )


def bar_width(card, key: str) -> float:
    return card.locator(f".qs-{key} .qs-bar").bounding_box()["width"]


def test_upload_search_and_see_result_cards(page, tmp_path):
    hostile = tmp_path / "notes.html"
    hostile.write_text(
        "<p>The reactor manual: &lt;img src=x onerror=alert(1)&gt; "
        "&lt;script&gt;alert(2)&lt;/script&gt; keep the coolant pump running.</p>"
    )
    files = [str(p) for p in sorted(qsearch_app.SAMPLES.iterdir())] + [str(hostile)]
    page.set_input_files("#qs-upload input[type=file]", files)
    page.wait_for_selector("#qs-report .qs-report", timeout=60_000)
    assert f"{len(files)} indexed" in page.inner_text("#qs-report")
    search(page, "how do I treat a burn?", "first-aid-basics.txt")
    cards = page.locator("#qs-results .qs-card")
    assert (
        cards.count() >= 3
        and "first-aid-basics.txt" in cards.first.locator(".qs-source").inner_text()
    )
    first, last = cards.first, cards.nth(cards.count() - 1)
    cosines = [float(c.locator(".qs-meaning").get_attribute("data-value")) for c in (first, last)]
    assert cosines[0] - cosines[1] > 0.1, cosines
    assert bar_width(first, "meaning") - bar_width(last, "meaning") > 10, (
        "a higher cosine draws a longer bar"
    )
    assert page.locator("#qs-legend").inner_text().count("0 to 1") >= 3, (
        "the legend states every bar's scale"
    )

    search(page, "coolant pump reactor manual", "coolant")
    text = page.inner_text("#qs-results")
    assert "<script>alert(2)</script>" in text and "<img src=x onerror=alert(1)>" in text
    assert page.locator("#qs-results img").count() == 0 and page.dialogs == []


def test_rerank_shows_how_results_moved(page):
    page.locator("#qs-rerank input").check()
    try:
        search(page, "grind size for espresso", "reranker")
        moves = page.locator("#qs-results .qs-move")
        assert moves.count() >= 3 and all(
            ("was #" in t) or t == "same place" for t in moves.all_inner_texts()
        )
        assert page.locator("#qs-results .qs-reranker .qs-bar").count() >= 3
    finally:
        page.locator("#qs-rerank input").uncheck()


def test_open_a_pdf_result_on_its_page_with_the_passage_highlighted(page, tmp_path):
    search(page, "what should I wear against volcanic ash?", "volcanoes-field-guide.pdf")
    where = page.locator("#qs-results .qs-source").first.inner_text()
    assert where == "volcanoes-field-guide.pdf, pages 1\u20132", (
        where
    )  # one passage over both pages
    page.locator("#qs-open input").click()
    page.get_by_role("option", name=f"#1 {where}").click()
    page.wait_for_selector("#qs-evidence figure.qs-page[data-page='2']", timeout=60_000)
    figures = page.locator("#qs-evidence figure.qs-page")
    assert figures.count() == 2, "a passage over two pages shows both"
    for n in range(2):
        assert int(figures.nth(n).get_attribute("data-highlights")) >= 3, (
            "the passage's lines are highlighted"
        )
        image = figures.nth(n).locator("img.qs-page-image")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert image.bounding_box()["height"] > 300
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_file_names_show_as_text_in_the_file_list(page, tmp_path):
    odd = tmp_path / "fish&amp;chips 'menu' (v2).txt"
    odd.write_text("Cod, haddock and plaice, fried in batter.")
    page.set_input_files("#qs-upload input[type=file]", [str(odd)])
    page.wait_for_function(
        "document.querySelector('#qs-files').innerText.includes('chips')", timeout=60_000
    )
    listed = page.inner_text("#qs-files")
    assert "&amp;chips" in listed, listed  # shown literally, not decoded as an HTML entity
    assert page.locator("#qs-files b, #qs-files img, #qs-files script").count() == 0
