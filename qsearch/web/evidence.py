"""Where a result came from: its PDF page(s) rendered as an image with the passage's lines and
the query's terms highlighted (PDFium's text positions), or, for other formats, the passage
marked in its surrounding text (within its slide, sheet or chapter, for those). Everything from
the document is escaped; a page is shown as a PNG image, never as the document's own markup.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any

from ..store.analysis import term_spans
from ..store.vectors import VectorIndex
from ..types import Hit
from .render import highlight, where

DPI = 110  # a page about as wide as the results column
MAX_PAGES = 3  # a passage spanning more pages shows its first three
CONTEXT_CHARS = 700  # surrounding text shown on each side of a passage
PART_CONTEXT_CHARS = 3000  # ... of a passage of a slide, sheet or chapter, within that part
# where the readers start a part: a slide's or chapter's heading, a sheet's (documents/)
PART_HEADING = re.compile(r"(?m)^(?:# |## Sheet )")
CONTEXT_HEIGHT = "22em"  # the text around a passage scrolls within this (to the passage: page.py)
PASSAGE = (255, 214, 0, 110)  # translucent yellow over the passage's lines
TERM = (234, 88, 12, 255)  # orange outline around the query's terms


def evidence_html(hit: Hit, index: VectorIndex, query: str) -> str:
    """The evidence panel for one hit of `index`."""
    title = f"<div class='qs-evidence-title'><b>#{hit.rank}</b> {html.escape(where(hit))}</div>"
    original = index.originals.get(hit.doc_id)
    if original is not None and hit.page:
        pages = list(range(hit.page, min(hit.page_end or hit.page, hit.page + MAX_PAGES - 1) + 1))
        images = [_page_figure(original, number, hit, query) for number in pages]
        return f"<div class='qs-evidence'>{title}{''.join(images)}</div>"
    if hit.page and index.docs.get(hit.doc_id) and index.docs[hit.doc_id].kind == "pdf":
        note = (
            "<p class='qs-note'>The page image is not available: the PDF was larger than the "
            "size kept for "
            "page views. The passage in its surrounding text:</p>"
        )
    else:
        note = ""
    return f"<div class='qs-evidence'>{title}{note}{_in_context(hit, index, query)}</div>"


def _page_figure(data: bytes, number: int, hit: Hit, query: str) -> str:
    image, found = render_page(data, number, hit.text, query)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    caption = f"page {number}" + (
        ""
        if found
        else " (the passage's lines could not be located on this page"
        + (": it was read by OCR)" if hit.ocr else ")")
    )
    return (
        f"<figure class='qs-page' data-page='{number}' data-highlights='{found}' "
        "style='margin:8px 0'>"
        f"<img class='qs-page-image' alt='page {number}' "
        "style='width:100%;max-width:560px;border:1px solid #d1d5db' "
        f"src='data:image/png;base64,{encoded}'><figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_page(
    data: bytes, number: int, passage: str, query: str, dpi: int = DPI
) -> tuple[Any, int]:
    """(PIL image of page `number`, how many passage lines were highlighted on it)."""
    import pypdfium2
    from PIL import Image, ImageDraw

    pdf = pypdfium2.PdfDocument(data)
    try:
        page = pdf[number - 1]
        scale = dpi / 72
        image = page.render(scale=scale).to_pil().convert("RGBA")
        height = page.get_height()
        text_page = page.get_textpage()
        overlay = Image.new(
            "RGBA", image.size, (0, 0, 0, 0)
        )  # drawn on, then blended over the page
        draw = ImageDraw.Draw(overlay)

        def box(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
            left, bottom, right, top = rect
            return left * scale, (height - top) * scale, right * scale, (height - bottom) * scale

        found = 0
        for line, start in _snippets(passage):
            rects = _find(text_page, line) or _find(text_page, start)
            for rect in rects:
                draw.rectangle(box(rect), fill=PASSAGE)
            found += bool(rects)
        for term in _terms(text_page.get_text_range(), query):
            for rect in _find(text_page, term, every=True):
                draw.rectangle(box(rect), outline=TERM, width=2)
        return Image.alpha_composite(image, overlay).convert("RGB"), found
    finally:
        pdf.close()


def _find(
    text_page: Any, needle: str, every: bool = False
) -> list[tuple[float, float, float, float]]:
    """The rectangles of `needle` (its first occurrence, or all) on a PDFium text page."""
    searcher = text_page.search(needle, match_case=False, match_whole_word=False)
    rects = []
    while (match := searcher.get_next()) is not None:
        start, count = match
        rects += [text_page.get_rect(i) for i in range(text_page.count_rects(start, count))]
        if not every:
            break
    searcher.close()
    return rects


def _snippets(passage: str) -> list[tuple[str, str]]:
    """Searchable pieces of a passage: (each line of three words or more, its first six words). Text
    extractors differ in small ways, so a line that isn't found whole is looked for by its start."""
    pieces = []
    for line in passage.splitlines():
        words = line.split()
        if len(words) >= 3:
            pieces.append((" ".join(words), " ".join(words[:6])))
    return pieces or [(" ".join(passage.split()[:6]),) * 2]


def _terms(page_text: str, query: str) -> list[str]:
    """The page's words that BM25 matches for `query` (stems included, no stop words)."""
    words = {page_text[s:e] for s, e in term_spans(page_text, query)}
    return sorted(words, key=len, reverse=True)[:8]


def _in_context(hit: Hit, index: VectorIndex, query: str) -> str:
    """The passage marked inside the text around it, rebuilt from the document's chunks; for a
    passage of a slide, sheet or chapter (`hit.where`), the text of that part around it only."""
    chunks = sorted(index.doc_chunks(hit.doc_id), key=lambda c: c.start)
    reach = PART_CONTEXT_CHARS if hit.where else CONTEXT_CHARS
    lo, hi = max(0, hit.start - reach), hit.end + reach
    text = [" "] * (hi - lo)  # only the window shown, however long the document
    for c in chunks:
        if c.end > lo and c.start < hi:
            start, end = max(c.start, lo), min(c.end, hi)
            text[start - lo : end - lo] = c.text[start - c.start : end - c.start]
    window = "".join(text)
    first, last = 0, len(window)
    if hit.where:  # from the heading of the passage's part to the heading of the next one
        starts = PART_HEADING.finditer(window, 0, hit.start - lo + 1)
        first = max((m.start() for m in starts), default=0)
        following = PART_HEADING.search(window, hit.end - lo)
        last = following.start() if following else last
    before = window[first : hit.start - lo].lstrip()
    after = window[hit.end - lo : last].rstrip()
    return (
        f"<div class='qs-context' data-where='{html.escape(hit.where or '', quote=True)}' "
        f"style='white-space:pre-wrap;line-height:1.4;max-height:{CONTEXT_HEIGHT};overflow-y:auto'>"
        f"{'… ' if lo and not first else ''}{highlight(before, query)}"
        f"<mark class='qs-passage' style='background:#fde68a'>{highlight(hit.text, query)}</mark>"
        f"{highlight(after, query)}{' …' if after and last == len(window) else ''}</div>"
    )
