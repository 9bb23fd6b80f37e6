"""Collections kept under a data folder by browser token, so they survive a reload and a restart.

Each token's collection is an index folder (`VectorIndex.save`: versioned folders with an
atomic switch, store/folders.py), so a crash mid-save leaves the previous save current.
The folder is named by the token's SHA-256: only the token opens it, the token itself is
never written to disk, and a token is checked (URL-safe, 16 to 128 characters) before any
path is made from it. A `USED` file's time says when the collection was last used; `expire`
deletes those idle longer than `idle_seconds`. With a quota, a save that takes the folder past it
deletes the collections used longest ago first; a collection larger than the whole quota is not
kept (the save says so, and the collection stays in memory). One server process per data folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..engine import Engine
from ..store.folders import current_version
from ..store.vectors import DocInfo, VectorIndex

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
USED = "USED"
LOCKS = 64  # striped locks: bounded memory, and one collection always maps to the same lock
_HEX = re.compile(r"[0-9a-f]{64}")


class CollectionStore:
    """Token -> a saved collection under `data_dir/collections/`."""

    def __init__(self, data_dir: str | Path, idle_seconds: float, quota_bytes: int | None = None):
        if idle_seconds <= 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        self.root = Path(data_dir) / "collections"
        self.root.mkdir(parents=True, exist_ok=True)
        self.idle_seconds, self.quota = idle_seconds, quota_bytes
        self._locks = [threading.Lock() for _ in range(LOCKS)]
        self._sizes: dict[str, int] | None = None  # folder name -> bytes, read at the first save
        self._sizes_lock = threading.Lock()

    def save(self, token: str, engine: Engine) -> str:
        """Save the token's collection atomically (an empty one is forgotten); then keep the
        folder within its quota. '' when kept, else why not (larger than the whole quota)."""
        folder = self._folder(token)
        with self._lock(folder.name):
            if not engine.documents():
                shutil.rmtree(folder, ignore_errors=True)
                self._sized(folder.name, 0)
                return ""
            engine.save(folder)
            _touch(folder)
            size = self._sized(folder.name, _size(folder))
        if self.quota is not None and size > self.quota:
            self.forget(token)
            return (
                f"not kept on disk: this collection takes {size / 2**20:,.0f} MB, more than the "
                f"server keeps for everyone ({self.quota / 2**20:,.0f} MB); it stays in memory "
                "while you use it"
            )
        self._within_quota(keep=folder.name)
        return ""

    def usage(self) -> int:
        """Bytes the kept collections take."""
        with self._sizes_lock:
            if self._sizes is None:
                self._sizes = {f.name: _size(f) for f in self.root.iterdir() if f.is_dir()}
            return sum(self._sizes.values())

    def _sized(self, name: str, size: int) -> int:
        """Record that folder `name` takes `size` bytes (0: gone); returns `size`."""
        self.usage()  # reads every size the first time
        with self._sizes_lock:
            if size:
                self._sizes[name] = size  # type: ignore[index]
            else:
                self._sizes.pop(name, None)  # type: ignore[union-attr]
        return size

    def _within_quota(self, keep: str) -> None:
        """Delete the collections used longest ago (never `keep`) until under the quota."""
        if self.quota is None or self.usage() <= self.quota:
            return
        with self._sizes_lock:
            names = [n for n in self._sizes or {} if n != keep]
        for name in sorted(names, key=lambda n: _used(self.root / n)):
            if self.usage() <= self.quota:
                break
            with self._lock(name):
                shutil.rmtree(self.root / name, ignore_errors=True)
            self._sized(name, 0)

    def load(self, token: str, new_engine: Callable[[], Engine]) -> Engine | None:
        """A new engine (from `new_engine`) holding the token's saved collection; None without one.

        A saved collection built with another embedding model raises IndexFolderError."""
        folder = self._folder(token)
        with self._lock(folder.name):
            if current_version(folder) is None:
                return None
            index = VectorIndex.load(folder)
            _touch(folder)
        return into_engine(index, new_engine)

    def touch(self, token: str) -> None:
        """Mark the token's collection as used now (a search), so it does not expire."""
        folder = self._folder(token)
        with self._lock(folder.name):
            if folder.is_dir():
                _touch(folder)

    def forget(self, token: str) -> None:
        """Delete the token's saved collection, if any."""
        folder = self._folder(token)
        with self._lock(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
        self._sized(folder.name, 0)

    def expire(self, now: float | None = None) -> int:
        """Delete the collections unused for longer than idle_seconds; returns how many went."""
        now = time.time() if now is None else now
        gone = 0
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            with self._lock(folder.name):
                if folder.is_dir() and now - _used(folder) > self.idle_seconds:
                    shutil.rmtree(folder, ignore_errors=True)
                    gone += 1
            if not folder.is_dir():
                self._sized(folder.name, 0)
        return gone

    def _folder(self, token: str) -> Path:
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            what = f"{len(token)} characters" if isinstance(token, str) else type(token).__name__
            raise ValueError(
                f"a collection token is 16 to 128 URL-safe characters (A-Z a-z 0-9 _ -), got {what}"
            )
        return self.root / hashlib.sha256(token.encode("ascii")).hexdigest()

    def _lock(self, name: str) -> threading.Lock:
        """A collection's lock (one of LOCKS, by name): two saves of one token never interleave."""
        return self._locks[int(name[:8], 16) % LOCKS] if _HEX.fullmatch(name) else self._locks[0]


def into_engine(index: VectorIndex, new_engine: Callable[[], Engine]) -> Engine:
    """A new engine (from `new_engine`) holding a copy of `index`'s documents, chunks, vectors.

    For a loaded collection and for an opened collection file (store.portable.read_collection);
    an index built with another model raises IndexFolderError before anything is copied."""
    engine = new_engine()
    embedder = engine.embedder
    index.check_model(embedder.model_name, embedder.dim, "the saved collection")
    vectors = index.vectors()  # id order, the order of index.chunks
    rows: dict[str, list[int]] = {doc_id: [] for doc_id in index.docs}
    for row, chunk in enumerate(index.chunks.values()):
        rows[chunk.doc_id].append(row)
    chunks = list(index.chunks.values())
    target = engine.index
    for doc in index.docs.values():
        mine = rows[doc.doc_id]
        target.add(
            DocInfo(**vars(doc)),
            [chunks[r] for r in mine],
            vectors[mine],
            original=index.originals.get(doc.doc_id),
        )
    return engine


def _size(folder: Path) -> int:
    """Bytes of the files under `folder` (0 when it is gone; a file deleted meanwhile counts 0)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


def _touch(folder: Path) -> None:
    (folder / USED).touch()  # sets the time when the file exists


def _used(folder: Path) -> float:
    """When the collection was last used: its USED file's time (else the folder's)."""
    try:
        return (folder / USED).stat().st_mtime
    except FileNotFoundError:
        return folder.stat().st_mtime
