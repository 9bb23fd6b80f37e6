"""The app in a real browser: Playwright driving Debian's Chromium (never a downloaded browser).

Each test opens its own browser context (its own storage, so its own collection), so no test
depends on another's order.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import app as qsearch_app
from qsearch.documents import pool
from qsearch.types import Limits, ReadOptions

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(
    os.environ.get("QSEARCH_SCREENSHOT") or Path(__file__).parents[1] / "assets" / "screenshot.png"
)
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def browser(app_server):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` (make test tries to)")
    # Start the app's readers now, so their start-up is not counted in the page's timings.
    pool.parse("warm-up.txt", b"warm up", Limits(), ReadOptions(ocr=False))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"],
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile: its own storage, so its own collection."""
    context = browser.new_context(viewport=LAPTOP)
    yield context
    context.close()


@pytest.fixture
def url(app_server):
    return app_server[1]


def open_page(context, url: str):
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#qs-query textarea", timeout=60_000)
    return page


def upload(page, files: list[Path]) -> None:
    page.set_input_files("#qs-upload input[type=file]", [str(f) for f in files])
    page.wait_for_selector("#qs-report .qs-report", timeout=120_000)


def search(page, query: str, contains: str) -> None:
    """Search, and wait until the first card shows `contains` (old results may show it too)."""
    page.evaluate("window.qsBefore = document.querySelector('#qs-results').innerHTML")
    page.fill("#qs-query textarea", query)
    page.press("#qs-query textarea", "Enter")
    page.wait_for_function(
        f"document.querySelector('#qs-results').innerHTML !== window.qsBefore && "
        f"(document.querySelector('#qs-results .qs-card') || {{textContent: ''}})"
        f".textContent.includes({contains!r})",
        timeout=90_000,
    )


def results_text(page) -> str:
    return page.evaluate("document.querySelector('#qs-results').textContent")


def bar_width(card, key: str) -> float:
    return card.locator(f".qs-{key} .qs-bar").bounding_box()["width"]


def test_results_are_in_view_escaped_and_explained(context, url, tmp_path):
    page = open_page(context, url)
    hostile = tmp_path / "notes.html"
    hostile.write_text(
        "<p>The reactor manual: &lt;img src=x onerror=alert(1)&gt; "
        "&lt;script&gt;alert(2)&lt;/script&gt; keep the coolant pump running.</p>"
    )
    files = sorted(qsearch_app.SAMPLES.iterdir()) + [hostile]
    upload(page, files)
    assert f"{len(files)} indexed" in page.inner_text("#qs-report")
    search(page, "how do I treat a burn?", "first-aid-basics.txt")
    cards = page.locator("#qs-results .qs-card")
    assert cards.count() >= 3
    assert "first-aid-basics.txt" in cards.first.locator(".qs-source").inner_text()
    box = cards.first.bounding_box()
    assert box["y"] >= 0 and box["y"] + 80 <= LAPTOP["height"], (
        f"the first card is in view at 1366x768 without scrolling: {box}"
    )
    first, last = cards.first, cards.nth(cards.count() - 1)
    cosines = [float(c.locator(".qs-meaning").get_attribute("data-value")) for c in (first, last)]
    assert cosines[0] - cosines[1] > 0.1, cosines
    assert bar_width(first, "meaning") - bar_width(last, "meaning") > 10, (
        "a higher cosine draws a longer bar"
    )
    assert "<mark>burn" in first.inner_html().lower(), "the snippet marks the query's terms"
    page.get_by_text("What do the bars mean?").click()
    assert page.locator("#qs-legend").inner_text().count("0 to 1") >= 3, "each bar's scale"

    search(page, "coolant pump reactor manual", "coolant")
    text = results_text(page)
    assert "<script>alert(2)</script>" in text and "<img src=x onerror=alert(1)>" in text
    assert page.locator("#qs-results img").count() == 0 and page.dialogs == []


def test_a_collection_outlives_a_reload_and_a_closed_tab_but_not_another_browser(
    browser, context, url
):
    page = open_page(context, url)
    upload(page, [qsearch_app.SAMPLES / "first-aid-basics.txt"])
    search(page, "how do I treat a burn?", "first-aid-basics.txt")
    page.reload()
    page.wait_for_selector("#qs-query textarea", timeout=60_000)
    page.wait_for_function(
        "document.querySelector('#qs-files').innerText.includes('first-aid')", timeout=30_000
    )
    search(page, "how do I treat a burn?", "first-aid-basics.txt")
    page.close()
    again = open_page(context, url)  # the tab closed by mistake, opened again
    search(again, "how do I treat a burn?", "first-aid-basics.txt")

    stranger = browser.new_context(viewport=LAPTOP)
    try:
        other = open_page(stranger, url)
        other.fill("#qs-query textarea", "how do I treat a burn?")
        other.press("#qs-query textarea", "Enter")
        other.wait_for_function(
            "document.querySelector('#qs-results').innerText.includes('collection is empty')",
            timeout=60_000,
        )
    finally:
        stranger.close()


