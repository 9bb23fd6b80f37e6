"""The server's memory budget: every visitor's collection together stays under one ceiling.

The ceiling is on the server process's resident memory (RSS), models included. A file's chunks
are admitted before they are embedded: their estimated size, plus what other uploads in flight
have reserved, must fit at the RSS measured now under the budget less a margin (5%, at least
64 MB) kept for the work in flight (reading, embedding batches, requests and the threads that
serve them: up to 43 MB over the ceiling in tests/test_load.py); and before a document is
chunked, its length must leave room for chunking it (which needs ~17 bytes a character while it
runs) and for its chunks. When it does not, the least
recently used idle collections leave memory first (kept on disk with --data-dir, else freed and
their visitors told); when nothing more can leave, the file is refused with the reason and the
rest of its batch goes on. Nothing is half-added: a refused file adds nothing.

Freed memory is handed back to the system (`malloc_trim` where the C library has it, glibc) so
that the next measurement sees it.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psutil

from ..types import Chunk, IngestError

CHUNK_OVERHEAD = 6_000  # bytes per chunk beyond its text and vector: records, BM25, FAISS ids
TEXT_FACTOR = 4  # a chunk's text is held as text, in the chunk store and as BM25 terms
CHUNK_CHARS = 800  # characters per chunk, about, for an estimate from a document's length
CHUNKING_BYTES_PER_CHAR = 20  # chunking's own memory while it runs (measured: 17 a character)
MARGIN_SHARE, MARGIN_MIN = 0.05, 64 * 2**20  # kept free for work in flight (module docstring)
log = logging.getLogger(__name__)


def chunk_bytes(chunks: Sequence[Chunk], dim: int) -> int:
    """Memory `chunks` take once indexed, estimated (measured on MiniLM: 11-14 KB a chunk of
    ~1.2 KB text and 384 dimensions, with malloc_trim before each reading)."""
    return sum(TEXT_FACTOR * len(c.text) + 4 * dim + CHUNK_OVERHEAD for c in chunks)


def resident_bytes() -> int:
    """This process's resident memory now."""
    return psutil.Process().memory_info().rss


def give_back_freed_memory() -> None:
    """Collect garbage and return freed heap pages to the system, so RSS shows what is in use."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc (macOS, Windows, musl): nothing to trim
        pass


class MemoryFull(IngestError):
    """A file that does not fit in the server's memory budget, even after idle collections left."""


class MemoryBudget:
    """At most `budget_mb` of resident memory for the whole server. `evict_one()` asks the
    sessions to let their least recently used idle collection leave memory (False when none
    can). Thread-safe; reservations are per upload run (`run`)."""

    def __init__(
        self,
        budget_mb: int,
        evict_one: Callable[[], bool],
        rss: Callable[[], int] = resident_bytes,
    ):
        self.budget = budget_mb * 2**20
        self._ceiling = self.budget - max(MARGIN_MIN, int(MARGIN_SHARE * self.budget))
        self._evict_one, self._rss = evict_one, rss
        self._lock = threading.Lock()
        self._reserved = 0  # admitted but not yet added: the uploads in flight
        self._runs = threading.local()  # what the current thread's run has reserved

    @contextmanager
    def run(self) -> Iterator[None]:
        """One upload run: what it reserves is released when it ends (by then it is in RSS)."""
        self._runs.reserved = 0
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= self._runs.reserved
            self._runs.reserved = 0

    def admit(self, chunks: Sequence[Chunk], dim: int) -> None:
        """Reserve room for `chunks`, making room if needed; MemoryFull when there is none."""
        need = chunk_bytes(chunks, dim)
        with self._lock:
            if not self._fits(need):
                raise self._full()
            self._reserved += need
            self._runs.reserved = getattr(self._runs, "reserved", 0) + need

    def admit_text(self, chars: int, dim: int) -> None:
        """Before a document is chunked: whether chunking it, and keeping its chunks, fits;
        MemoryFull when not (nothing is reserved: `admit` does that with the chunks)."""
        per_char = CHUNKING_BYTES_PER_CHAR + TEXT_FACTOR + (4 * dim + CHUNK_OVERHEAD) / CHUNK_CHARS
        with self._lock:
            if not self._fits(int(chars * per_char)):
                raise self._full()

    def make_room(self) -> None:
        """After something grew outside an upload (a collection restored or opened): idle
        collections leave memory until the server is under its budget again."""
        with self._lock:
            self._fits(0)

    def _full(self) -> MemoryFull:
        return MemoryFull(
            "",
            f"not added: the server's memory is full ({self.budget / 2**20:,.0f} MB for "
            "everyone's collections, and no idle collection is left to free); try again in a few "
            "minutes, or split the file",
        )

    def _fits(self, need: int) -> bool:
        """Whether `need` more bytes fit under the ceiling (the budget less a margin for the work
        in flight), after idle collections have left memory if needed."""
        if self._rss() + self._reserved + need <= self._ceiling:
            return True
        while self._evict_one():
            give_back_freed_memory()
            if self._rss() + self._reserved + need <= self._ceiling:
                return True
        give_back_freed_memory()
        fits = self._rss() + self._reserved + need <= self._ceiling
        if not fits:
            log.warning("memory budget: %.0f MB needed, none left to free", need / 2**20)
        return fits
