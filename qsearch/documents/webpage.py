"""HTML -> text. A web page gives its main content first: trafilatura finds the article and
leaves out menus, cookie banners, sidebars and footers, so they can't outrank it; a page where
it finds no main content, or one with nothing around it, gives all its visible text.

`read_page` is the plain reading of HTML (scripts and styles dropped, headings kept as
Markdown headings, blocks apart): the fallback, and how e-book chapters and HTML e-mail read.
Every page is first rewritten by `markup.rewrite` and parsed by lxml (libxml2), so that hostile
structure (100,000 nested tags, a tag of a million attributes, megabytes of "<") costs about
linear time; the tree is walked without recursion and without changing it.

trafilatura's own cost grows faster than the page (a 340 KB page of 15,000 small elements took
6 s; a table row of 40,000 cells 79 s), so a page of more than MAIN_CONTENT_MAX_ELEMENTS
elements or MAIN_CONTENT_MAX_CHARS characters of text is read whole, with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types import Deadline, Extracted, ReadOptions
from .containers import one_line_reasons
from .markup import MAX_DEPTH, rewrite
from .text import decode_text

KEPT = 0.8  # main content this share of all the words (or more) is all of it: all is read
MAIN_CONTENT_NOTE = "web page: its main content only (menus, banners and footers left out)"
MAIN_CONTENT_MAX_ELEMENTS = 5_000  # above: trafilatura would take seconds; the page is read whole
MAIN_CONTENT_MAX_CHARS = 500_000
_HIDDEN = frozenset(
    ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "head"]
)
# block elements: a blank line around each keeps paragraphs apart for the chunker
_BLOCKS = frozenset(
    "p div li tr section article header footer main nav aside blockquote pre table ul ol dl dt dd "
    "figure figcaption form fieldset details summary hr address".split()
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_CELLS = frozenset(("td", "th"))


@dataclass
class Page:
    """What `read_page` found: all the visible text, the <title>, the page's markup as rewritten
    (for trafilatura), its number of elements (tags written), and notes on what was cut."""

    text: str
    title: str
    markup: str
    elements: int
    notes: list[str] = field(default_factory=list)


@one_line_reasons
def load_html(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    page = read_page(decode_text(data, source))
    notes = list(page.notes)
    if page.elements > MAIN_CONTENT_MAX_ELEMENTS or len(page.text) > MAIN_CONTENT_MAX_CHARS:
        notes.append(
            f"web page too large to find its main content ({page.elements:,} elements, "
            f"{len(page.text):,} characters): all of its text was read"
        )
        main = None
    else:
        main = main_content(page.markup)
    if main is None or len(main.split()) >= KEPT * len(page.text.split()):
        return Extracted("html", [_titled(page.text, page.title)], notes=notes)
    return Extracted("html", [_titled(main, page.title)], notes=[MAIN_CONTENT_NOTE, *notes])


def main_content(html: str) -> str | None:
    """The page's main content as Markdown (headings, lists, tables), or None when trafilatura
    finds none worth the name (under its 250-character minimum)."""
    import trafilatura

    text = trafilatura.extract(
        html,
        output_format="markdown",
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        favor_recall=True,  # when in doubt, keep a paragraph: missing text is worse than noise
    )
    return text if text and text.strip() else None


def visible_text(html: str) -> tuple[str, str]:
    """(the visible text of `html`, its <title>): see `read_page`."""
    page = read_page(html)
    return page.text, page.title


def read_page(html: str) -> Page:
    """The visible text of `html`: headings become Markdown headings, where the chunker cuts;
    blocks are kept apart by blank lines; scripts, styles and the <head> are left out."""
    rewritten = rewrite(html)
    root, parsed_whole = _parse(rewritten.html)
    if not parsed_whole:  # libxml2 nested deeper than the rewrite did: read it flat
        rewritten = rewrite(html, max_depth=0)
        root, _ = _parse(rewritten.html)
    title = ""
    if root is not None:
        first = next(root.iter("title"), None)
        title = " ".join("".join(first.itertext()).split()) if first is not None else ""
    text = _walk(root) if root is not None else ""
    return Page(text, title, rewritten.html, rewritten.tags, rewritten.notes())


def _parse(markup: str) -> tuple[Any, bool]:
    """(the lxml tree of `markup` or None when it holds nothing, whether libxml2 read all of it:
    False when it stopped at its depth limit)."""
    import lxml.html
    from lxml import etree

    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)
    try:
        root = lxml.html.document_fromstring(markup, parser=parser)
    except etree.ParserError:  # "Document is empty"
        return None, True
    whole = not any(e.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT for e in parser.error_log)
    return root, whole


def _walk(root: Any) -> str:
    """The visible text under `root`, in one pass over the tree."""
    from lxml import etree

    parts: list[str] = []
    walk = etree.iterwalk(root, events=("start", "end"))
    for event, element in walk:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _HIDDEN:
                walk.skip_subtree()
            elif tag in _HEADINGS:
                words = " ".join(s.strip() for s in element.itertext() if s.strip())
                parts.append(f"\n\n{'#' * _HEADINGS[tag]} {words}\n\n")
                walk.skip_subtree()
            else:
                if tag in _BLOCKS:
                    parts.append("\n\n")
                elif tag == "br":
                    parts.append("\n")
                if element.text:
                    parts.append(element.text)
            continue
        if tag in _BLOCKS:
            parts.append("\n\n")
        elif tag in _CELLS:
            parts.append(" ")
        if element.tail and element is not root:
            parts.append(element.tail)
    return "".join(parts)


def _titled(text: str, title: str) -> str:
    """`text` under its page title, unless the title (or its first heading) already opens it."""
    first = text.lstrip().split("\n", 1)[0].lstrip("# ").strip()
    if not title or title in text[:2000] or (first and first in title):
        return text
    return f"# {title}\n\n{text}"


__all__ = ["MAX_DEPTH", "Page", "load_html", "main_content", "read_page", "visible_text"]