def test_rerank_shows_how_results_moved(context, url):
    page = open_page(context, url)
    upload(page, sorted(qsearch_app.SAMPLES.iterdir()))
    page.get_by_text("Search options").click()
    page.locator("#qs-rerank input").check()
    search(page, "grind size for espresso", "rerank")
    moves = page.locator("#qs-results .qs-move")  # weak ones too, folded: their text content
    assert moves.count() >= 3 and all(
        ("was #" in t) or t == "same place" for t in moves.all_text_contents()
    )
    assert page.locator("#qs-results .qs-rerank .qs-bar").count() >= 3


def test_open_a_pdf_result_on_its_page_and_take_the_screenshot(context, url):
    page = open_page(context, url)
    upload(page, sorted(qsearch_app.SAMPLES.iterdir()))
    search(page, "what should I wear against volcanic ash?", "volcanoes-field-guide.pdf")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    # the search's other outputs settled: Gradio dims a pending output (.pending, .generating)
    page.wait_for_function("!document.querySelector('.pending, .generating')", timeout=30_000)
    page.screenshot(path=str(SCREENSHOT))  # what a user sees at 1366x768 right after a search
    cards = page.locator("#qs-results .qs-card")
    looks = [  # (file, marked weak, opacity, the overall bar's colour) of each card, as drawn
        page.evaluate(
            "c => [c.querySelector('.qs-source').textContent, c.dataset.weak, "
            "getComputedStyle(c).opacity, getComputedStyle(c.querySelector('.qs-overall .qs-bar'))"
            ".backgroundColor]",
            cards.nth(n).element_handle(),
        )
        for n in range(cards.count())
    ]
    assert looks[0][1:] == ["false", "1", "rgb(124, 58, 237)"], looks[0]  # the guide: strong
    first_aid = [look for look in looks if look[0].startswith("first-aid-basics.txt")]
    assert first_aid and all(
        look[1:] == ["true", "0.55", "rgb(156, 163, 175)"] for look in first_aid
    ), looks  # unrelated first-aid passages: faded, grey bars, "weak match"
    assert "No strong match" not in results_text(page)
    page.get_by_text("What do the bars mean?").click()
    assert "a weak match" in page.locator("#qs-legend").inner_text()
    where = page.locator("#qs-results .qs-source").first.inner_text()
    assert where == "volcanoes-field-guide.pdf, pages 1\u20132", where  # one passage, two pages
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


def test_file_names_show_as_text_in_the_file_list(context, url, tmp_path):
    page = open_page(context, url)
    odd = tmp_path / "fish&amp;chips 'menu' (v2).txt"
    odd.write_text("Cod, haddock and plaice, fried in batter.")
    page.set_input_files("#qs-upload input[type=file]", [str(odd)])
    page.wait_for_function(
        "document.querySelector('#qs-files').innerText.includes('chips')", timeout=60_000
    )
    listed = page.inner_text("#qs-files")
    assert "&amp;chips" in listed, listed  # shown literally, not decoded as an HTML entity
    assert page.locator("#qs-files b, #qs-files img, #qs-files script").count() == 0


def test_first_moments_say_what_happens_and_stop_works_on_the_first_upload(context, url, tmp_path):
    """A new visitor's first upload: searching meanwhile says the documents are still being
    indexed, the progress shows once, beside the report, and Stop works (the page had its token
    before the upload began)."""
    page = open_page(context, url)
    assert "Upload documents on the left" in results_text(page), "the empty state says what to do"
    big = tmp_path / "logbook.txt"
    big.write_text("\n\n".join(f"Day {i}: the keeper trimmed the lamp wicks. " * 12
                                for i in range(1_500)))  # fmt: skip
    page.set_input_files("#qs-upload input[type=file]", [str(big)])
    page.wait_for_function(
        "document.querySelector('#qs-report').innerText.includes('embedding')", timeout=120_000
    )
    holders = page.evaluate(
        "[...document.querySelectorAll('.qs-progress, .progress-text, .progress-level')]"
        ".map(e => e.closest('#qs-report') ? 'qs-report' : (e.closest('[id]') || {}).id)"
    )
    assert holders == ["qs-report"], f"progress shows in one place: {holders}"
    assert page.locator(".progress-text, .eta-bar").count() == 0, (
        "qsearch's own progress and ETA: never Gradio's estimate, taken from other uploads"
    )
    page.fill("#qs-query textarea", "lamp wicks")
    page.press("#qs-query textarea", "Enter")
    page.wait_for_function(
        "document.querySelector('#qs-results').innerText.includes('still being indexed')",
        timeout=60_000,
    )
    page.get_by_role("button", name="Stop indexing").click()
    page.wait_for_function(
        "document.querySelector('#qs-report').innerText.includes('Stopped: nothing')",
        timeout=30_000,
    )
    assert "No documents yet" in page.inner_text("#qs-files")


