"""Each client's own collection, by session id: a browser page, an API client, an MCP session.

A collection is freed when its page closes or after `idle_seconds` without use (API and MCP
clients never close a page); at most `max_sessions` live at once. Freeing drops the engine
outside the registry's lock, so one session's teardown never stalls the others. Each session
also has a stop flag, which cancels its indexing run between files and embedding windows, and
keeps its latest results (for export and page views) until it is freed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine


class TooManySessions(RuntimeError):
    """The registry is full; the message says so in words a user can act on."""


@dataclass
class Session:
    """One client's state: its collection, when it was last used, its stop flag, its latest results."""

    engine: Engine
    used: float
    stop: threading.Event = field(default_factory=threading.Event)
    results: dict[str, Any] | None = (
        None  # the latest search (query, settings, hits): for export and page views
    )

    def free(self) -> None:
        self.stop.set()
        self.engine.clear()
        self.results = None


class Sessions:
    """Session id -> Session."""

    def __init__(
        self,
        new_engine: Callable[[], Engine],
        *,
        idle_seconds: float = 3600,
        max_sessions: int = 500,
    ):
        self._new_engine, self.idle_seconds, self.max_sessions = (
            new_engine,
            idle_seconds,
            max_sessions,
        )
        self._entries: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> Engine:
        """The session's collection, created on first use; idle sessions are freed on the way."""
        now = time.monotonic()
        with self._lock:
            freed = [
                self._entries.pop(k)
                for k, e in list(self._entries.items())
                if now - e.used > self.idle_seconds
            ]
            if session_id not in self._entries and len(self._entries) >= self.max_sessions:
                raise TooManySessions(
                    "The server is busy (too many open sessions); please try again later."
                )
            entry = self._entries.get(session_id)
            if entry is None:
                entry = self._entries[session_id] = Session(self._new_engine(), now)
            entry.used = now
        for old in freed:  # outside the lock: nobody waits for this
            old.free()
        return entry.engine

    def peek(self, session_id: str) -> Session | None:
        """The session if it has one; never creates one."""
        return self._entries.get(session_id)

    def stop_flag(self, session_id: str) -> threading.Event:
        """The session's stop flag (cleared when a new indexing run starts)."""
        entry = self._entries.get(session_id)
        return entry.stop if entry else threading.Event()

    def end(self, session_id: str) -> None:
        """Free a session now (its page was closed)."""
        with self._lock:
            entry = self._entries.pop(session_id, None)
        if entry is not None:
            entry.free()
