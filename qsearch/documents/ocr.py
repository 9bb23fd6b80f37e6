"""Text from page images with Tesseract: PDF pages without a text layer (rendered with pypdfium2),
image files (PNG, JPEG, TIFF with its pages, WebP) and the pictures in slides.

Tesseract is Debian's `tesseract-ocr` program, driven through pytesseract. Without it,
everything else works and `missing()` says what to install. A page whose mean word
confidence is below MIN_CONFIDENCE is reported, not indexed: its text would be noise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..types import Deadline, IngestError, ReadOptions

RENDER_DPI = 300  # Tesseract reads body text best at about 300 dpi
MIN_CONFIDENCE = 50.0  # mean word confidence (0-100) below which OCR text is not indexed
INSTALL_HINT = "install tesseract-ocr to read scanned pages"
PACKAGES_HINT = 'pip install "qsearch[ocr]" to read scanned pages'
LANG_HINT = "install its language pack, e.g. `apt-get install tesseract-ocr-deu` for German"


class OcrError(Exception):
    """OCR could not run on a page: no Tesseract, an unknown language, or over the time budget."""


@dataclass(frozen=True)
class OcrText:
    """What Tesseract read on one page."""

    text: str
    confidence: float  # mean word confidence, 0-100 (0 when no word was found)
    words: int

    @property
    def usable(self) -> bool:
        return self.words > 0 and self.confidence >= MIN_CONFIDENCE


def available() -> bool:
    """Whether the tesseract program can be run here, with the packages that drive it (the `ocr`
    extra: pytesseract, pypdfium2, Pillow)."""
    return _packages() and shutil.which("tesseract") is not None


def _packages() -> bool:
    return all(importlib.util.find_spec(m) for m in ("pytesseract", "pypdfium2", "PIL"))


def install_hint() -> str:
    """What to install so that scanned pages are read: the packages first, then Tesseract."""
    return INSTALL_HINT if _packages() else PACKAGES_HINT


def languages() -> list[str]:
    """The language packs Tesseract has here (empty without Tesseract)."""
    if not available():
        return []
    import pytesseract

    try:
        return sorted(pytesseract.get_languages(config=""))
    except Exception:  # noqa: BLE001 - a broken install reads as none
        return []


def status(lang: str, enabled: bool = True) -> str:
    """One line for the page and the CLI: whether scanned pages and images will be read."""
    if not enabled:
        return "OCR is off (--no-ocr): scanned pages and images are not read"
    if not available():
        return f"OCR is off: {install_hint()}"
    missing = [code for code in lang.split("+") if code not in languages()]
    if missing:
        return f"OCR is off: Tesseract has no language pack for {', '.join(missing)}; {LANG_HINT}"
    return f"OCR is on (Tesseract, language {lang})"


def read_image(image: Any, lang: str = "eng", timeout: float = 60.0) -> OcrText:
    """OCR one PIL image: words grouped back into lines and paragraphs as Tesseract found them."""
    import pytesseract

    if not available():
        raise OcrError(f"no text layer; {install_hint()}")
    try:
        data = pytesseract.image_to_data(
            image.convert("L"),
            lang=lang,
            timeout=max(timeout, 1.0),
            output_type=pytesseract.Output.DICT,
        )
    except pytesseract.TesseractError as e:  # a RuntimeError too, so caught first
        message = str(e.message or e).strip()
        if "Failed loading language" in message or "couldn't load any languages" in message:
            raise OcrError(f"Tesseract has no language pack {lang!r}; {LANG_HINT}") from None
        raise OcrError(f"Tesseract failed: {message.splitlines()[-1] if message else e}") from None
    except RuntimeError:  # pytesseract's timeout
        raise OcrError(f"OCR took too long (over {timeout:.0f} s)") from None
    return _assemble(data)


def _assemble(data: dict[str, list]) -> OcrText:
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences = []
    for i, word in enumerate(data["text"]):
        confidence = float(data["conf"][i])
        if not word.strip() or confidence < 0:
            continue
        confidences.append(confidence)
        lines.setdefault(
            (data["block_num"][i], data["par_num"][i], data["line_num"][i]), []
        ).append(word)
    paragraphs: dict[tuple[int, int], list[str]] = {}
    for (block, par, _), words in lines.items():
        paragraphs.setdefault((block, par), []).append(" ".join(words))
    text = "\n\n".join("\n".join(p) for p in paragraphs.values())
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrText(text, mean, len(confidences))


def render_pdf_page(data: bytes, index: int, dpi: int = RENDER_DPI) -> Any:
    """Page `index` (0-based) of a PDF as a PIL image."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        return pdf[index].render(scale=dpi / 72).to_pil()
    finally:
        pdf.close()


