"""The app in a real browser: Playwright driving Debian's Chromium (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import app as qsearch_app

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = os.environ.get("QSEARCH_SCREENSHOT")  # e.g. assets/screenshot.png to refresh the README's


@pytest.fixture(scope="module")
def page(app_server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` (make test tries to)")
    _, url = app_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.wait_for_selector("#qs-query textarea", timeout=30_000)
        yield page
        browser.close()


def test_upload_search_and_see_result_cards(page, tmp_path):
    hostile = tmp_path / "notes.html"
    hostile.write_text("<p>The reactor manual: &lt;img src=x onerror=alert(1)&gt; "
                       "&lt;script&gt;alert(2)&lt;/script&gt; keep the coolant pump running.</p>")
    files = [str(p) for p in sorted(qsearch_app.SAMPLES.iterdir())] + [str(hostile)]
    page.set_input_files("#qs-upload input[type=file]", files)
    page.wait_for_selector("#qs-report .qs-report", timeout=60_000)
    assert "5 indexed" in page.inner_text("#qs-report")
    page.fill("#qs-query textarea", "how do I treat a burn?")
    page.press("#qs-query textarea", "Enter")
    page.wait_for_selector("#qs-results .qs-card", timeout=60_000)
    assert page.locator("#qs-results .qs-card").count() >= 3
    assert page.locator("#qs-results .qs-bar").count() >= 3
    assert "first-aid-basics.txt" in page.locator("#qs-results .qs-source").first.inner_text()
    if SCREENSHOT:
        Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

    page.fill("#qs-query textarea", "coolant pump reactor manual")
    page.press("#qs-query textarea", "Enter")
    page.wait_for_function("document.querySelector('#qs-results').innerText.includes('coolant')", timeout=60_000)
    text = page.inner_text("#qs-results")
    assert "<script>alert(2)</script>" in text and "<img src=x onerror=alert(1)>" in text
    assert page.locator("#qs-results img").count() == 0 and page.dialogs == []


def test_file_names_show_as_text_in_the_file_list(page, tmp_path):
    odd = tmp_path / "fish&amp;chips 'menu' (v2).txt"
    odd.write_text("Cod, haddock and plaice, fried in batter.")
    page.set_input_files("#qs-upload input[type=file]", [str(odd)])
    page.wait_for_function("document.querySelector('#qs-files').innerText.includes('chips')", timeout=60_000)
    listed = page.inner_text("#qs-files")
    assert "&amp;chips" in listed, listed  # shown literally, not decoded as an HTML entity
    assert page.locator("#qs-files b, #qs-files img, #qs-files script").count() == 0