FORMATS = Path(__file__).parent / "data" / "formats"
MIXED = ["testWORD.docx", "testEXCEL.xlsx", "testPPT.pptx", "example.odp", "testMSG.msg",
         "testEPUB.epub", "testODFwithOOo3.odt"]  # fmt: skip


def set_min_score(page, value: float) -> None:
    """Drag the Minimum relevance slider to `value` (its range input, as a drag sets it)."""
    page.locator("#qs-min-score input[type=range]").fill(str(value))
    page.wait_for_function(
        f"Number(document.querySelector('#qs-min-score input[type=number]').value) === {value}"
    )


def test_scores_a_user_can_trust_the_threshold_and_a_retrieval_test(context, url, tmp_path):
    """Over a mixed collection (the samples and real office files): an off-topic query says "No
    strong match" with its cards faded and folded; the minimum relevance folds cards or shows them;
    a result marked as the answer and a CSV of labelled queries make the retrieval test, whose
    panel shows each ranking's metrics side by side."""
    page = open_page(context, url)
    files = sorted(qsearch_app.SAMPLES.iterdir()) + [FORMATS / name for name in MIXED]
    upload(page, files)
    assert f"{len(files)} indexed" in page.inner_text("#qs-report")

    page.evaluate("window.qsBefore = document.querySelector('#qs-results').innerHTML")
    page.fill("#qs-query textarea", "quantum chromodynamics lattice gauge theory")
    page.press("#qs-query textarea", "Enter")
    page.wait_for_selector("#qs-results .qs-weak-fold", timeout=90_000)
    assert "No strong match" in results_text(page)
    fold = page.locator("#qs-results details.qs-weak-fold")
    hidden = int(fold.get_attribute("data-count"))
    assert hidden == page.locator("#qs-results .qs-card").count() >= 3
    assert f"{hidden} weak matches hidden" in fold.locator(":scope > summary").inner_text()
    assert not page.locator("#qs-results .qs-card").first.is_visible(), "folded, not shown"
    fold.locator(":scope > summary").click()
    card = page.locator("#qs-results .qs-card").first
    assert card.is_visible() and card.get_attribute("data-weak") == "true"
    look = page.evaluate(
        "c => [getComputedStyle(c).opacity, getComputedStyle(c.querySelector('.qs-overall "
        ".qs-bar')).backgroundColor]",
        card.element_handle(),
    )
    assert look == ["0.55", "rgb(156, 163, 175)"], look  # faded, grey bars

    page.get_by_text("Search options").click()
    search(page, "what should I wear against volcanic ash?", "volcanoes-field-guide.pdf")
    folded = int(page.locator("#qs-results .qs-weak-fold").get_attribute("data-count"))
    assert folded >= 1 and "No strong match" not in results_text(page)
    set_min_score(page, 0)
    search(page, "what should I wear against volcanic ash? ", "volcanoes-field-guide.pdf")
    page.wait_for_function(  # nothing is below 0: every card in view
        "!document.querySelector('#qs-results .qs-weak-fold')", timeout=60_000
    )
    assert page.locator("#qs-results .qs-card:visible").count() == 5
    set_min_score(page, 1)
    search(page, "what should I wear against volcanic ash?", "volcanoes-field-guide.pdf")
    page.wait_for_selector("#qs-results .qs-weak-fold[data-count='5']", timeout=60_000)
    assert "No strong match" in results_text(page)

    page.locator("#qs-mark input[type=checkbox]").first.check()  # one click: #1 answers it
    page.wait_for_selector("#qs-labels .qs-labels[data-count='1']", timeout=30_000)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "query,file\nhow do I treat a burn?,first-aid-basics.txt\n"
        "grind size for espresso,coffee-brewing.html\n"
        "which planet is the largest?,solar-system.md\n"
    )
    page.get_by_text("Test retrieval on your documents").click()
    page.set_input_files("#qs-labels-file input[type=file]", str(labels))
    page.wait_for_selector("#qs-labels .qs-labels[data-count='4']", timeout=30_000)
    page.locator("#qs-run-test").click()
    page.wait_for_selector("#qs-test .qs-test-table", timeout=180_000)
    rows = page.locator("#qs-test .qs-test-row")
    configs = [rows.nth(i).get_attribute("data-config") for i in range(rows.count())]
    assert configs == ["meaning", "keywords", "hybrid", "hybrid + rerank"], configs
    hybrid = page.locator("#qs-test .qs-test-row[data-config='hybrid']")
    for key in ("ndcg_at_10", "recall_at_k", "mrr_at_10"):
        value = float(hybrid.locator(f".qs-{key}").get_attribute("data-value"))
        assert 0.5 <= value <= 1.0, (key, value)
    assert "minimum relevance" in page.inner_text("#qs-test .qs-threshold")
    page.locator("#qs-test").scroll_into_view_if_needed()
    shots = Path(os.environ.get("QSEARCH_SHOTS") or tmp_path)  # to look at the panel
    page.screenshot(path=str(shots / "retrieval-test.png"), full_page=True)
