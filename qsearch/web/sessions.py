"""Each client's own library of named collections (qsearch.library), under an unguessable token.

A browser keeps its token in its own storage (`gr.BrowserState`), so a reload or a reopened tab
finds its collection again; only that token opens it. The page gets its token when it loads
(`mint`), before any upload, so Stop works on the very first upload too. API and MCP clients,
which have no browser storage, get a token of their own the first time their Gradio session asks
(`for_client`), in the same registry, never named by anything a browser sends. Tokens are made
here only: a random part and its HMAC under this registry's secret, so a token nobody was given
opens nothing, and a minted token needs no memory until it is used.

A collection leaves memory after `idle_seconds` without use (never when a page closes: a reload
would come back for it), or earlier when the server needs room (`evict_one`: the least recently
used one that is not indexing and has been unused for EVICTABLE_AFTER seconds). With a store of
collections on disk (`restore`), one that left comes back on the next visit; without one it is
gone, and its visitor is told why (`why_gone`). At most `max_sessions` live at once.

Each session also has a stop flag, which cancels its indexing run, the state of that run (for a
search during it), and its latest results (for export and page views).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine
from ..library import Library
from .clients import tells_visitors_apart

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # 22 random characters and 21 of their HMAC
Restore = Callable[[str, Callable[[], Engine]], "Library | None"]  # (token, new_engine) -> it
EVICTABLE_AFTER = 60.0  # seconds unused before a collection may leave memory to make room
GONE_REMEMBERED = 10_000  # tokens whose collection was freed, remembered to say why


class TooManySessions(RuntimeError):
    """The registry is full; the message says so in words a user can act on."""


class Busy(RuntimeError):
    """An upload can't start now (this collection, or this client, is already indexing)."""


@dataclass
class Indexing:
    """An upload in progress: what it does now, for a search during it and the ETA."""

    client: str
    stage: str = "reading"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)

    def describe(self) -> str:
        """'embedding 120/300' or 'reading 2/5'."""
        return f"{self.stage} {self.done}/{self.total}" if self.total else self.stage


@dataclass
class Session:
    """One client's library, when it was last used, its stop flag, its indexing run, its latest
    results."""

    library: Library
    used: float
    stop: threading.Event = field(default_factory=threading.Event)
    indexing: Indexing | None = None
    results: dict[str, Any] | None = None  # the latest search (query, settings, hits)
    # the retrieval test's labelled queries: query -> the names of the files that answer it
    labels: dict[str, set[str]] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        """The active collection's engine: where uploads go."""
        return self.library.engine()

    def free(self) -> None:
        self.stop.set()
        self.library.free()
        self.results = None
        self.labels = {}


