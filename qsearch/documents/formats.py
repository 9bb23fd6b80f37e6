"""Every file type qsearch reads, in one table: its name for people, its extensions, its loader.

The upload box, `--help`, the README (a test holds it to `describe()`) and the reason a file is
refused all come from here. A loader is (bytes, source, deadline, options) -> Extracted; each
failure is an IngestError with one line naming the reason. Types people often try that can't
be read have a reason of their own, saying what to do instead (`REFUSED`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..types import Deadline, Extracted, ReadOptions
from .ebook import load_epub
from .mail import load_eml, load_mhtml, load_msg
from .office import load_docx
from .opendoc import load_odp, load_ods, load_odt
from .pdf import load_image, load_pdf
from .sheets import load_csv, load_xls, load_xlsx
from .slides import load_pptx
from .text import load_rtf, load_text
from .webpage import load_html

Loader = Callable[[bytes, str, Deadline, ReadOptions], Extracted]


@dataclass(frozen=True)
class Format:
    name: str  # for people; neighbours of one name are listed together: "Excel (.xlsx, .xls)"
    suffixes: tuple[str, ...]
    loader: Loader


FORMATS = (
    Format("PDF", (".pdf",), load_pdf),
    Format("Word", (".docx",), load_docx),
    Format("PowerPoint", (".pptx",), load_pptx),
    Format("Excel", (".xlsx", ".xlsm"), load_xlsx),
    Format("Excel", (".xls",), load_xls),
    Format("OpenDocument", (".odt",), load_odt),
    Format("OpenDocument", (".ods",), load_ods),
    Format("OpenDocument", (".odp",), load_odp),
    Format("CSV", (".csv", ".tsv"), load_csv),
    Format("EPUB", (".epub",), load_epub),
    Format("rich text", (".rtf",), load_rtf),
    Format("e-mail", (".eml",), load_eml),
    Format("e-mail", (".msg",), load_msg),
    Format("web pages", (".html", ".htm", ".xhtml"), load_html),
    Format("web pages", (".mhtml", ".mht"), load_mhtml),
    Format("text", (".txt", ".text", ".md", ".markdown", ".rst", ".log"), load_text),
    Format("JSON and XML", (".json", ".jsonl", ".xml"), load_text),
    Format("images, read by OCR", (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"), load_image),
)
LOADERS: dict[str, Loader] = {suffix: f.loader for f in FORMATS for suffix in f.suffixes}
SUPPORTED_SUFFIXES = tuple(LOADERS)

_SAVE_AS = "no well-kept pure-Python reader exists for it; save it as {} (in Office: File > Save "
_SAVE_AS += "As; with LibreOffice: `soffice --headless --convert-to {} FILE`) and add that"
_ARCHIVE = "an archive: unpack it and add the files inside"
_IWORK = "an Apple iWork file: export it (File > Export To) as {} or PDF and add that"
REFUSED = {
    ".doc": "a Word 97-2003 document: " + _SAVE_AS.format(".docx", "docx"),
    ".ppt": "a PowerPoint 97-2003 file: " + _SAVE_AS.format(".pptx", "pptx"),
    ".xlsb": "an Excel binary workbook: " + _SAVE_AS.format(".xlsx", "xlsx"),
    ".pages": _IWORK.format("Word (.docx)"),
    ".numbers": _IWORK.format("Excel (.xlsx)"),
    ".key": _IWORK.format("PowerPoint (.pptx)"),
    **dict.fromkeys((".zip", ".7z", ".rar", ".tar", ".gz", ".tgz"), _ARCHIVE),
    **dict.fromkeys(
        (".mobi", ".azw", ".azw3"), "a Kindle e-book: convert it to .epub (e.g. with Calibre)"
    ),
}


def _groups() -> list[tuple[str, list[str]]]:
    groups: list[tuple[str, list[str]]] = []
    for f in FORMATS:
        if groups and groups[-1][0] == f.name:
            groups[-1][1].extend(f.suffixes)
        else:
            groups.append((f.name, list(f.suffixes)))
    return groups


def describe() -> str:
    """The accepted types with their extensions: 'PDF (.pdf), Word (.docx), ...'."""
    return ", ".join(f"{name} ({', '.join(suffixes)})" for name, suffixes in _groups())


def names() -> str:
    """The accepted types in a few words: 'PDF, Word, PowerPoint, ...'."""
    return ", ".join(name for name, _ in _groups())


def refusal(suffix: str) -> str:
    """Why a file of this extension is not read, and what to do instead."""
    if suffix in REFUSED:
        return REFUSED[suffix]
    return f"unsupported file type {suffix or '(no extension)'!r}; qsearch reads {names()}"
