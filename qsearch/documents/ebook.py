"""EPUB e-books -> one part per chapter (ebooklib), in reading order, each named by its entry in
the book's table of contents (else its first heading), so a passage says 'chapter "Loomings"'.
A DRM-protected book (its content encrypted) is refused with that reason.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from typing import Any

from ..types import Deadline, Extracted, IngestError, Part, ReadOptions
from .containers import check_zip, quoted, unreadable
from .text import decode_text
from .webpage import read_page

_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def load_epub(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    check_zip(data, source, deadline.limits, "EPUB e-book (.epub)", "META-INF/container.xml")
    from ebooklib import ITEM_DOCUMENT, epub

    try:
        _refuse_drm(data, source)  # reads a member: its compression may be one zipfile lacks
        with warnings.catch_warnings():  # ebooklib warns about its own option defaults
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": False})
        titles = _toc_titles(book.toc)
        found = Extracted("ebook", [], no_text_reason="no text in any chapter")
        for idref, _ in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
                continue
            deadline.check(source, f"chapter {len(found.pages) + 1}")
            name = item.get_name()
            _add_chapter(
                found, decode_text(item.content or b"", f"{source}:{name}"), titles.get(name)
            )
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - ebooklib raises many kinds on damaged files
        raise unreadable(source, ".epub", e) from None
    return found


def _add_chapter(found: Extracted, html: str, title: str | None) -> None:
    page = read_page(html)
    text, html_title = page.text, page.title
    found.notes.extend(n for n in page.notes if n not in found.notes)
    if not title:
        heading = _HEADING.search(text)
        title = heading.group(1) if heading else html_title
    title = " ".join((title or "").split())
    if title and title not in text[:1000]:
        text = f"# {title}\n\n{text}"
    number = len(found.pages) + 1
    if not title:
        label = f"section {number}"
    elif title.lower().startswith("chapter"):
        label = quoted(title)
    else:
        label = f"chapter {quoted(title)}"
    found.pages.append(text)
    found.parts.append(Part(label, number))


def _toc_titles(toc: Any, titles: dict[str, str] | None = None) -> dict[str, str]:
    """{file name: the title of its first entry} from the table of contents (nested)."""
    titles = {} if titles is None else titles
    for entry in toc:
        if isinstance(entry, tuple | list):  # (Section, [children])
            section, children = entry[0], entry[1] if len(entry) > 1 else []
            _toc_titles([section, *children], titles)
            continue
        href, title = getattr(entry, "href", None), getattr(entry, "title", None)
        if href and title:
            titles.setdefault(href.split("#", 1)[0], title)
    return titles


def _refuse_drm(data: bytes, source: str) -> None:
    """An e-book whose content is encrypted (DRM) can't be read; fonts alone may be obfuscated."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if "META-INF/encryption.xml" not in z.namelist():
            return
        encryption = z.read("META-INF/encryption.xml").decode("utf-8", "replace")
    if re.search(r'Algorithm="[^"]*xmlenc#', encryption):  # AES or RSA, not font obfuscation
        raise IngestError(source, "a DRM-protected e-book: its text is encrypted")