def image_pages(data: bytes, source: str, max_pixels: int, max_pages: int) -> Iterator[Any]:
    """The pages of an image file (one, or each frame of a TIFF), each checked for `max_pixels`."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:  # PIL's own check, at twice its MAX_IMAGE_PIXELS
        raise IngestError(source, _too_large(1, bomb_pixels(e), max_pixels)) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise IngestError(source, f"not a readable image ({str(e)[:120]})") from None
    n = getattr(image, "n_frames", 1)
    if n > max_pages:
        raise IngestError(source, f"too many pages: {n:,}, the limit is {max_pages:,}")
    for number, frame in enumerate(ImageSequence.Iterator(image), 1):
        pixels = frame.width * frame.height
        if pixels > max_pixels:
            raise IngestError(source, _too_large(number, pixels, max_pixels))
        try:
            frame.load()
        except (OSError, ValueError) as e:
            raise IngestError(
                source, f"not a readable image (page {number}: {str(e)[:120]})"
            ) from None
        yield frame.copy()


def _too_large(page: int, pixels: int, max_pixels: int) -> str:
    return (
        f"image too large: page {page} has {pixels / 1e6:.0f} megapixels, "
        f"the limit is {max_pixels / 1e6:.0f}"
    )


def bomb_pixels(error: Exception) -> int:
    """The pixels of an image PIL refused as a decompression bomb, as its message says them
    ("Image size (200000000 pixels) exceeds limit of ..."), else the least it refuses."""
    from PIL import Image

    said = re.search(r"\((\d+) pixels\)", str(error))
    return int(said.group(1)) if said else 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1


class Pictures:
    """OCR of the pictures inside a file (slides), when OCR is on and Tesseract is here: each
    distinct picture once, leaving a quarter of the file's time for the rest of it; notes say
    where text was read and what was skipped."""

    MIN_PIXELS = 10_000  # smaller pictures are icons, bullets and rules: nothing to read

    def __init__(self, source: str, deadline: Deadline, options: ReadOptions) -> None:
        self.source, self.deadline, self.options = source, deadline, options
        self.enabled = options.ocr and available()
        self.read: dict[str, str] = {}  # sha-1 of the picture -> its text ("" when none)
        self.where: list[int] = []  # the slides where a picture's text was read
        self.too_large: list[int] = []  # the slides with a picture over Limits.max_pixels
        self.seen, self.out_of_time = 0, False

    def text(self, blob: bytes, slide: int) -> str:
        """The text OCR reads in one picture of slide `slide` ("" when none or not read)."""
        self.seen += 1
        if not self.enabled:
            return ""
        key = hashlib.sha1(blob).hexdigest()
        if key not in self.read:
            if self.deadline.seconds_left() < self.deadline.limits.max_seconds / 4:
                self.out_of_time = True
                return ""
            self.read[key] = self._ocr(blob, slide)
        if self.read[key] and slide not in self.where:
            self.where.append(slide)
        return self.read[key]

    def _ocr(self, blob: bytes, slide: int) -> str:
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(blob))
            pixels = image.width * image.height
        except Image.DecompressionBombError as e:  # not an OSError: one picture, not the file
            pixels = bomb_pixels(e)
        except (UnidentifiedImageError, OSError, ValueError):
            return ""  # a picture format PIL doesn't read (EMF, WMF), or a damaged one
        if pixels > self.deadline.limits.max_pixels:
            self.too_large.append(slide)
            return ""
        if pixels < self.MIN_PIXELS:
            return ""
        try:
            seconds = min(self.options.ocr_page_seconds, self.deadline.seconds_left())
            result = read_image(image, self.options.ocr_lang, seconds)
        except (OSError, ValueError, OcrError):
            return ""  # OCR failed on it
        return result.text if result.usable else ""

    def notes(self) -> list[str]:
        """What a user should know about the pictures: read where, or why not."""
        notes = []
        if self.where:
            notes.append(f"text of pictures read by OCR on slide(s) {_numbers(self.where)}")
        if self.too_large:
            notes.append(
                f"picture(s) on slide(s) {_numbers(self.too_large)} not read by OCR: over "
                f"{self.deadline.limits.max_pixels / 1e6:.0f} megapixels"
            )
        if self.out_of_time:
            notes.append("some pictures were not read by OCR: the file's time ran short")
        if self.seen and self.options.ocr and not available():
            notes.append(f"the text of its {self.seen} picture(s) was not read: {INSTALL_HINT}")
        return notes


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
