"""What the server keeps beyond one request: browsers' collections on disk (`--data-dir`), the
one-file collection a user downloads and opens again, and the low-confidence log.

The page's handlers call these few methods; each is a no-op when its setting is off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..config import Settings
from ..engine import Engine
from ..store.base import CollectionError
from ..store.portable import read_collection, write_collection
from ..types import Hits
from .lowconf import LowConfidenceLog
from .persistence import CollectionStore, into_engine
from .scratch import Scratch

EXPIRE_EVERY = 600.0  # seconds between sweeps of idle collections on disk
COLLECTION_FILE = "qsearch-collection.zip"


class Keeper:
    """The data folder and the low-confidence log of one server, as its settings name them."""

    def __init__(self, settings: Settings, quota_mb: int | None = None):
        self.settings = settings
        self.store = (
            CollectionStore(
                settings.data_dir,
                settings.data_idle_hours * 3600,
                quota_mb * 2**20 if quota_mb else None,
            )
            if settings.data_dir
            else None
        )
        self.scratch = Scratch()  # exports and downloads, until Gradio has copied them
        self.log = (
            LowConfidenceLog(settings.low_confidence_log) if settings.low_confidence_log else None
        )
        self._swept, self._lock = 0.0, threading.Lock()

    def restore(self, token: str, new_engine: Callable[[], Engine]) -> Engine | None:
        """The collection saved under `token`, or None (no data folder, nothing saved)."""
        if self.store is None:
            return None
        try:
            return self.store.load(token, new_engine)
        except CollectionError as e:  # another model, or damaged: start anew, and say why
            logging.getLogger(__name__).warning("saved collection not restored: %s", e)
            self.store.forget(token)
            return None

    def save(self, token: str, engine: Engine) -> str:
        """Save a changed collection (atomically), and now and then delete idle ones. '' when it
        is kept (or nothing is kept here), else why it is not (the disk quota)."""
        if self.store is None:
            return ""
        why_not = self.store.save(token, engine)
        with self._lock:
            due, self._swept = time.monotonic() - self._swept > EXPIRE_EVERY, time.monotonic()
        if due:
            self.store.expire()
        return why_not

    def searched(self, token: str, query: str, mode: str, hits: Hits, *, reranked: bool) -> None:
        """A search happened: the collection was used; a weak answer goes to the log."""
        if self.store is not None and token:
            self.store.touch(token)
        if self.log is not None:
            self.log.record(query, mode, hits, reranked=reranked)

    def download(self, engine: Engine) -> str:
        """The collection as one file (vectors, chunks, documents, model): its path."""
        folder = self.scratch.folder("collection-")
        return str(write_collection(engine.index, folder / COLLECTION_FILE))


def open_file(path: str, new_engine: Callable[[], Engine]) -> Engine:
    """A new engine over the collection in `path`, checked against this server's model and
    limits first (CollectionFileError says what is wrong; nothing is changed then)."""
    engine = new_engine()
    s, embedder = engine.settings, engine.embedder
    index = read_collection(
        path,
        embed_model=embedder.model_name,
        dim=embedder.dim,
        max_files=s.max_files,
        max_chunks=s.max_chunks,
        kind=s.index_kind,
    )
    return into_engine(index, new_engine)
