"""PDF and image files -> pages of text.

PDF pages come from pypdf's text layer; a page with no text, or almost none for its area,
is rendered and read by OCR (ocr.py) when OCR is on and Tesseract is here. Images (each TIFF
frame a page) are read by OCR. Every failure is an IngestError with one line naming the reason.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from ..types import Deadline, Extracted, IngestError, ReadOptions
from . import ocr
from .containers import short

logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported by us, in one line


# what a damaged PDF makes pypdf raise, besides its own errors
_DAMAGED = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError)
_LOCKED = "password-protected PDF: it can't be opened without its password"
PYPDF_MAX_CONTENT_BYTES = 1_000_000  # a page's decoded content streams; larger: read by PDFium


def _open_pdf(data: bytes, source: str) -> Any:
    """pypdf's reader over `data`, decrypted when it opens without a password, or IngestError."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

    if not data.lstrip()[:1024].startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise IngestError(source, "not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as e:
                raise IngestError(
                    source, f"encrypted PDF that needs a missing library: {e}"
                ) from None
            if not opened:
                raise IngestError(source, _LOCKED)
        len(reader.pages)  # reads the page tree: a damaged one fails here
    except IngestError:
        raise
    except FileNotDecryptedError:
        raise IngestError(source, _LOCKED) from None
    except (PdfReadError, PdfStreamError, *_DAMAGED) as e:
        raise IngestError(
            source, f"not a readable PDF (damaged or truncated: {short(e)})"
        ) from None
    return reader


def load_pdf(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    reader = _open_pdf(data, source)
    n_pages = len(reader.pages)
    if n_pages == 0:
        raise IngestError(source, "the PDF has no pages")
    if n_pages > deadline.limits.max_pages:
        raise IngestError(
            source, f"too many pages: {n_pages:,}, the limit is {deadline.limits.max_pages:,}"
        )
    found = Extracted("pdf", [], no_text_reason="no extractable text (the PDF has no text layer)")
    chars = 0
    for number, page in enumerate(reader.pages, 1):
        deadline.check(source, f"page {number} of {n_pages}")
        text = _page_text(data, page, number)
        if _needs_ocr(text, page):
            text = _ocr_pdf_page(data, number, text, source, deadline, options, found)
        chars += len(text)
        if chars > deadline.limits.max_chars:
            raise IngestError(
                source,
                f"too much text: over {deadline.limits.max_chars:,} characters by page {number}",
            )
        found.pages.append(text)
    return found


def _page_text(data: bytes, page, number: int) -> str:  # noqa: ANN001 - pypdf PageObject
    """The page's text layer: by pypdf, or by PDFium (C) for a page whose drawing instructions
    are over PYPDF_MAX_CONTENT_BYTES, which pypdf's pure Python would take many seconds over
    (700,000 operators: 30 s). A page neither can parse is an empty page, not a failed file."""
    try:
        contents = page.get_contents()
        size = len(contents.get_data()) if contents is not None else 0
        if size <= PYPDF_MAX_CONTENT_BYTES:
            return page.extract_text() or ""
        import pypdfium2

        pdf = pypdfium2.PdfDocument(data)
        try:
            return pdf[number - 1].get_textpage().get_text_range() or ""
        finally:
            pdf.close()
    except Exception:  # noqa: BLE001 - pypdf and PDFium raise many kinds on damaged pages
        return ""


def _needs_ocr(text: str, page) -> bool:  # noqa: ANN001 - pypdf PageObject
    """A page that shows an image and has no text, or almost none for its area (a scan with a
    stamped header, say). A page without images has nothing OCR could read."""
    try:
        area = float(page.mediabox.width) * float(page.mediabox.height)
    except (TypeError, ValueError, AttributeError):
        area = 612 * 792
    return len(text.strip()) < max(16, area * 1e-4) and _has_images(page.get("/Resources"))


def _has_images(resources, depth: int = 0) -> bool:  # noqa: ANN001 - a pypdf dictionary
    """Whether the page's resources hold an image, directly or in a form it draws (2 levels)."""
    try:
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        for ref in xobjects.get_object().values() if xobjects is not None else []:
            xobject = ref.get_object()
            subtype = xobject.get("/Subtype")
            if subtype == "/Image" or (
                subtype == "/Form"
                and depth < 2
                and _has_images(xobject.get("/Resources"), depth + 1)
            ):
                return True
    except (AttributeError, KeyError, TypeError, ValueError):
        return True  # unreadable resources: let OCR look
    return False


def _ocr_pdf_page(
    data: bytes,
    number: int,
    text: str,
    source: str,
    deadline: Deadline,
    options: ReadOptions,
    found: Extracted,
) -> str:
    """The page's text by OCR when it is on and finds more than the text layer; else the layer's."""
    if not options.ocr:
        found.notes.append(f"page {number}: no text layer (OCR is off)")
        return text
    if not ocr.available():
        hint = ocr.install_hint()
        if not any(n.endswith(hint) for n in found.notes):
            found.no_text_reason = f"no text layer; {hint}"
            found.notes.append(f"page {number}: no text layer; {hint}")
        return text
    try:
        result = ocr.read_image(
            ocr.render_pdf_page(data, number - 1),
            options.ocr_lang,
            min(options.ocr_page_seconds, deadline.seconds_left()),
        )
    except ocr.OcrError as e:
        found.notes.append(f"page {number}: {e}")
        return text
    return _use_ocr(result, number, text, found)


def _use_ocr(result: ocr.OcrText, number: int, text: str, found: Extracted) -> str:
    if not result.words:
        found.notes.append(f"page {number}: no text found, by OCR either")
        return text
    if not result.usable:
        found.notes.append(
            f"page {number}: OCR confidence too low ({result.confidence:.0f}%), not indexed"
        )
        return text
    if len(result.text.strip()) <= len(text.strip()):
        return text
    found.ocr_pages.append(number)
    return result.text


def load_image(data: bytes, source: str, deadline: Deadline, options: ReadOptions) -> Extracted:
    """An image file (each TIFF frame a page), read by OCR."""
    found = Extracted("image", [], no_text_reason="no text found in the image")
    if not options.ocr:
        raise IngestError(source, "an image: OCR is off (--no-ocr), so its text can't be read")
    if not ocr.available():
        raise IngestError(source, f"an image: {ocr.install_hint()} and images")
    for number, image in enumerate(
        ocr.image_pages(data, source, deadline.limits.max_pixels, deadline.limits.max_pages), 1
    ):
        deadline.check(source, f"page {number}")
        try:
            result = ocr.read_image(
                image, options.ocr_lang, min(options.ocr_page_seconds, deadline.seconds_left())
            )
            found.pages.append(_use_ocr(result, number, "", found))
        except ocr.OcrError as e:
            found.notes.append(f"page {number}: {e}")
            found.pages.append("")
    return found
