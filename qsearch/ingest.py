"""File -> Document: one loader per file type, and a clear IngestError for what can't be read.

Every failure names the file and the reason in one line, so a batch can report it and
go on with the other files.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .types import Document

PDF_SUFFIXES = (".pdf",)
TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown", ".rst", ".csv", ".log")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
DOCX_SUFFIXES = (".docx",)
SUPPORTED_SUFFIXES = PDF_SUFFIXES + TEXT_SUFFIXES + HTML_SUFFIXES + DOCX_SUFFIXES

PAGE_SEPARATOR = "\n\n"

logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported by us, in one line


class IngestError(Exception):
    """A file that can't be turned into text; str() is one line naming file and reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one file may cost: bytes on disk, pages, extracted characters."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_chars: int = 10_000_000
    max_unzipped_bytes: int = 200 * 1024 * 1024  # a .docx is a zip: refuse zip bombs
    max_seconds: float = 120.0  # extraction time, checked between pages and paragraphs


def load(path: str | Path, limits: Limits = Limits(), *, name: str | None = None) -> Document:
    """Extract the text of one file. `name` is the source shown in results (default: path)."""
    source, data = read(path, limits, name=name)
    return parse(source, data, limits)


def read(path: str | Path, limits: Limits = Limits(), *, name: str | None = None) -> tuple[str, bytes]:
    """(source, bytes) of a file whose type is supported and whose size is within the limit."""
    path = Path(path)
    source = name or str(path)
    suffix = file_suffix(source)
    if suffix not in _LOADERS:
        raise IngestError(
            source, f"unsupported file type {suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IngestError(source, "is a folder, not a file")
        if size > limits.max_bytes:
            raise IngestError(source, f"too large: {size / 2**20:.1f} MB, the limit is "
                                      f"{limits.max_bytes / 2**20:.0f} MB")
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(source, f"can't read the file ({e.strerror or e})") from None
    if not data:
        raise IngestError(source, "empty file (0 bytes)")
    return source, data


def parse(source: str, data: bytes, limits: Limits = Limits()) -> Document:
    """The Document in a file's bytes; the loader is chosen by the extension of `source`."""
    loader = _LOADERS[file_suffix(source)]
    kind, pages = loader(data, source, _Deadline(limits))
    pages = [_tidy(p) for p in pages]
    if not any(p.strip() for p in pages):
        raise IngestError(source, "no text found in the file" if kind != "pdf" else
                          "no extractable text (a scanned image? the PDF has no text layer)")
    text, page_starts = _join_pages(pages) if kind == "pdf" else (pages[0], ())
    if len(text) > limits.max_chars:
        raise IngestError(
            source, f"too much text: {len(text):,} characters, the limit is {limits.max_chars:,}"
        )
    return Document(source=source, text=text, doc_id=content_hash(data), kind=kind,
                    page_starts=page_starts)


def file_suffix(name: str) -> str:
    return Path(name).suffix.lower()


def load_many(
    paths: Iterable[str | Path], limits: Limits = Limits()
) -> Iterator[tuple[str, Document | IngestError]]:
    """Load each file; a failure is yielded as its IngestError and never stops the rest."""
    for path in paths:
        try:
            yield str(path), load(path, limits)
        except IngestError as e:
            yield str(path), e


def find_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders recursively into the supported files in them, sorted; files pass as is."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            ))
        else:
            found.append(p)
    return found


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- loaders: (bytes, source, limits) -> (kind, [page text, ...]) ---------------------


def _load_pdf(data: bytes, source: str, limits: Limits) -> tuple[str, list[str]]:
    import io

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
                raise IngestError(source, f"encrypted PDF that needs a missing library: {e}") from None
            if not opened:
                raise IngestError(source, "password-protected PDF: it can't be opened without its password")
        n_pages = len(reader.pages)
    except IngestError:
        raise
    except FileNotDecryptedError:
        raise IngestError(source, "password-protected PDF: it can't be opened without its password") from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError, OSError) as e:
        raise IngestError(source, f"not a readable PDF (damaged or truncated: {_short(e)})") from None
    if n_pages == 0:
        raise IngestError(source, "the PDF has no pages")
    if n_pages > limits.max_pages:
        raise IngestError(source, f"too many pages: {n_pages:,}, the limit is {limits.max_pages:,}")
    pages: list[str] = []
    chars = 0
    for page in reader.pages:
        limits.check(source, f"page {len(pages) + 1} of {n_pages}")
        try:
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - a page pypdf can't parse is an empty page, not a failed file
            text = ""
        chars += len(text)
        if chars > limits.max_chars:
            raise IngestError(
                source, f"too much text: over {limits.max_chars:,} characters by page {len(pages) + 1}"
            )
        pages.append(text)
    return "pdf", pages


