"""Files -> chunked documents ready to embed: reading, OCR and chunking, which need no model lock.

One bad file never stops the others: each gets a FileReport with its outcome or its reason.
A file whose content is already in the collection (or earlier in the batch) is "unchanged".
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..types import Chunk, Document, FileReport
from .chunk import chunk_document
from .read import IngestError, Limits, ReadOptions, content_hash, find_files, read
from .read import parse as parse_file

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Cancelled(Exception):
    """An add_files run stopped on request; nothing was added."""


@dataclass
class Parsed:
    """A file read and chunked, waiting to be embedded."""

    doc: Document
    chunks: list[Chunk]
    report: FileReport
    data: bytes


_PARSERS: ProcessPoolExecutor | None = None
_PARSERS_LOCK = threading.Lock()


def parse(source: str, data: bytes, limits: Limits, options: ReadOptions) -> Document:
    """`read.parse` in a reader process: PDF parsing is pure Python, and in the server's own
    process it would hold the GIL against every other user's search. The readers are forked once,
    after the parsing libraries are imported, so they start instantly and never re-run `__main__`."""
    global _PARSERS
    with _PARSERS_LOCK:
        if _PARSERS is None:
            import bs4  # noqa: F401 - imported before the fork, so no reader imports while another thread does
            import docx  # noqa: F401
            import pypdf  # noqa: F401

            _PARSERS = ProcessPoolExecutor(
                max_workers=2,
                mp_context=multiprocessing.get_context("fork"),
                initializer=close_inherited_sockets,
            )
        readers = _PARSERS
    try:
        return readers.submit(parse_file, source, data, limits, options).result(
            timeout=limits.max_seconds + 60
        )
    except (
        BrokenProcessPool,
        TimeoutError,
    ):  # the reader died or hung: say so for this file, start anew
        with _PARSERS_LOCK:
            _PARSERS = None
        readers.shutdown(wait=False, cancel_futures=True)
        raise IngestError(
            source, "the reader stopped while reading this file (too large or damaged?)"
        ) from None


def close_inherited_sockets() -> None:
    """In a forked reader: close the sockets it inherited from the web server. A reader holding a
    copy of a browser's keep-alive connection keeps it open after the server closes it, so the
    browser reuses it and its next request (a reload) waits forever. Readers use pipes only."""
    for name in os.listdir("/dev/fd"):
        try:
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                os.close(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            pass


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
    check_room: Callable[[int, int], None] = lambda files, chunks: None,
) -> tuple[list[Parsed], list[FileReport]]:
    """Read and chunk `paths` (folders recursively) with the embedder's tokenizer; `check_room` refuses
    a file that would take the collection past its limits (IngestError)."""
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
                chunks = chunk_document(doc, embedder.tokenizer, max_tokens, overlap)
                check_room(len(parsed), sum(len(p.chunks) for p in parsed) + len(chunks))
                report.status, report.chunks, report.pages = "indexed", len(chunks), doc.n_pages
                report.ocr_pages, report.notes = list(doc.ocr_pages), list(doc.notes)
                parsed.append(Parsed(doc, chunks, report, data))
            seen.add(doc_id)
        except IngestError as e:
            report.error = e.reason
        except Exception as e:  # noqa: BLE001 - a loader bug must not end the batch either
            report.error = f"unexpected error while reading: {type(e).__name__}: {e}"
        if progress:
            progress("reading", i + 1, len(files))
    return parsed, reports
