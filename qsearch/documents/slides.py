"""PowerPoint .pptx -> one part per slide (python-pptx): its title as a heading, the text of its
shapes top to bottom (inside groups too), tables as records, the text of its pictures by OCR
where Tesseract is on, then its speaker notes. A passage says 'slide 3 "Results"'.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from ..types import Deadline, Extracted, IngestError, Part, ReadOptions
from .containers import check_zip, quoted, unreadable
from .ocr import Pictures
from .sheets import table_lines


def add_slide(found: Extracted, number: int, title: str, lines: list[str], notes: str) -> None:
    """Append slide `number` to `found` as one part (also used for OpenDocument slides)."""
    title = " ".join(title.split())
    heading = f"# Slide {number}: {title}" if title else f"# Slide {number}"
    body = [line for line in lines if line.strip()]
    if notes.strip():
        body.append(f"Notes: {notes.strip()}")
    found.pages.append("\n\n".join([heading, *body]) if body or title else "")
    label = f"slide {number} {quoted(title)}" if title else f"slide {number}"
    found.parts.append(Part(label, number, "slides "))


def check_count(n: int, source: str, deadline: Deadline) -> None:
    if n > deadline.limits.max_pages:
        raise IngestError(
            source, f"too many slides: {n:,}, the limit is {deadline.limits.max_pages:,}"
        )


def load_pptx(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    check_zip(data, source, deadline.limits, "PowerPoint file (.pptx)", "ppt/presentation.xml")
    import pptx

    found = Extracted("slides", [], no_text_reason="no text on any slide")
    pictures = Pictures(source, deadline, options)
    try:
        slides = pptx.Presentation(io.BytesIO(data)).slides
        check_count(len(slides), source, deadline)
        for number, slide in enumerate(slides, 1):
            deadline.check(source, f"slide {number}")
            title_shape = slide.shapes.title
            title = title_shape.text_frame.text if title_shape is not None else ""
            shapes = [
                s for s in slide.shapes if title_shape is None or s.shape_id != title_shape.shape_id
            ]
            lines = _texts(shapes, pictures, number)
            notes = slide.notes_slide.notes_text_frame.text if slide.has_notes_slide else ""
            add_slide(found, number, title, lines, notes or "")
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - python-pptx raises many kinds on damaged files
        raise unreadable(source, ".pptx", e) from None
    found.notes.extend(pictures.notes())
    return found


def _texts(shapes: Iterable[Any], pictures: Pictures, slide: int) -> list[str]:
    """The text of `shapes`, top to bottom then left to right; groups opened."""
    from pptx.shapes.group import GroupShape

    lines: list[str] = []
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if isinstance(shape, GroupShape):
            lines += _texts(shape.shapes, pictures, slide)
        elif shape.has_table:
            rows = shape.table.rows  # a merged cell once: the cells it spans are skipped
            lines += table_lines([[c.text for c in row.cells if not c.is_spanned] for row in rows])
        elif shape.has_text_frame:
            lines.append(shape.text_frame.text)
        elif shape.has_chart and shape.chart.has_title:
            lines.append(shape.chart.chart_title.text_frame.text)
        elif (blob := _picture(shape)) is not None and (text := pictures.text(blob, slide)):
            lines.append(f"Picture text (OCR): {text}")
    return lines


def _picture(shape: Any) -> bytes | None:
    """The bytes of a picture shape's image, or None (not a picture, or a linked one)."""
    try:
        return shape.image.blob if hasattr(shape, "image") else None
    except (AttributeError, KeyError, ValueError):
        return None
