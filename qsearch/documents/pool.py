"""Files -> chunked documents ready to embed, read in reader processes with a hard deadline.

One bad file never stops the others: each gets a FileReport with its outcome or its reason.
A file whose content is already in the collection (or earlier in the batch) is "unchanged".

The readers are separate interpreters (`reader_child.py`), started with `subprocess`: PDF
parsing is pure Python and in the server's own process it would hold the GIL against every
other user's search; a fresh interpreter inherits none of the threaded server's locks or its
listening socket (forking it would); and a reader stuck inside one page is killed, with its
process group, at the file's deadline, and its file reported.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..types import Chunk, Document, FileReport
from .chunk import chunk_document
from .read import IngestError, Limits, ReadOptions, content_hash, find_files, read

Progress = Callable[[str, int, int], None]  # (stage, done, total)

START_SECONDS = 120.0  # a reader's start (imports), not counted in any file's deadline
OUT_OF_MEMORY = 75  # a reader's exit status when it ran out of memory outside a file's parsing
GRACE_SECONDS = 1.0  # past a file's max_seconds, before its reader is killed: the reader's own
# check between pages gets the first chance to say where it stopped
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


class ReaderStuck(Exception):
    """A reader gave no answer within the deadline."""


class Reader:
    """One reader process: a request goes down its stdin, the answer comes up its stdout."""

    def __init__(self, modules: Sequence[str] = ()) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the qsearch package
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qsearch.documents.reader_child", *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # one BLAS thread: a reader does no linear algebra, and OpenBLAS reserves ~40 MB of
            # address space per thread, one per core, against the reader's cap (max_reader_mb)
            env={**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1"},
            start_new_session=True,  # its own process group: killed with whatever it started
        )
        self.started = False

    def _receive(self, seconds: float) -> Any:
        with selectors.DefaultSelector() as waiting:  # epoll: any descriptor number, unlike select
            waiting.register(self.process.stdout, selectors.EVENT_READ)
            if not waiting.select(seconds):
                raise ReaderStuck
        return pickle.load(self.process.stdout)

    def ask(self, request: tuple, seconds: float) -> tuple[str, Any]:
        """The reader's answer to `request`: ("ok", value) or ("error", exception); ReaderStuck
        after `seconds`; EOFError, OSError or UnpicklingError when the reader died."""
        if not self.started:  # its first word says it is ready
            self.started = self._receive(START_SECONDS) == "ready"
        pickle.dump(request, self.process.stdin, pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()
        return self._receive(seconds)

    def stop(self, wait: float = 0.0) -> None:
        """Close its input (it exits); after `wait` s, kill its process group if still there."""
        process = self.process
        try:
            process.stdin.close()
            process.wait(wait)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait()
        process.stdout.close()


class Readers:
    """At most `size` reader processes, started when first needed and reused; a reader that
    overruns its file's deadline or dies is replaced. Thread-safe."""

    def __init__(self, size: int = 2, modules: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[Reader] = []
        self._all: set[Reader] = set()

    def parse(self, source: str, data: bytes, limits: Limits, options: ReadOptions) -> Document:
        """`read.parse` in a reader process; IngestError naming the file when its reader is stuck
        past `limits.max_seconds` (then it is killed) or dies."""
        with self._slots:
            reader = self._take()
            try:
                request = (source, data, limits, options)
                status, value = reader.ask(request, limits.max_seconds + GRACE_SECONDS)
            except (ReaderStuck, EOFError, OSError, pickle.UnpicklingError) as e:
                error = IngestError(source, _why(e, limits, reader))
                self._drop(reader)
                log.warning("%s", error)
                raise error from None
            except BaseException:  # interrupted while waiting: the reader's state is unknown
                self._drop(reader)
                raise
            if status == "error" and isinstance(value, MemoryError):
                self._drop(reader)  # its heap may be spent and scattered: a new one goes on
                raise IngestError(source, out_of_memory(limits))
            self._give_back(reader)
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop every reader (the busy ones too): at exit, and in tests."""
        with self._lock:
            readers, self._all, self._idle = list(self._all), set(), []
        for reader in readers:
            reader.stop(wait=1.0)

    def pids(self) -> list[int]:
        with self._lock:
            return [r.process.pid for r in self._all]

    def _take(self) -> Reader:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        reader = Reader(self.modules)
        with self._lock:
            self._all.add(reader)
        return reader

    def _give_back(self, reader: Reader) -> None:
        with self._lock:
            if reader in self._all:
                self._idle.append(reader)

    def _drop(self, reader: Reader) -> None:
        with self._lock:
            self._all.discard(reader)
        reader.stop()


def _why(error: Exception, limits: Limits, reader: Reader) -> str:
    if isinstance(error, ReaderStuck):
        return (
            f"took too long: still reading after {limits.max_seconds:g} s, inside one page or "
            "part; the reader was stopped"
        )
    try:
        status = reader.process.wait(1.0)  # its answers ended: it has exited, or is exiting
    except subprocess.TimeoutExpired:
        status = None
    if status == OUT_OF_MEMORY:
        return out_of_memory(limits)
    return "the reader stopped while reading this file (too large or damaged?)"


def out_of_memory(limits: Limits) -> str:
    return f"ran out of memory reading it (the reader may use {limits.max_reader_mb:,} MB)"


_READERS = Readers()
atexit.register(_READERS.close)


def parse(source: str, data: bytes, limits: Limits, options: ReadOptions) -> Document:
    """`read.parse` in one of the shared reader processes (see `Readers.parse`)."""
    return _READERS.parse(source, data, limits, options)


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
        except IngestError as e:
            report.error = e.reason
        except Exception as e:  # noqa: BLE001 - a loader bug must not end the batch either
            report.error = f"unexpected error while reading: {type(e).__name__}: {e}"
        if progress:
            progress("reading", i + 1, len(files))
    return parsed, reports
