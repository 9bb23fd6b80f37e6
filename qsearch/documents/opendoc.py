"""OpenDocument files (odfdo, over lxml): .odt text in reading order with headings, lists,
footnotes, tables as records and the pages' headers and footers; .ods sheets as records of rows
(sheets.py); .odp slides as parts with their titles, notes and the text of their pictures by OCR
(slides.py). Embedded objects (formulas, charts) are not read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from ..types import Deadline, Extracted, IngestError, ReadOptions
from .containers import check_zip, unreadable
from .ocr import Pictures
from .sheets import Cells, Row, add_sheet, table_lines
from .slides import add_slide, check_count

_WHAT = {"text": "OpenDocument text (.odt)", "spreadsheet": "OpenDocument spreadsheet (.ods)"}
_WHAT["presentation"] = "OpenDocument presentation (.odp)"
_SKIP = {"text:tracked-changes", "text:sequence-decls", "office:forms", "text:variable-decls"}
_SKIP |= {"text:user-field-decls", "table:named-expressions", "office:scripts"}
_CELLS = ("table:table-cell", "table:covered-table-cell")
_IMAGE = re.compile(r"\[Image [^\]\n]*\]")  # odfdo's mark for a picture: nothing to search


def _open(data: bytes, source: str, deadline: Deadline, kind: str) -> Any:
    """The odfdo Document of `data`, which must be of `kind`: text, spreadsheet or presentation."""
    check_zip(data, source, deadline.limits, _WHAT[kind], "content.xml")
    import odfdo

    try:
        document = odfdo.Document(io.BytesIO(data))
        found = document.get_type()
        document.body  # noqa: B018 - parses content.xml: a damaged one fails here
    except Exception as e:  # noqa: BLE001 - odfdo and lxml raise many kinds on damaged files
        raise unreadable(source, _WHAT[kind], e) from None
    if found.removesuffix("-template") != kind:
        raise IngestError(source, f"not an {_WHAT[kind]}: it holds an OpenDocument {found}")
    return document


def load_odt(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    document = _open(data, source, deadline, "text")
    context = {"document": document, "footnotes": [], "endnotes": [], "annotations": []}
    context |= {"rst_mode": False, "img_counter": 0, "images": [], "no_img_level": 0}
    lines: list[str] = []
    cells = Cells(source, deadline)  # a table's cells count against the file's limit too
    try:
        for child in document.body.children:
            deadline.check(source, f"paragraph {len(lines) + 1}")
            lines += _block(child, context, cells)
            lines += [f"[{mark}] {body}" for mark, body in context["footnotes"]]
            context["footnotes"] = []
        margins = [c.inner_text for m in _master_pages(document) for c in m.children]
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001
        raise unreadable(source, ".odt", e) from None
    lines += [f"Header or footer: {m}" for m in dict.fromkeys(" ".join(m.split()) for m in margins)]
    return Extracted("odt", ["\n\n".join(line.strip() for line in lines if line.strip())])


def _block(element: Any, context: dict, cells: Cells) -> list[str]:
    """One element of the body as lines: headings as Markdown headings, tables as records."""
    if element.tag in _SKIP:
        return []
    if element.tag == "text:h":
        level = min(max(element.get_attribute_integer("text:outline-level") or 1, 1), 6)
        return [f"{'#' * level} {' '.join(element.get_formatted_text(context).split())}"]
    if element.tag == "table:table":
        return table_lines([texts for _, texts in _rows(element, cells, "table")])
    if element.tag in ("text:section", "text:index-body", "text:table-of-content"):
        return [line for child in element.children for line in _block(child, context, cells)]
    return [_IMAGE.sub("", element.get_formatted_text(context))]


def _master_pages(document: Any) -> list[Any]:
    styles = document.get_part("styles.xml")
    return list(getattr(styles, "master_pages", None) or []) if styles is not None else []


def load_ods(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    document = _open(data, source, deadline, "spreadsheet")
    found = Extracted("sheet", [], no_text_reason="every sheet is empty")
    cells = Cells(source, deadline)
    try:
        for table in document.body.tables:
            add_sheet(found, table.name or "", _rows(table, cells, f'sheet "{table.name}"'))
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001
        raise unreadable(source, ".ods", e) from None
    return found


def _rows(table: Any, cells: Cells, name: str) -> Iterator[Row]:
    """Each row's cells' shown text. Repeated empty rows and cells only move the count on (an
    .ods marks the unused rest of a sheet as a million repeated rows); others are repeated,
    and counted against the file's cells before they are (number-columns-repeated=1e9)."""
    number = 0
    for row in table.get_elements(".//table:table-row"):
        spans = []  # (text, times) of each cell, as stored
        for cell in row.children:
            if cell.tag in _CELLS:
                text, times = " ".join(cell.inner_text.split()), cell.repeated or 1
                spans.append((text, times if text or times < 1024 else 0))
        while spans and not spans[-1][0]:
            spans.pop()
        if not spans:
            number += row.repeated or 1
            continue
        repeated, width = row.repeated or 1, sum(times for _, times in spans)
        cells.take(width * repeated, f"{name} row {number + 1}")
        cells.row(width, f"{name} row {number + 1}")
        texts = [text for text, times in spans for _ in range(times)]
        for _ in range(repeated):
            number += 1
            yield number, texts


def load_odp(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    document = _open(data, source, deadline, "presentation")
    found = Extracted("slides", [], no_text_reason="no text on any slide")
    pictures, cells = Pictures(source, deadline, options), Cells(source, deadline)
    try:
        pages = document.body.get_draw_pages()
        check_count(len(pages), source, deadline)
        for number, page in enumerate(pages, 1):
            deadline.check(source, f"slide {number}")
            title, lines, notes = "", [], ""
            for frame in page.children:
                if frame.tag == "presentation:notes":
                    notes = "\n".join(p.inner_text for p in frame.get_paragraphs())
                elif frame.get_attribute("presentation:class") == "title" and not title:
                    title = " ".join(p.inner_text for p in frame.get_paragraphs())
                else:
                    lines += _frame(frame, document, pictures, cells, number)
            add_slide(found, number, title, lines, notes)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001
        raise unreadable(source, ".odp", e) from None
    found.notes.extend(pictures.notes())
    return found


def _frame(frame: Any, document: Any, pictures: Pictures, cells: Cells, slide: int) -> list[str]:
    """A shape's text (its tables as records) and its pictures' text by OCR."""
    tables = frame.get_elements(".//table:table")
    if tables:
        rows = (_rows(t, cells, f"slide {slide} table") for t in tables)
        lines = [line for table in rows for line in table_lines([r for _, r in table])]
    else:
        lines = [p.inner_text for p in frame.get_paragraphs()]
    for image in frame.get_elements(".//draw:image"):
        try:
            blob = document.get_part(image.get_attribute("xlink:href") or "")
        except (KeyError, ValueError, OSError):  # a linked picture, or one missing from the zip
            continue
        if isinstance(blob, bytes) and (text := pictures.text(blob, slide)):
            lines.append(f"Picture text (OCR): {text}")
    return lines