class Sessions:
    """Token -> Session."""

    def __init__(
        self,
        new_engine: Callable[[], Engine],
        *,
        idle_seconds: float = 3600,
        max_sessions: int = 500,
        restore: Restore | None = None,
        uploads_per_client: int | None = None,
        max_collections: int | None = None,
        owner_token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`clock` says what time it is (seconds): time.monotonic, or a test's own clock.
        `uploads_per_client`: upload runs one client address may have at once (None: any; not
        applied where addresses can't tell visitors apart, clients.tells_visitors_apart).
        `max_collections`: named collections one client may have (None: any).
        `owner_token`: every API and MCP client opens the library under it (the server owner's,
        on a private server), not one of its own."""
        self._new_engine, self.idle_seconds, self._clock = new_engine, idle_seconds, clock
        self.max_collections, self.owner_token = max_collections, owner_token
        self.max_sessions, self.restore = max_sessions, restore
        self.uploads_per_client = uploads_per_client
        self._entries: dict[str, Session] = {}
        self._clients: dict[str, str] = {}  # an API client's Gradio session -> its token
        self._gone: OrderedDict[str, str] = OrderedDict()  # token's hash -> why it was freed
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    # --- tokens ---------------------------------------------------------------------------

    def mint(self) -> str:
        """A new token, valid here, that holds nothing until a collection is made under it."""
        random_part = secrets.token_urlsafe(16)[:22]
        return random_part + self._signature(random_part)

    def _signature(self, random_part: str) -> str:
        digest = hmac.new(self._secret, random_part.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:21]

    def _minted(self, token: str) -> bool:
        return hmac.compare_digest(token[22:], self._signature(token[:22]))

    # --- finding and opening --------------------------------------------------------------

    def find(self, token: str | None) -> Session | None:
        """The session `token` names, in memory or restored; None for any other string."""
        self._expire()
        if not token or not TOKEN.fullmatch(token):
            return None
        with self._lock:
            entry = self._entries.get(token)
        if entry is None and self.restore is not None:  # the one place a miss asks the store
            library = self.restore(token, self._new_engine)
            if library is not None:
                with self._lock:
                    entry = self._entries.setdefault(token, Session(library, self._clock()))
        if entry is not None:
            entry.used = self._clock()
        return entry

    def open(self, token: str | None) -> tuple[str, Session]:
        """(token, session): the one `token` names; a new collection under `token` when it was
        minted here and holds none yet; else a new collection under a new token."""
        entry = self.find(token)
        if entry is not None:
            return token, entry  # type: ignore[return-value]
        if not (token and TOKEN.fullmatch(token) and self._minted(token)):
            token = self.mint()
        return token, self._new_session(token)

    def _new_session(self, token: str) -> Session:
        """A new, empty library under `token` (at most max_sessions live at once)."""
        if len(self._entries) >= self.max_sessions:
            self.evict_one()
        with self._lock:
            if len(self._entries) >= self.max_sessions:
                raise TooManySessions(
                    "The server is busy (too many open sessions); please try again later."
                )
            entry = self._entries.setdefault(token, Session(self.new_library(), self._clock()))
            self._gone.pop(_hash(token), None)
        return entry

    def new_library(self) -> Library:
        """An empty library (one collection) for a new client."""
        return Library(self._new_engine, max_collections=self.max_collections)

    def for_client(self, client: str) -> tuple[str, Session]:
        """An API or MCP client's session, by its Gradio session (it has no browser storage), or
        the owner's, which every client shares (`owner_token`)."""
        if self.owner_token is not None:
            owner = self.owner_token
            return owner, self.find(owner) or self._new_session(owner)
        token, entry = self.open(self._clients.get(client))
        self._clients[client] = token
        return token, entry

    def peek(self, token: str | None) -> Session | None:
        """The session in memory, if any; never creates or restores one."""
        return self._entries.get(token) if token else None

    def why_gone(self, token: str | None) -> str | None:
        """Why the collection under `token` was freed, if it was (and holds nothing now)."""
        if not token or token in self._entries:
            return None
        return self._gone.get(_hash(token))

    def stop_flag(self, token: str | None) -> threading.Event:
        """The session's stop flag (cleared when a new indexing run starts)."""
        entry = self.peek(token)
        return entry.stop if entry else threading.Event()

    # --- indexing runs --------------------------------------------------------------------

    @contextmanager
    def indexing(self, session: Session, client: str) -> Iterator[Indexing]:
        """One upload run of `session` for `client`; Busy when the session already has one, or
        the client has its `uploads_per_client` running (elsewhere)."""
        with self._lock:
            if session.indexing is not None:
                raise Busy(
                    "An upload is still being indexed into this collection: wait for its report, "
                    "or press Stop indexing, then upload again."
                )
            running = [e for e in self._entries.values() if e.indexing is not None]
            mine = sum(e.indexing.client == client for e in running)  # type: ignore[union-attr]
            limited = self.uploads_per_client is not None and tells_visitors_apart(client)
            if limited and mine >= self.uploads_per_client:  # type: ignore[operator]
                uploads = f"{mine} upload{'s' if mine > 1 else ''}"
                raise Busy(
                    f"You have {uploads} being indexed (at most {self.uploads_per_client} at "
                    "once on this public server): wait for one to finish, then upload again."
                )
            run = session.indexing = Indexing(client)
        session.stop.clear()
        try:
            yield run
        finally:
            session.indexing = None
            session.used = self._clock()

    # --- leaving memory ---------------------------------------------------------------------

    def evict_one(self) -> bool:
        """Let the least recently used idle collection leave memory (kept on disk when there is a
        store, else freed and remembered as such); False when none may leave."""
        now = self._clock()
        with self._lock:
            idle = [
                (e.used, token)
                for token, e in self._entries.items()
                if e.indexing is None and now - e.used >= EVICTABLE_AFTER
            ]
            if not idle:
                return False
            token = min(idle)[1]
            entry = self._entries.pop(token)
            if self.restore is None:
                self._remember_gone(
                    token,
                    "Your collection was freed to make room for other visitors (this public "
                    "server was at its memory budget): upload your documents again.",
                )
        entry.free()
        return True

    def end(self, token: str) -> None:
        """Free a session now."""
        with self._lock:
            entry = self._entries.pop(token, None)
        if entry is not None:
            entry.free()

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            old = [
                k
                for k, e in self._entries.items()
                if now - e.used > self.idle_seconds and e.indexing is None
            ]
            freed = [self._entries.pop(k) for k in old]
            self._clients = {c: t for c, t in self._clients.items() if t in self._entries}
            if self.restore is None:
                minutes = self.idle_seconds / 60
                for token in old:
                    self._remember_gone(
                        token,
                        f"Your collection was freed after {minutes:.0f} minutes unused: upload "
                        "your documents again.",
                    )
        for entry in freed:  # outside the lock: nobody waits for this
            entry.free()

    def _remember_gone(self, token: str, why: str) -> None:
        """(Under the lock.) Remember why `token`'s collection is gone, for its next visit."""
        self._gone[_hash(token)] = why
        while len(self._gone) > GONE_REMEMBERED:
            self._gone.popitem(last=False)


def _hash(token: str) -> str:
    """What the registry remembers of a freed token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()
