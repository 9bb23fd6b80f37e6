"""A user's library in Chromium (Playwright, Debian's browser, as tests/test_browser.py): kept by
default across a server restart, two named collections searched one and both at once, a search
narrowed to one file (k of its passages when it has k), clear then undo, a sheet's rows under
their column headers on a card, the evidence view scrolled to its passage, and an upload whose
progress is qsearch's own, with the old "empty" message gone when it ends.

The app here is its own, on a fixed port (a browser keeps its token per address, so the
restarted server must answer on the same one), keeping collections in a temporary data folder.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_browser import LAPTOP, browser, open_page, results_text, search  # noqa: F401

import app as qsearch_app
from qsearch import Settings

FIRST_AID = qsearch_app.SAMPLES / "first-aid-basics.txt"
# Records every Gradio progress text (its timer and estimate) shown on the upload's outputs and the
# results while an upload runs, however briefly (Gradio's status tracker keeps hidden ones in the
# page: only those one sees count).
WATCH_GRADIO_PROGRESS = """() => {
  window.qsGradioProgress = [];
  new MutationObserver(() => {
    const outputs = '#qs-report, #qs-files, #qs-remove, #qs-upload, #qs-results';
    for (const e of document.querySelectorAll('.progress-text, .eta-bar')) {
      if (!e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
      const where = e.closest(outputs);
      if (!where) continue;  // another event's (a search's follow-up), not the upload's
      window.qsGradioProgress.push(where.id + ': ' + (e.textContent.trim() || e.className));
    }
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""
PYTHON = qsearch_app.SAMPLES / "python-tips.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(minilm_dir, tmp_path_factory):
    """(start, stop): the app on one port, keeping collections in one data folder; `start`
    returns its address, `stop` closes it (the collections stay on disk)."""
    data, port, running = tmp_path_factory.mktemp("kept"), _free_port(), []
    settings = Settings(
        embed_model=str(minilm_dir),
        rerank_model="none/none",
        device="cpu",
        dtype="float32",
        data_dir=str(data),
        max_files=20,
        max_chunks=2000,
    )

    def start() -> str:
        demo = qsearch_app.create_app(settings)
        _, url, _ = qsearch_app.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
        running.append(demo)
        return url

    def stop() -> None:
        running.pop().close()

    yield start, stop
    while running:
        stop()


def food_sheet(folder: Path) -> Path:
    """A sheet as statistics offices publish them: a title row, then a header whose columns are
    years, then 60 rows; the milk row is far down, so its evidence needs scrolling."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Imports"
    sheet.append(["Table 4. Food imports by category (thousand tonnes)"])
    sheet.append([])
    sheet.append(["Category", 2021, 2022, 2023, "Change"])
    for n in range(55):
        sheet.append([f"Grain product {n}", 100 + n, 110 + n, 120 + n, 10])
    sheet.append(["Milk products and Ice cream", 5418, 1261, 1227, -34])
    for cell in sheet[sheet.max_row][1:]:
        cell.number_format = "#,##0"
    for n in range(4):
        sheet.append([f"Fish product {n}", 50 + n, 51 + n, 52 + n, 1])
    path = folder / "food-imports.xlsx"
    book.save(path)
    return path


def upload(page, files: list[Path]) -> None:
    """Drop files; while they are indexed, the report shows qsearch's progress (never Gradio's
    timer with its estimate from other uploads); then the report."""
    page.set_input_files("#qs-upload input[type=file]", [str(f) for f in files])
    page.wait_for_selector("#qs-report .qs-report", timeout=120_000)


def choose(page, field: str, option: str, typed: str = "") -> None:
    """Pick `option` in the dropdown `#field` (typing `typed` into it first, to find it)."""
    box = page.locator(f"#{field} input")
    box.click()
    if typed:
        box.fill(typed)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def search_any(page, query: str, contains: str) -> None:
    """Search, and wait until some card (not only the first) comes from `contains`."""
    page.evaluate("window.qsBefore = document.querySelector('#qs-results').innerHTML")
    page.fill("#qs-query textarea", query)
    page.press("#qs-query textarea", "Enter")
    page.wait_for_function(
        "document.querySelector('#qs-results').innerHTML !== window.qsBefore && "
        "[...document.querySelectorAll('#qs-results .qs-card .qs-source')]"
        f".some(e => e.textContent.includes({contains!r}))",
        timeout=90_000,
    )


def files_listed(page) -> str:
    return page.inner_text("#qs-files")


def card_sources(page) -> list[str]:
    """Every card's source, the weak ones folded under "weak matches hidden" included."""
    texts = page.locator("#qs-results .qs-card .qs-source").all_text_contents()
    return [" ".join(t.split()) for t in texts]


def wait_text(page, selector: str, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"(document.querySelector({selector!r}) || {{innerText: ''}}).innerText.includes({text!r})",
        timeout=timeout,
    )


def test_a_library_kept_across_a_restart_searched_narrowed_cleared_and_undone(
    browser,  # noqa: F811
    server,
    tmp_path,
):
    start, stop = server
    url = start()
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = open_page(context, url)
        assert "survive a restart" in page.inner_text("#qs-kept"), page.inner_text("#qs-kept")

        # an empty collection says so; the message goes when an upload ends
        page.fill("#qs-query textarea", "milk imports")
        page.press("#qs-query textarea", "Enter")
        wait_text(page, "#qs-results", "collection is empty")
        sheet = food_sheet(tmp_path)
        page.evaluate(WATCH_GRADIO_PROGRESS)
        page.set_input_files("#qs-upload input[type=file]", [str(FIRST_AID), str(sheet)])
        page.wait_for_selector("#qs-report .qs-progress", timeout=60_000)
        page.wait_for_selector("#qs-report .qs-report", timeout=120_000)
        seen = page.evaluate("window.qsGradioProgress")
        assert seen == [], f"only qsearch's own progress shows, never Gradio's: {seen}"
        wait_text(page, "#qs-results", "ready")
        assert "collection is empty" not in results_text(page)

        # a sheet's row on its card: a small table under the sheet's column headers
        search(page, "milk products and ice cream imports", "food-imports.xlsx")
        card = page.locator("#qs-results .qs-card").first
        headers = card.locator("table.qs-sheet th").all_inner_texts()
        assert headers[:5] == ["Category", "2021", "2022", "2023", "Change"], headers
        row = card.locator("table.qs-sheet tr", has_text="Milk products").first
        assert row.locator("td").all_inner_texts()[1:] == ["5,418", "1,261", "1,227", "-34"]

        # the evidence view opens on the passage, scrolled into view within its context
        page.locator("#qs-open input").click()
        page.get_by_role("option").first.click()
        page.wait_for_selector("#qs-evidence .qs-passage", timeout=60_000)
        page.wait_for_function(
            "document.querySelector('#qs-evidence .qs-context').scrollTop > 0", timeout=10_000
        )
        box = page.locator("#qs-evidence .qs-passage mark").first.bounding_box()
        context_box = page.locator("#qs-evidence .qs-context").bounding_box()
        top, bottom = context_box["y"], context_box["y"] + context_box["height"]
        assert top <= box["y"] and box["y"] + box["height"] <= bottom, (box, context_box)
        assert 0 <= box["y"] <= LAPTOP["height"], "and the page scrolled to it"

        # the server restarts: the same browser finds its collection
        stop()
        url = start()
        page.reload()
        page.wait_for_selector("#qs-query textarea", timeout=60_000)
        wait_text(page, "#qs-files", "food-imports.xlsx")
        search(page, "how do I treat a burn?", "first-aid-basics.txt")

        # a second named collection, searched alone, then together with the first
        page.click("#qs-new")
        page.locator("#qs-name textarea, #qs-name input").first.fill("Programming")
        page.click("#qs-name-ok")
        page.wait_for_function(
            "document.querySelector('#qs-collection input').value === 'Programming'",
            timeout=30_000,
        )
        assert "No documents yet" in files_listed(page)
        upload(page, [PYTHON])
        search(page, "list comprehension in python", "python-tips.md")
        assert all(s.startswith("python-tips.md") for s in card_sources(page)), "only its own"
        page.get_by_text("Search within:").click()
        choose(page, "qs-scope", "My documents")
        wait_text(page, "#qs-within", "2 collections")
        search_any(page, "treat a burn, and python list comprehension", "first-aid-basics.txt")
        sources = {s.split(",")[0] for s in card_sources(page)}
        assert {"first-aid-basics.txt", "python-tips.md"} <= sources, sources
        badges = set(page.locator("#qs-results .qs-collection").all_text_contents())
        assert badges == {"My documents", "Programming"}, "each card says its collection"

        # narrowed to one file: only its passages, k of them when it holds k
        chunks = 3  # first-aid-basics.txt's passages (its line in the file list says so)
        choose(page, "qs-within-files", "first-aid-basics.txt · My documents", typed="first")
        page.get_by_text("Search options").click()
        page.locator("#qs-top-k input[type=number]").fill(str(chunks))
        page.locator("#qs-top-k input[type=number]").press("Enter")
        search(page, "python list comprehension", "first-aid-basics.txt")
        assert card_sources(page) == ["first-aid-basics.txt"] * chunks

        # clear asks first, then can be undone
        page.click("#qs-clear")
        wait_text(page, "#qs-confirm-text", "Remove 1 file of “Programming”?")
        page.click("#qs-confirm-yes")
        wait_text(page, "#qs-files", "No documents yet")
        wait_text(page, "#qs-undo-text", "Removed 1 file of “Programming”")
        page.click("#qs-undo")
        wait_text(page, "#qs-files", "python-tips.md")
        wait_text(page, "#qs-report", "Restored 1 file of “Programming”")
        page.get_by_text("Search within:").click()  # closed by the search: open again
        search(page, "list comprehension in python", "python-tips.md")
    finally:
        context.close()
