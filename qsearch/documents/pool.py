"""Files -> chunked documents ready to embed, read in reader processes with a hard deadline.

One bad file never stops the others: each gets a FileReport with its outcome or its reason.
A file whose content is already in the collection (or earlier in the batch) is "unchanged".

The readers (readers.py) are separate interpreters (`reader_child.py`), started with
`subprocess`: PDF parsing is pure Python and in the server's own process it would hold the GIL
against every other user's search; a fresh interpreter inherits none of the threaded server's
locks or its listening socket (forking it would); and a reader stuck inside one page is killed,
with its process group, at the file's deadline, and its file reported.

Every path that reads files comes here, so the same deadline and memory cap hold on each: the
app's uploads, `qsearch index` and the library's Engine.add_files (`read_files`), and
`qsearch chunk` (`load`).
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..types import Chunk, Document, FileReport
from .chunk import chunk_document
from .containers import short
from .read import IngestError, Limits, ReadOptions, content_hash, find_files, read
from .readers import GRACE_SECONDS, OUT_OF_MEMORY, Readers, reading_for

__all__ = [  # the readers' names too, as before they moved to readers.py
    "GRACE_SECONDS",
    "OUT_OF_MEMORY",
    "Cancelled",
    "Parsed",
    "Readers",
    "check_stop",
    "load",
    "parse",
    "read_files",
    "reading_for",
    "reason",
]
Progress = Callable[[str, int, int], None]  # (stage, done, total)
log = logging.getLogger(__name__)


class Cancelled(Exception):
    """An add_files run stopped on request; nothing was added."""


@dataclass
class Parsed:
    """A file read and chunked, waiting to be embedded."""

    doc: Document
    chunks: list[Chunk]
    report: FileReport
    data: bytes


_READERS = Readers()
atexit.register(_READERS.close)


def parse(source: str, data: bytes, limits: Limits, options: ReadOptions) -> Document:
    """`read.parse` in one of the shared reader processes (see `Readers.parse`)."""
    return _READERS.parse(source, data, limits, options)


def load(
    path: str | Path,
    limits: Limits = Limits(),
    options: ReadOptions = ReadOptions(),
    *,
    name: str | None = None,
) -> Document:
    """`read.load` in one of the shared reader processes: the file's deadline and memory cap
    hold, as for every file the app and `qsearch index` read."""
    source, data = read(path, limits, name=name)
    return parse(source, data, limits, options)


def reason(error: Exception, source: str) -> str:
    """What a report says about a file that failed with `error`: an IngestError's reason, else
    what is wrong in words (a loader let a library's exception through); the exception is
    logged."""
    if isinstance(error, IngestError):
        if error.detail:
            log.info("%s: %s [%s]", source, error.reason, error.detail)
        return error.reason
    log.warning("%s: %s: %s", source, type(error).__name__, error)
    return f"could not be read: {short(error)}"


def check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped on request: nothing was added")


def read_files(
    paths: Iterable[str | Path],
    settings: Settings,
    index: Any,
    embedder: Any,
    *,
    progress: Progress | None = None,
    names: Sequence[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
    check_room: Callable[..., None] = lambda files, chunks=0, new=(), text="": None,
) -> tuple[list[Parsed], list[FileReport]]:
    """Read and chunk `paths` (folders recursively) with the embedder's tokenizer; `check_room`
    (files before this one, chunks with it, its chunks, its text before chunking) refuses a file
    that would take the collection past its limits or the server's memory (IngestError)."""
    files = find_files(paths) if names is None else [Path(p) for p in paths]
    sources = list(names) if names is not None else [str(p) for p in files]
    if len(sources) != len(files):
        raise ValueError(f"got {len(files)} paths but {len(sources)} names")
    limits = Limits.from_settings(settings)
    options = ReadOptions.from_settings(settings)
    max_tokens, overlap = settings.chunk_sizes(embedder.max_tokens)
    reports: list[FileReport] = []
    parsed: list[Parsed] = []
    seen: set[str] = set()
    for i, (path, source) in enumerate(zip(files, sources)):
        check_stop(should_stop)
        report = FileReport(path=source, status="error")
        reports.append(report)
        started = time.monotonic()
        try:
            source, data = read(path, limits, name=source)
            report.doc_id = doc_id = content_hash(data)
            if doc_id in seen or index.has_doc(doc_id):
                info = index.docs.get(doc_id)
                report.status, report.chunks = "unchanged", getattr(info, "chunks", 0)
                report.pages = getattr(info, "pages", None)
            else:
                check_room(len(parsed))
                doc = parse(source, data, limits, options)
                check_room(len(parsed), text=doc.text)  # room to chunk it and keep its chunks
                chunks = chunk_document(doc, embedder.tokenizer, max_tokens, overlap)
                check_room(len(parsed), sum(len(p.chunks) for p in parsed) + len(chunks), chunks)
                report.status, report.chunks, report.pages = "indexed", len(chunks), doc.n_pages
                report.ocr_pages, report.notes = list(doc.ocr_pages), list(doc.notes)
                parsed.append(Parsed(doc, chunks, report, data))
            seen.add(doc_id)
        except Exception as e:  # noqa: BLE001 - a loader bug must not end the batch either
            report.error = reason(e, source)
        report.seconds = time.monotonic() - started
        if progress:
            progress("reading", i + 1, len(files))
    return parsed, reports
