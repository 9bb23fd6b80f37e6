"""Each client's own collection, under an unguessable token.

A browser keeps its token in its own storage (`gr.BrowserState`), so a reload or a reopened tab
finds its collection again; only that token opens it. API and MCP clients, which have no browser
storage, get a token of their own the first time their Gradio session asks (`for_client`), in
the same registry, never named by anything a browser sends. Tokens are made here only
(`secrets.token_urlsafe`); a token nobody was given opens nothing.

A collection is freed after `idle_seconds` without use (never when a page closes: a reload would
come back for it); at most `max_sessions` live at once. Freeing drops the engine outside the
registry's lock, so one session's teardown never stalls the others. Each session also has a stop
flag, which cancels its indexing run, and keeps its latest results (for export and page views).
A lookup that misses asks `restore` (e.g. a store of collections saved on disk), if one is given.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes
Restore = Callable[[str, Callable[[], Engine]], "Engine | None"]  # (token, new_engine) -> engine


class TooManySessions(RuntimeError):
    """The registry is full; the message says so in words a user can act on."""


@dataclass
class Session:
    """One client's collection, when it was last used, its stop flag, its latest results."""

    engine: Engine
    used: float
    stop: threading.Event = field(default_factory=threading.Event)
    results: dict[str, Any] | None = None  # the latest search (query, settings, hits)

    def free(self) -> None:
        self.stop.set()
        self.engine.clear()
        self.results = None


class Sessions:
    """Token -> Session."""

    def __init__(
        self,
        new_engine: Callable[[], Engine],
        *,
        idle_seconds: float = 3600,
        max_sessions: int = 500,
        restore: Restore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`clock` says what time it is (seconds): time.monotonic, or a test's own clock."""
        self._new_engine, self.idle_seconds, self._clock = new_engine, idle_seconds, clock
        self.max_sessions, self.restore = max_sessions, restore
        self._entries: dict[str, Session] = {}
        self._clients: dict[str, str] = {}  # an API client's Gradio session -> its token
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str | None) -> Session | None:
        """The session `token` names, in memory or restored; None for any other string."""
        self._expire()
        if not token or not TOKEN.fullmatch(token):
            return None
        with self._lock:
            entry = self._entries.get(token)
        if entry is None and self.restore is not None:  # the one place a miss asks the store
            engine = self.restore(token, self._new_engine)
            if engine is not None:
                with self._lock:
                    entry = self._entries.setdefault(token, Session(engine, self._clock()))
        if entry is not None:
            entry.used = self._clock()
        return entry

    def open(self, token: str | None) -> tuple[str, Session]:
        """(token, session): the one `token` names, or a new collection under a new token."""
        entry = self.find(token)
        if entry is not None:
            return token, entry  # type: ignore[return-value]
        with self._lock:
            if len(self._entries) >= self.max_sessions:
                raise TooManySessions(
                    "The server is busy (too many open sessions); please try again later."
                )
            token = secrets.token_urlsafe(32)
            entry = self._entries[token] = Session(self._new_engine(), self._clock())
        return token, entry

    def for_client(self, client: str) -> tuple[str, Session]:
        """An API or MCP client's session, by its Gradio session (it has no browser storage)."""
        token, entry = self.open(self._clients.get(client))
        self._clients[client] = token
        return token, entry

    def peek(self, token: str | None) -> Session | None:
        """The session in memory, if any; never creates or restores one."""
        return self._entries.get(token) if token else None

    def stop_flag(self, token: str | None) -> threading.Event:
        """The session's stop flag (cleared when a new indexing run starts)."""
        entry = self.peek(token)
        return entry.stop if entry else threading.Event()

    def end(self, token: str) -> None:
        """Free a session now."""
        with self._lock:
            entry = self._entries.pop(token, None)
        if entry is not None:
            entry.free()

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            old = [k for k, e in self._entries.items() if now - e.used > self.idle_seconds]
            freed = [self._entries.pop(k) for k in old]
            self._clients = {c: t for c, t in self._clients.items() if t in self._entries}
        for entry in freed:  # outside the lock: nobody waits for this
            entry.free()
