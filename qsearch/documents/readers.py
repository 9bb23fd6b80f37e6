"""The reader processes: separate interpreters (`reader_child.py`), started with `subprocess`,
each reading one file at a time with that file's deadline and memory cap (see pool.py for why).

A reader stuck inside one page is killed, with its process group, at the file's deadline (plus
GRACE_SECONDS) and replaced; its place goes to the next file at once. Readers are shared fairly:
while a visitor's files are read (`reading_for`), that visitor holds at most half of them, and a
waiting visitor under its share goes before another's next file.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..types import Document, IngestError, Limits, ReadOptions

log = logging.getLogger(__name__)
# who the files being read in this context are for (a visitor of a shared server), or None
_VISITOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("visitor", default=None)

START_SECONDS = 120.0  # a reader's start (imports), not counted in any file's deadline
OUT_OF_MEMORY = 75  # a reader's exit status when it ran out of memory outside a file's parsing
GRACE_SECONDS = 1.0  # past a file's max_seconds, before its reader is killed: the reader's own
# check between pages gets the first chance to say where it stopped


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
        """Close its input (it exits); after `wait` s, kill its process group if still there.
        Only by the thread that uses the reader: its pipes are closed."""
        process = self.process
        try:
            process.stdin.close()
            process.wait(wait)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
            process.wait()
        process.stdout.close()

    def kill(self) -> None:
        """Kill its process group, pipes left open: a thread waiting on its answer sees the end
        of its output at once (closing the pipe under an epoll wait would hide it till the
        deadline), and that thread stops it."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.process.kill()


class Readers:
    """At most `size` reader processes, started when first needed and reused; a reader that
    overruns its file's deadline or dies is replaced. Each visitor (`reading_for`) holds at most
    `share` of them at once (half, at least one), and readers go to those waiting in turn, the
    first waiting visitor under its share first. Thread-safe."""

    def __init__(self, size: int = 2, modules: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)
        self.size, self.share = size, max(1, size // 2)
        self._lock = threading.Lock()
        self._turns = threading.Condition(self._lock)
        self._busy = 0
        self._holding: dict[str, int] = {}  # visitor -> readers it holds
        self._waiting: list[tuple[object, str | None]] = []  # (ticket, visitor), first come first
        self._idle: list[Reader] = []
        self._all: set[Reader] = set()

    def parse(self, source: str, data: bytes, limits: Limits, options: ReadOptions) -> Document:
        """`read.parse` in a reader process; IngestError naming the file when its reader is stuck
        past `limits.max_seconds` (then it is killed) or dies."""
        visitor = _VISITOR.get()
        with self._turn(visitor):
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

    @contextlib.contextmanager
    def _turn(self, visitor: str | None) -> Iterator[None]:
        """Hold one reader's place for `visitor` (None: no share applies) while the block runs."""
        ticket = object()
        with self._turns:
            self._waiting.append((ticket, visitor))
            try:
                while self._next() is not ticket:
                    self._turns.wait()
            finally:
                self._waiting.remove((ticket, visitor))
            self._busy += 1
            if visitor is not None:
                self._holding[visitor] = self._holding.get(visitor, 0) + 1
            self._turns.notify_all()  # the next in line may go too
        try:
            yield
        finally:
            with self._turns:
                self._busy -= 1
                if visitor is not None:
                    self._holding[visitor] -= 1
                    if not self._holding[visitor]:
                        del self._holding[visitor]
                self._turns.notify_all()

    def _next(self) -> object | None:
        """The ticket that may take a free reader now: the first waiting one whose visitor holds
        less than its share; None when no reader is free or no waiting one may go."""
        if self._busy >= self.size:
            return None
        for ticket, visitor in self._waiting:
            if visitor is None or self._holding.get(visitor, 0) < self.share:
                return ticket
        return None

    def close(self) -> None:
        """Stop every reader: at exit, and in tests. An idle one is stopped here; a busy one is
        killed, and the thread reading with it reports its file and stops it."""
        with self._lock:
            idle, busy = self._idle, self._all.difference(self._idle)
            self._all, self._idle = set(), []
        for reader in idle:
            reader.stop(wait=1.0)
        for reader in busy:
            reader.kill()

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


@contextlib.contextmanager
def reading_for(visitor: str | None) -> Iterator[None]:
    """Files read in this block (this thread, or this task) are `visitor`'s: it holds at most
    its share of the readers (`Readers`)."""
    token = _VISITOR.set(visitor)
    try:
        yield
    finally:
        _VISITOR.reset(token)
