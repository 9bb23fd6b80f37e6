"""File -> Document: one loader per file type, and a clear IngestError for what can't be read.

Every failure names the file and the reason in one line, so a batch can report it and
go on with the other files.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from ..types import Deadline, Document, IngestError, Limits, ReadOptions
from .formats import LOADERS, SUPPORTED_SUFFIXES, refusal

__all__ = [
    "IngestError",
    "Limits",
    "ReadOptions",
    "SUPPORTED_SUFFIXES",
    "content_hash",
    "find_files",
    "load",
    "parse",
    "read",
]

PAGE_SEPARATOR = "\n\n"


def load(
    path: str | Path,
    limits: Limits = Limits(),
    options: ReadOptions = ReadOptions(),
    *,
    name: str | None = None,
) -> Document:
    """Extract the text of one file. `name` is the source shown in results (default: path)."""
    source, data = read(path, limits, name=name)
    return parse(source, data, limits, options)


def read(
    path: str | Path, limits: Limits = Limits(), *, name: str | None = None
) -> tuple[str, bytes]:
    """(source, bytes) of a file whose type is supported and whose size is within the limit."""
    path = Path(path)
    source = name or str(path)
    suffix = file_suffix(source)
    if suffix not in LOADERS:
        raise IngestError(source, refusal(suffix))
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IngestError(source, "is a folder, not a file")
        if size > limits.max_bytes:
            raise IngestError(
                source,
                f"too large: {size / 2**20:.1f} MB, the limit is {limits.max_bytes / 2**20:.0f} MB",
            )
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(source, f"can't read the file ({e.strerror or e})") from None
    if not data:
        raise IngestError(source, "empty file (0 bytes)")
    return source, data


def parse(
    source: str, data: bytes, limits: Limits = Limits(), options: ReadOptions = ReadOptions()
) -> Document:
    """The Document in a file's bytes; the loader is chosen by the extension of `source`."""
    loader = LOADERS[file_suffix(source)]
    found = loader(data, source, Deadline(limits), options)
    pages = [_tidy(p) for p in found.pages]
    if not any(p.strip() for p in pages):
        raise IngestError(source, "; ".join([found.no_text_reason, *found.notes]))
    kind, page_starts, parts, part_starts = found.kind, (), (), ()
    if found.parts:  # slides, rows, chapters: each part's text under its label, empty ones left out
        kept = [(p, part) for p, part in zip(pages, found.parts, strict=True) if p]
        text, part_starts = _join_pages([p for p, _ in kept])
        parts = tuple(part for _, part in kept)
    elif kind in ("pdf", "image"):
        text, page_starts = _join_pages(pages)
    else:
        text = pages[0]
    if len(text) > limits.max_chars:
        raise IngestError(
            source, f"too much text: {len(text):,} characters, the limit is {limits.max_chars:,}"
        )
    return Document(
        source=source,
        text=text,
        doc_id=content_hash(data),
        kind=kind,
        page_starts=page_starts,
        ocr_pages=tuple(found.ocr_pages),
        notes=tuple(found.notes),
        parts=parts,
        part_starts=part_starts,
    )


def file_suffix(name: str) -> str:
    return Path(name).suffix.lower()


def find_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders recursively into the supported files in them, sorted; files pass as is."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file()
                    and f.suffix.lower() in SUPPORTED_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                )
            )
        else:
            found.append(p)
    return found


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
