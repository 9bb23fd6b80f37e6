"""HTML -> text. A web page gives its main content first: trafilatura finds the article and
leaves out menus, cookie banners, sidebars and footers, so they can't outrank it; a page where
it finds no main content, or one with nothing around it, gives all its visible text.

`visible_text` is the plain reading of HTML (scripts and styles dropped, headings kept as
Markdown headings, blocks apart): the fallback, and how e-book chapters and HTML e-mail read.
"""

from __future__ import annotations

from ..types import Deadline, Extracted, ReadOptions
from .containers import one_line_reasons
from .text import decode_text

KEPT = 0.8  # main content this share of all the words (or more) is all of it: all is read
MAIN_CONTENT_NOTE = "web page: its main content only (menus, banners and footers left out)"
_HIDDEN = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"]
# block elements: a blank line around each keeps paragraphs apart for the chunker
_BLOCKS = (
    "p div li tr section article header footer main nav aside blockquote pre table ul ol dl dt dd "
    "figure figcaption form fieldset details summary hr address"
).split()


@one_line_reasons
def load_html(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    html = decode_text(data, source)
    everything, title = visible_text(html)
    main = main_content(html)
    if main is None or len(main.split()) >= KEPT * len(everything.split()):
        return Extracted("html", [_titled(everything, title)])  # nothing around it to leave out
    return Extracted("html", [_titled(main, title)], notes=[MAIN_CONTENT_NOTE])


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
    """(the visible text of `html`, its <title>): headings become Markdown headings, where the
    chunker cuts; blocks are kept apart by blank lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_HIDDEN):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head:
        soup.head.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for block in soup.find_all(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" ")
    return soup.get_text(), title


def _titled(text: str, title: str) -> str:
    """`text` under its page title, unless the title (or its first heading) already opens it."""
    first = text.lstrip().split("\n", 1)[0].lstrip("# ").strip()
    if not title or title in text[:2000] or (first and first in title):
        return text
    return f"# {title}\n\n{text}"
