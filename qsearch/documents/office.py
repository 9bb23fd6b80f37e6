"""Word .docx -> text (python-docx): headings as Markdown headings, paragraphs and tables in
reading order, and the headers and footers of every section (each distinct one once).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

from ..types import Deadline, Extracted, IngestError, ReadOptions
from .containers import check_zip, unreadable
from .sheets import Cells, table_lines


def load_docx(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    check_zip(data, source, deadline.limits, "Word document (.docx)", "word/document.xml")
    import docx

    cells = Cells(source, deadline)  # its tables' cells, against the file's limit
    try:
        document = docx.Document(io.BytesIO(data))
        body = _blocks(document.iter_inner_content(), cells)
        headers, footers = _margins(document, cells)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - python-docx raises many kinds on damaged files
        raise unreadable(source, ".docx", e) from None
    parts = [f"Header: {h}" for h in headers] + body + [f"Footer: {f}" for f in footers]
    return Extracted("docx", ["\n\n".join(p for p in parts if p.strip())])


def _blocks(blocks: Iterable[Any], cells: Cells) -> list[str]:
    """The text of paragraphs and tables, in order; headings marked as Markdown headings.
    The file's deadline is checked before each block."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    parts: list[str] = []
    for block in blocks:
        cells.deadline.check(cells.source, f"paragraph {len(parts) + 1}")
        if isinstance(block, Paragraph):
            parts.append(_paragraph(block))
        elif isinstance(block, Table):
            parts.extend(table_lines(_cells(block, cells)))
    return parts


def _cells(table: Any, cells: Cells) -> list[list[str]]:
    """Each row's cells' text: a cell once however many grid columns it spans (python-docx's
    `row.cells` makes one per column: gridSpan="50000000" is 50 million), and a vertically
    merged cell's text in each row it spans, as `row.cells` gives it."""
    from docx.table import _Cell

    rows: list[list[str]] = []
    above: dict[int, str] = {}  # the text at each grid column of the row above
    for row in table.rows:
        stored = row._tr.tc_lst  # the row's <w:tc> elements, as stored
        cells.take(len(stored), f"table row {len(rows) + 1}")
        cells.row(len(stored), f"table row {len(rows) + 1}")
        offset, here, texts = row.grid_cols_before, {}, []
        for tc in stored:
            merged = tc.vMerge == "continue"  # the cell above goes on into this row
            here[offset] = text = above.get(offset, "") if merged else _Cell(tc, table).text
            texts.append(text)
            offset += tc.grid_span
        rows.append(texts)
        above = here
    return rows


def _margins(document: Any, cells: Cells) -> tuple[list[str], list[str]]:
    """The distinct texts of the headers and of the footers of all sections, in order."""
    headers: dict[str, None] = {}
    footers: dict[str, None] = {}
    for section in document.sections:
        for kind, seen in (("header", headers), ("footer", footers)):
            for variant in (kind, f"first_page_{kind}", f"even_page_{kind}"):
                part = getattr(section, variant)
                if part.is_linked_to_previous:
                    continue
                text = " ".join(line for line in _blocks(part.iter_inner_content(), cells) if line)
                if text.strip():
                    seen.setdefault(" ".join(text.split()))
    return list(headers), list(footers)


def _paragraph(paragraph: Any) -> str:
    text = paragraph.text.strip()
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    match = re.fullmatch(r"Heading (\d)", style)
    if text and (match or style == "Title"):
        return f"{'#' * (int(match.group(1)) if match else 1)} {text}"
    return text
