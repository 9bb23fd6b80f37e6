"""What the server keeps beyond one request: each visitor's library of collections on disk, the
one-file collection a user downloads and opens again, and the low-confidence log.

Collections are kept by default (`data_place`): in the platform's user data folder when the app
runs on someone's computer, in `/data` on a Hugging Face Space with persistent storage, and
otherwise (a Space without it, or a user data folder that can't be written) in a temporary
folder, which the page names as such. `--data-dir DIR` (QSEARCH_DATA_DIR) moves them; `--data-dir
off` keeps them in memory only.

Each visitor's library (qsearch.library: named collections, each an index folder with atomic
saves) lives under `<data>/collections/<SHA-256 of the visitor's token>`: only the token opens it,
the token itself is never written to disk, and a token is checked (URL-safe, 16 to 128
characters) before any path is made from it. A `USED` file's time says when the library was last
used; `expire` deletes those idle longer than `idle_seconds`. With a quota, a save that takes the
data folder past it deletes the libraries used longest ago first; a library larger than the whole
quota is not kept (the save says so, and it stays in memory). One server process per data folder.

The one token written down is the owner's (`owner_token`, `<data>/owner-token`, readable by its
owner only): on a private server, API and MCP clients, which have no browser storage to keep a
token in, all open the owner's library, so a script or an assistant finds its collections again
after reconnecting or a restart (`--api-collections`, limits.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..engine import Engine
from ..library import MANIFEST, Library, copied
from ..store.base import CollectionError
from ..store.folders import current_version
from ..store.portable import read_collection, write_collection
from ..types import Hits
from .lowconf import LowConfidenceLog
from .scratch import Scratch
from .sessions import TOKEN as SESSION_TOKEN

EXPIRE_EVERY = 600.0  # seconds between sweeps of idle libraries on disk
COLLECTION_FILE = "qsearch-collection.zip"
OFF = ("off", "none", "no", "false", "0", "memory")  # --data-dir values that keep nothing
SPACE_STORAGE = Path("/data")  # a Space's persistent storage, when it has some
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
USED = "USED"
OWNER_TOKEN = "owner-token"  # the owner's token, in the data folder
LOCKS = 64  # striped locks: bounded memory, and one library always maps to the same lock
_HEX = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataPlace:
    """Where collections are kept: `folder` (None: memory only) and which kind of place it is:
    "set" (--data-dir), "local" (the user data folder), "space" (a Space's /data), "temporary"
    or "off"; `note` says why a fallback was taken."""

    folder: Path | None
    kind: str
    note: str = ""

    def describe(self, idle_hours: float, *, show_path: bool = True) -> str:
        """For the page: where collections are kept and for how long (plain text, one line)."""
        hours = f"{idle_hours:g} hour{'s' if idle_hours != 1 else ''}"
        where = f" in {self.folder}" if show_path and self.folder else ""
        if self.kind == "off":
            return "Your collections are not kept on disk: they live in memory only."
        if self.kind == "temporary":
            return (
                f"Your collections are kept in a temporary folder{where}: they may be gone "
                f"after the server restarts, and are deleted after {hours} unused."
                + (f" ({self.note})" if self.note else "")
            )
        place = {"local": " on this computer", "space": " on this Space's persistent storage"}
        return (
            f"Your collections are kept{place.get(self.kind, '')}{where} and survive a restart; "
            f"one unused for {hours} is deleted."
        )


def data_place(settings: Settings, env: Mapping[str, str] | None = None) -> DataPlace:
    """Where this server keeps collections (module docstring)."""
    env = os.environ if env is None else env
    value = (settings.data_dir or "").strip()
    if value.lower() in OFF:
        return DataPlace(None, "off")
    if value:
        return DataPlace(Path(value).expanduser(), "set")
    temporary = Path(tempfile.gettempdir()) / "qsearch-data"
    if env.get("SPACE_ID"):
        if _writable(SPACE_STORAGE):
            return DataPlace(SPACE_STORAGE, "space")
        return DataPlace(temporary, "temporary", "this Space has no persistent storage")
    import platformdirs

    local = Path(platformdirs.user_data_dir("qsearch", appauthor=False))
    if _writable(local, create=True):
        return DataPlace(local, "local")
    return DataPlace(temporary, "temporary", f"{local} can't be written")


def _writable(folder: Path, create: bool = False) -> bool:
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        return False


class Keeper:
    """The data folder and the low-confidence log of one server, as its settings name them."""

    def __init__(
        self, settings: Settings, quota_mb: int | None = None, max_collections: int | None = None
    ):
        self.settings, self.max_collections = settings, max_collections
        self.place = data_place(settings)
        self.store = (
            CollectionStore(
                self.place.folder,
                settings.data_idle_hours * 3600,
                quota_mb * 2**20 if quota_mb else None,
            )
            if self.place.folder is not None
            else None
        )
        self.scratch = Scratch()  # exports and downloads, until Gradio has copied them
        self.log = (
            LowConfidenceLog(settings.low_confidence_log) if settings.low_confidence_log else None
        )
        self._swept, self._lock = 0.0, threading.Lock()

    def owner_token(self) -> str:
        """The token of the server owner's library: kept in the data folder (made the first
        time, readable by its owner only), or one for this process when nothing is kept."""
        if self.place.folder is None:
            return secrets.token_urlsafe(32)
        path = self.place.folder / OWNER_TOKEN
        with contextlib.suppress(OSError):
            kept = path.read_text().strip()
            if SESSION_TOKEN.fullmatch(kept):
                return kept
        token = secrets.token_urlsafe(32)  # 43 URL-safe characters: a session token's form
        path.parent.mkdir(parents=True, exist_ok=True)
        written = path.with_name(f".{OWNER_TOKEN}.{os.getpid()}")
        written.write_text(token)
        written.chmod(0o600)
        os.replace(written, path)  # whole or not at all
        return token

    def restore(self, token: str, new_engine: Callable[[], Engine]) -> Library | None:
        """The library kept under `token`, or None (nothing kept here, or nothing under it)."""
        if self.store is None:
            return None
        try:
            return self.store.load(token, new_engine, max_collections=self.max_collections)
        except CollectionError as e:  # damaged: start anew, and say why in the log
            log.warning("saved library not restored: %s", e)
            self.store.forget(token)
            return None

    def save(self, token: str, library: Library) -> str:
        """Save what changed (atomically), and now and then delete idle libraries. '' when it is
        kept (or nothing is kept here), else why it is not (the disk quota)."""
        if self.store is None:
            return ""
        why_not = self.store.save(token, library)
        with self._lock:
            due, self._swept = time.monotonic() - self._swept > EXPIRE_EVERY, time.monotonic()
        if due:
            self.store.expire()
        return why_not

    def searched(self, token: str, query: str, mode: str, hits: Hits, *, reranked: bool) -> None:
        """A search happened: the library was used; a weak answer goes to the log."""
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
    return copied(index, new_engine)


class CollectionStore:
    """Token -> the visitor's library, under `data_dir/collections/`."""

    def __init__(self, data_dir: str | Path, idle_seconds: float, quota_bytes: int | None = None):
        if idle_seconds <= 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        self.root = Path(data_dir) / "collections"
        self.root.mkdir(parents=True, exist_ok=True)
        self.idle_seconds, self.quota = idle_seconds, quota_bytes
        self._locks = [threading.Lock() for _ in range(LOCKS)]
        self._sizes: dict[str, int] | None = None  # folder name -> bytes, read at the first save
        self._sizes_lock = threading.Lock()

    def save(self, token: str, library: Library) -> str:
        """Save the token's library (a library with nothing in it is forgotten); then keep the
        data folder within its quota. '' when kept, else why not (larger than the whole quota)."""
        folder = self._folder(token)
        with self._lock(folder.name):
            if library.empty():
                shutil.rmtree(folder, ignore_errors=True)
                self._sized(folder.name, 0)
                return ""
            library.save(folder)
            _touch(folder)
            size = self._sized(folder.name, _size(folder))
        if self.quota is not None and size > self.quota:
            self.forget(token)
            return (
                f"not kept on disk: your collections take {size / 2**20:,.0f} MB, more than the "
                f"server keeps for everyone ({self.quota / 2**20:,.0f} MB); they stay in memory "
                "while you use them"
            )
        self._within_quota(keep=folder.name)
        return ""

    def load(self, token: str, new_engine: Callable[[], Engine], **options: Any) -> Library | None:
        """The token's library (its collections load when first used); None without one.
        `options`: Library's (max_collections, ...)."""
        folder = self._folder(token)
        with self._lock(folder.name):
            if not (folder / MANIFEST).is_file() and current_version(folder) is None:
                return None
            library = Library.open(folder, new_engine=new_engine, **options)
            _touch(folder)
        return library

    def usage(self) -> int:
        """Bytes the kept libraries take."""
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
        """Delete the libraries used longest ago (never `keep`) until under the quota."""
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

    def touch(self, token: str) -> None:
        """Mark the token's library as used now (a search), so it does not expire."""
        folder = self._folder(token)
        with self._lock(folder.name):
            if folder.is_dir():
                _touch(folder)

    def forget(self, token: str) -> None:
        """Delete the token's saved library, if any."""
        folder = self._folder(token)
        with self._lock(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
        self._sized(folder.name, 0)

    def expire(self, now: float | None = None) -> int:
        """Delete the libraries unused for longer than idle_seconds; returns how many went."""
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
        """A library's lock (one of LOCKS, by name): two saves of one token never interleave."""
        return self._locks[int(name[:8], 16) % LOCKS] if _HEX.fullmatch(name) else self._locks[0]


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
    """When the library was last used: its USED file's time (else the folder's)."""
    try:
        return (folder / USED).stat().st_mtime
    except FileNotFoundError:
        return folder.stat().st_mtime