def _load_text(data: bytes, source: str, limits: Limits) -> tuple[str, list[str]]:
    return "text", [decode_text(data, source)]


def _load_html(data: bytes, source: str, limits: Limits) -> tuple[str, list[str]]:
    from bs4 import BeautifulSoup

    html = decode_text(data, source)
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head:
        soup.head.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for level in range(1, 7):  # headings become Markdown headings: the chunker cuts there
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for block in soup.find_all(_HTML_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" ")
    text = soup.get_text()
    if title and title not in text[:2000]:
        text = f"# {title}\n\n{text}"
    return "html", [text]


_HTML_BLOCKS = ["p", "div", "li", "tr", "section", "article", "header", "footer", "main", "nav",
                "aside", "blockquote", "pre", "table", "ul", "ol", "dl", "dt", "dd", "figure",
                "figcaption", "form", "fieldset", "details", "summary", "hr", "address"]


def _load_docx(data: bytes, source: str, limits: Limits) -> tuple[str, list[str]]:
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unzipped = sum(info.file_size for info in z.infolist())
            names = set(z.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise IngestError(source, "not a valid .docx (it is not a zip archive)") from None
    if unzipped > limits.max_unzipped_bytes:
        raise IngestError(
            source, f"refused: unpacks to {unzipped / 2**20:,.0f} MB (a zip bomb?), "
            f"the limit is {limits.max_unzipped_bytes / 2**20:.0f} MB"
        )
    if "word/document.xml" not in names:
        raise IngestError(source, "not a valid .docx (no word/document.xml inside the zip)")

    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        for block in document.iter_inner_content():
            limits.check(source, f"paragraph {len(parts) + 1}")
            if isinstance(block, Paragraph):
                parts.append(_docx_paragraph(block))
            elif isinstance(block, Table):
                parts.extend(" | ".join(c.text.strip() for c in row.cells) for row in block.rows)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - python-docx raises many kinds on damaged files
        raise IngestError(source, f"not a readable .docx ({_short(e)})") from None
    return "docx", ["\n\n".join(p for p in parts if p.strip())]


def _docx_paragraph(paragraph) -> str:  # noqa: ANN001 - python-docx Paragraph
    text = paragraph.text.strip()
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    match = re.fullmatch(r"Heading (\d)", style)
    if text and (match or style == "Title"):
        return f"{'#' * (int(match.group(1)) if match else 1)} {text}"
    return text


_LOADERS: dict[str, Callable[[bytes, str, Limits], tuple[str, list[str]]]] = {
    **dict.fromkeys(PDF_SUFFIXES, _load_pdf),
    **dict.fromkeys(TEXT_SUFFIXES, _load_text),
    **dict.fromkeys(HTML_SUFFIXES, _load_html),
    **dict.fromkeys(DOCX_SUFFIXES, _load_docx),
}


class _Deadline(Limits):
    """Limits plus the moment extraction started, so loaders can stop a file that takes too long."""

    def __init__(self, limits: Limits):
        super().__init__(**vars(limits))
        object.__setattr__(self, "_started", time.monotonic())

    def check(self, source: str, where: str) -> None:
        if time.monotonic() - self._started > self.max_seconds:
            raise IngestError(source, f"took too long: over {self.max_seconds:g} s, stopped at {where}")


# --- text decoding -------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, source: str) -> str:
    """Bytes -> str: a BOM decides; else UTF-8; else the most likely legacy encoding.

    A file with NUL bytes or many control characters and no BOM is binary, and refused.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise IngestError(source, f"not valid {encoding.upper()} text despite its BOM") from None
    if _looks_binary(data):
        raise IngestError(source, "binary data, not text (is the file extension wrong?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[:1_000_000]))
    if not matches or matches[0].encoding is None:
        raise IngestError(source, "not UTF-8, and no other text encoding fits")
    best = matches[0]
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    encoding = "cp1252" if "cp1252" in tied else best.encoding  # the common Western legacy encoding wins ties
    return data.decode(encoding, errors="replace")


def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls > len(sample) * 0.05


# --- clean-up --------------------------------------------------------------------------------

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+")
_MANY_NEWLINES = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _tidy(text: str) -> str:
    """Normalise newlines, spaces and compatibility forms (PDF ligatures: 'ﬁ' -> 'fi')."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def _join_pages(pages: list[str]) -> tuple[str, tuple[int, ...]]:
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + len(PAGE_SEPARATOR)
    return PAGE_SEPARATOR.join(pages), tuple(starts)


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]
