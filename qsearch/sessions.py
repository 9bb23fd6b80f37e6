"""Each client's own collection, by session id: a browser page, an API client, an MCP session.

A collection is freed when its page closes or after `idle_seconds` without use (API and MCP
clients never close a page); at most `max_sessions` live at once. Freeing drops the engine
outside the registry's lock, so one session's teardown never stalls the others. Each session
also has a stop flag, which cancels its indexing run between files and embedding windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .engine import Engine


class TooManySessions(RuntimeError):
    """The registry is full; the message says so in words a user can act on."""


class Sessions:
    """Session id -> (engine, last use, stop flag)."""

    def __init__(self, new_engine: Callable[[], Engine], *, idle_seconds: float = 3600, max_sessions: int = 500):
        self._new_engine, self.idle_seconds, self.max_sessions = new_engine, idle_seconds, max_sessions
        self._entries: dict[str, tuple[Engine, float, threading.Event]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> Engine:
        """The session's collection, created on first use; idle sessions are freed on the way."""
        now = time.monotonic()
        with self._lock:
            idle = [k for k, (_, used, _) in self._entries.items() if now - used > self.idle_seconds]
            freed = [self._entries.pop(k) for k in idle]
            if session_id not in self._entries and len(self._entries) >= self.max_sessions:
                raise TooManySessions("The server is busy (too many open sessions); please try again later.")
            engine, _, stop = self._entries.get(session_id) or (None, now, threading.Event())
            if engine is None:
                engine = self._new_engine()
            self._entries[session_id] = (engine, now, stop)
        for old, _, flag in freed:  # outside the lock: nobody waits for this
            flag.set()
            old.clear()
        return engine

    def peek(self, session_id: str) -> Engine | None:
        """The session's collection if it has one; never creates one."""
        entry = self._entries.get(session_id)
        return entry[0] if entry else None

    def stop_flag(self, session_id: str) -> threading.Event:
        """The session's stop flag (cleared when a new indexing run starts)."""
        with self._lock:
            entry = self._entries.get(session_id)
        return entry[2] if entry else threading.Event()

    def end(self, session_id: str) -> None:
        """Free a session now (its page was closed)."""
        with self._lock:
            entry = self._entries.pop(session_id, None)
        if entry is not None:
            entry[2].set()
            entry[0].clear()
