"""Every format on the page, in Chromium: one file of each dropped at once (real files from the
libraries' test corpora, tests/data/formats/), each found by a search with its place on the card
(slide, sheet rows, chapter, e-mail), the refused and damaged ones listed in the upload report
with their reasons, and a slide's passage opened in its slide. The fixtures and helpers are
tests/test_browser.py's; this file takes no screenshot."""

from __future__ import annotations

from pathlib import Path

from test_browser import browser, context, open_page, search, upload, url  # noqa: F401

from qsearch.documents.formats import describe, names

DATA = Path(__file__).parent / "data" / "formats"
REAL = [
    "testPPT.pptx",
    "testEXCEL.xlsx",
    "testEXCEL.xls",
    "testCSV.csv",
    "test-columnar.ods",
    "example.odp",
    "testFooter.odt",
    "testEPUB.epub",
    "testRTF.rtf",
    "testRFC822_multipart_attachments.eml",
    "testMSG.msg",
    "testXML.xml",
    "testWORD.docx",
    "kettle-shop-page.html",
]
REFUSED = {  # file -> (its bytes, what its line in the report says)
    "old.doc": (b"\xd0\xcf\x11\xe0", "save it as .docx"),
    "photos.zip": (b"PK\x05\x06" + bytes(18), "unpack it"),
    "broken.pptx": (b"half a presentation", "not a zip archive"),
    "setup.exe": (b"MZ", "unsupported file type '.exe'"),
}
EM_DASH = "\u2013"
# a query, and the start of the place its first card shows: "file, where" (the .xlsx and the
# .xls hold the same sheet: either may come first, and both are among the cards)
FOUND = [
    ("Watershed Avalanche Black Panther Mystery", f"testPPT.pptx, slides 1{EM_DASH}3"),
    ("Sample Excel Worksheet", f'testEXCEL.xlsx, sheet "Feuil1", rows 1{EM_DASH}22'),
    ("Sample Excel Worksheet", f'testEXCEL.xls, sheet "Feuil1", rows 1{EM_DASH}22'),
    ("Sample CSV File", f"testCSV.csv, rows 1{EM_DASH}22"),
    ("Reykjavik population", f"cities.tsv, rows 2{EM_DASH}4"),
    ("Description of the Row: This is row 5 of 10", 'test-columnar.ods, sheet "testing", rows'),
    ("This is the second page", f"example.odp, slides 1{EM_DASH}2"),
    ("Here is footer text", "testFooter.odt"),
    ("This is the text for chapter One", 'testEPUB.epub, chapter "Cover Page"'),
    ("Test d\u2019indexation Word", "testRTF.rtf"),
    ("This is test email for EML1", 'testRFC822_multipart_attachments.eml, e-mail "EML 1" from'),
    ("modular and extensible type detection", 'testMSG.msg, e-mail "MIME registry use cases"'),
    ("lemon drizzle cake oven", "recipe.json"),
    ("Framework d'indexation des documents XML", "testXML.xml"),
    ("This is the header for our document", "testWORD.docx"),
    ("how do I descale a kettle", "kettle-shop-page.html"),
]


def made_here(folder: Path) -> list[Path]:
    """The two formats no corpus above has a file of (.tsv, .json), and the refused files."""
    (folder / "cities.tsv").write_text(
        "City\tCountry\tPopulation\nReykjavik\tIceland\t139,875\nTromsø\tNorway\t77,544\n"
        "Nuuk\tGreenland\t19,872\n"
    )
    (folder / "recipe.json").write_text(
        '{"recipe": "lemon drizzle cake", "oven": "180 C", "minutes": 45}'
    )
    for name, (data, _) in REFUSED.items():
        (folder / name).write_bytes(data)
    return [folder / n for n in ("cities.tsv", "recipe.json", *REFUSED)]


def sources(page) -> list[str]:  # noqa: ANN001
    return page.locator("#qs-results .qs-card .qs-source").all_inner_texts()


def test_every_format_is_indexed_found_and_placed(context, url, tmp_path):  # noqa: F811
    page = open_page(context, url)
    assert names() in page.inner_text("#qs-upload"), "the upload box names the accepted types"
    assert describe() in page.inner_text("#qs-types")
    upload(page, [DATA / n for n in REAL] + made_here(tmp_path))
    report = page.inner_text("#qs-report")
    assert f"{len(REAL) + 2} indexed, 0 unchanged, {len(REFUSED)} failed" in report, report
    for name, (_, why) in REFUSED.items():
        line = next(x for x in report.splitlines() if name in x)
        assert line.startswith("failed") and why in line, line
    for query, place in FOUND:
        search(page, query, place.split(",")[0][:13])  # its file's card first (.xls: or .xlsx)
        shown = sources(page)
        assert any(s.startswith(place) for s in shown), (query, place, shown)
    first = page.locator("#qs-results .qs-card").first
    assert first.locator(".qs-source").inner_text() == "kettle-shop-page.html"
    passage = first.locator(".qs-text").text_content()  # the whole passage, folded or not
    assert "citric acid" in passage and "Basket" not in passage, passage


def test_a_slide_and_sheet_rows_open_in_their_part(context, url):  # noqa: F811
    page = open_page(context, url)
    upload(page, [DATA / "testPPT.pptx", DATA / "testEXCEL.xlsx"])
    for query, place, inside in (
        ("Watershed Avalanche", f"testPPT.pptx, slides 1{EM_DASH}3", "Watershed"),
        ("Square: 49", f'testEXCEL.xlsx, sheet "Feuil1", rows 1{EM_DASH}22', "Square: 49"),
    ):
        search(page, query, place.split(",")[0])
        page.locator("#qs-open input").click()
        page.get_by_role("option", name=f"#1 {place}").click()
        context_view = page.locator("#qs-evidence .qs-context")
        context_view.wait_for(timeout=60_000)
        assert place in page.inner_text("#qs-evidence .qs-evidence-title")
        assert context_view.get_attribute("data-where") == place.split(", ", 1)[1]
        assert inside in context_view.locator("mark.qs-passage").inner_text()
