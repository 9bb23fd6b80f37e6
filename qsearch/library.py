"""Library: a user's named collections, each an Engine, searched one or several at once, kept in
one folder, with a trash that undoes a removal for a few minutes.

The web page gives each visitor one (web/sessions.py, kept by web/keeping.py), the CLI opens one
with `--library DIR` (default: the user data folder, `default_folder`), and Python code opens one
with `Library.open(folder, settings)`.

On disk: `library.json` lists the collections (name, folder, when created) and which one is
active; each collection is an index folder (`VectorIndex.save`: versions with an atomic switch)
named by a random id, never by the user's name, so a rename rewrites one small file and no name
ever becomes a path. `save` writes the collections changed since their last save, then the list
(atomically), then deletes the folders no collection names any more. A collection is loaded
when it is first used, so a library of many collections costs memory only for those in use.

Removing a file, clearing a collection or deleting one puts what went into the trash for
`trash_seconds` (5 minutes): `undo` brings it back. The trash is in memory: it outlives a save,
not a restart.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .engine import Engine
from .store.base import Collection, CollectionError, DocInfo
from .store.folders import current_version, write_atomic
from .store.vectors import VectorIndex
from .types import Hits, IngestError

DEFAULT_NAME = "My documents"
MANIFEST = "library.json"
TRASH_SECONDS = 300.0
MAX_NAME = 60  # characters in a collection's name
_FOLDER = re.compile(r"c-[0-9a-f]{12}")  # a collection's folder: never made from its name
_LEGACY = re.compile(r"(v-.*|\.tmp-.*|CURRENT|\.CURRENT\.tmp|USED)")  # one index at the top
log = logging.getLogger(__name__)


def default_folder() -> Path:
    """Where the CLI's library lives unless told: `library` in the platform's user data folder
    (~/.local/share/qsearch on Linux, ~/Library/Application Support/qsearch on macOS,
    %LOCALAPPDATA%\\qsearch on Windows)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("qsearch", appauthor=False)) / "library"


@dataclass
class Removed:
    """What a removal put in the trash, until `expires` (a time.time()): `Library.undo` brings
    it back."""

    ticket: str
    what: str  # "report.pdf from “Papers”", "12 files of “Papers”", "the collection “Papers”"
    expires: float
    restore: Callable[[], str] = field(repr=False)  # puts it back; returns what it did, in words
    folder: str = ""  # a deleted collection's folder, kept on disk while this can be undone


@dataclass
class _Entry:
    name: str
    folder: str  # its folder's name under the library's folder
    created: float
    engine: Engine | None = None  # None: not loaded yet (it is on disk)
    saved: tuple[int, int, int] | None = None  # (engine id, changes, documents) at the last save


class Library:
    """Named collections (at least one), one of them active, with a trash."""

    def __init__(
        self,
        new_engine: Callable[[], Engine],
        folder: str | Path | None = None,
        *,
        max_collections: int | None = None,
        trash_seconds: float = TRASH_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        """`new_engine` makes an empty collection's engine (sharing the models: the app's
        context, or `shared_models`); `folder` is where `save` keeps it (None: nowhere)."""
        self._new_engine = new_engine
        self.folder = Path(folder).expanduser() if folder is not None else None
        self.max_collections, self.trash_seconds, self._clock = (
            max_collections,
            trash_seconds,
            clock,
        )
        self._entries: list[_Entry] = []
        self._active = ""
        self._trash: list[Removed] = []
        self._legacy = False  # the folder holds one index at its top (before libraries): tidy it
        self._lock = threading.RLock()
        self.problems: list[str] = []  # collections that could not be opened, and why
        self.create(DEFAULT_NAME)

    @classmethod
    def open(
        cls,
        folder: str | Path,
        settings: Settings | None = None,
        *,
        new_engine: Callable[[], Engine] | None = None,
        **options: Any,
    ) -> Library:
        """The library kept in `folder` (a new one, with one empty collection, if it holds none).

        An index folder from before libraries (`CURRENT` at its top) opens as one collection."""
        if new_engine is None:
            new_engine = shared_models(settings or Settings.from_env())
        library = cls(new_engine, folder, **options)
        library._read()
        return library

    # --- the collections -----------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return [e.name for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    @property
    def active(self) -> str:
        """The collection uploads go to and searches start from."""
        return self._active

    def resolve(self, name: str) -> str:
        """`name` as the library spells it (names match case aside); ValueError when unknown."""
        with self._lock:
            return self._entry(name).name

    def switch(self, name: str) -> str:
        """Make `name` the active collection; returns its name as the library spells it."""
        with self._lock:
            self._active = self._entry(name).name
            return self._active

    def engine(self, name: str | None = None) -> Engine:
        """The engine of collection `name` (the active one when None), loaded on first use."""
        with self._lock:
            entry = self._entry(name if name is not None else self._active)
            if entry.engine is None:
                entry.engine = self._load(entry)
            return entry.engine

    def create(self, name: str) -> Engine:
        """A new empty collection, made active. ValueError: a bad or taken name, or too many."""
        with self._lock:
            name = self._check_name(name)
            if self.max_collections is not None and len(self._entries) >= self.max_collections:
                raise ValueError(
                    f"at most {self.max_collections} collections here: delete one before you make "
                    f"“{name}”"
                )
            entry = _Entry(name, f"c-{secrets.token_hex(6)}", self._clock(), self._make(name))
            self._entries.append(entry)
            self._active = name
            return entry.engine  # type: ignore[return-value]

    def adopt(self, name: str, engine: Engine) -> str:
        """Add `engine` (a collection opened from a file) as a new active collection named `name`
        (or `name (2)`... when taken); returns the name given. ValueError: too many."""
        with self._lock:
            base, n = " ".join(name.split())[:MAX_NAME] or DEFAULT_NAME, 1
            while self._find(candidate := base if n == 1 else f"{base} ({n})") is not None:
                n += 1
            self.create(candidate)
            self._entries[-1].engine = engine
            engine.name, engine.room = candidate, self._room
            return candidate

    def rename(self, old: str, new: str) -> str:
        """Rename collection `old`; returns the new name (trimmed). ValueError: bad or taken."""
        with self._lock:
            entry = self._entry(old)
            new = self._check_name(new, renaming=entry)
            if self._active == entry.name:
                self._active = new
            entry.name = new
            if entry.engine is not None:
                entry.engine.name = new
            return new

    def delete(self, name: str) -> Removed:
        """Delete a collection (to the trash; its folder stays until the trash lets it go). The
        last one is replaced by a new empty one."""
        with self._lock:
            entry = self._entry(name)
            files, place = self._counts(entry)["files"], self._entries.index(entry)
            self._entries.remove(entry)
            placeholder = None
            if not self._entries:  # a library always has a collection: a new empty one
                self.create(DEFAULT_NAME)
                placeholder = self._entries[0]
            if self._active == entry.name:
                self._active = self._entries[min(place, len(self._entries) - 1)].name

        def restore() -> str:
            with self._lock:
                if placeholder in self._entries and not self._counts(placeholder)["files"]:
                    self._entries.remove(placeholder)  # made only to stand in: it goes again
                entry.name = self._free_name(entry.name)
                if entry.engine is not None:
                    entry.engine.name = entry.name
                self._entries.insert(min(place, len(self._entries)), entry)
                self._active = entry.name
            return f"Restored the collection “{entry.name}”."

        removed = self._to_trash(f"the collection “{entry.name}” ({_files(files)})", restore)
        removed.folder = entry.folder
        return removed

    def clear(self, name: str | None = None) -> Removed | None:
        """Remove every file of a collection (to the trash); None when it holds none."""
        with self._lock:
            entry = self._entry(name if name is not None else self._active)
            old = self.engine(entry.name)
            files = len(old.documents())
            if not files:
                return None
            entry.engine = self._make(entry.name)

        def restore() -> str:
            with self._lock:
                if entry not in self._entries:
                    raise ValueError(f"the collection “{entry.name}” is gone: restore it first")
                added = entry.engine.documents() if entry.engine is not None else []
                for doc in added:  # files added since the clear stay
                    if not old.index.has_doc(doc.doc_id):
                        for stale in old.index.doc_ids_for_source(doc.source):
                            old.remove(stale)
                        copy_document(entry.engine.index, doc, old)  # type: ignore[union-attr]
                old.name, entry.engine = entry.name, old
            return f"Restored {_files(files)} of “{entry.name}”."

        return self._to_trash(f"{_files(files)} of “{entry.name}”", restore)

    def remove(self, doc_id: str, name: str | None = None) -> Removed:
        """Remove one file of a collection (to the trash). KeyError: no such file there."""
        with self._lock:
            entry = self._entry(name if name is not None else self._active)
            engine = self.engine(entry.name)
            index = engine.index
            if not index.has_doc(doc_id):
                raise KeyError(f"no file with id {doc_id!r} in “{entry.name}”")
            doc = index.docs[doc_id]
            ids = index.doc_chunk_ids(doc_id)
            kept = (doc, [index.chunks[i] for i in ids], index.vectors_of(ids))
            original = index.originals.get(doc_id)
            engine.remove(doc_id)

        def restore() -> str:
            if entry.engine is not engine or entry not in self._entries:
                raise ValueError(f"“{entry.name}” changed since: {doc.source} can't be put back")
            if engine.index.doc_ids_for_source(doc.source):
                raise ValueError(f"{doc.source} was added again since: nothing to undo")
            engine.add_document(*kept, original=original)
            return f"Restored {_base(doc.source)} to “{entry.name}”."

        return self._to_trash(f"{_base(doc.source)} from “{entry.name}”", restore)

    # --- the trash -----------------------------------------------------------------------

    @property
    def trash(self) -> list[Removed]:
        """What can still be put back, the latest last (expired removals are forgotten)."""
        with self._lock:
            now = self._clock()
            self._trash = [r for r in self._trash if r.expires > now]
            return list(self._trash)

    def undo(self, ticket: str | None = None) -> str:
        """Put back the removal `ticket` (the latest when None); what it did, in words.
        ValueError when there is nothing (left) to put back."""
        with self._lock:
            waiting = self.trash
            found = [r for r in waiting if ticket is None or r.ticket == ticket][-1:]
            if not found:
                minutes = f"{self.trash_seconds / 60:g} minutes"
                raise ValueError(
                    "nothing to undo" if ticket is None and not waiting else
                    f"that removal can no longer be undone (the trash keeps them {minutes})"
                )  # fmt: skip
            self._trash.remove(found[0])
            return found[0].restore()

    def _to_trash(self, what: str, restore: Callable[[], str]) -> Removed:
        removed = Removed(secrets.token_hex(8), what, self._clock() + self.trash_seconds, restore)
        with self._lock:
            self._trash.append(removed)
        return removed

    # --- searching and listing ------------------------------------------------------------

    def search(self, query: str, collections: Sequence[str] | None = None, **options: Any) -> Hits:
        """`Engine.search` over the named collections at once (the active one when None): their
        candidates are pooled and ranked together, and each hit says its collection."""
        engines = [self.engine(n) for n in dict.fromkeys(collections or [self._active])]
        return engines[0].search(query, also=engines[1:], **options)

    def documents(self, names: Sequence[str] | None = None) -> list[tuple[str, DocInfo]]:
        """(collection, document) for every document of the named collections (all when None)."""
        listed = names if names is not None else self.names()
        return [(n, d) for n in listed for d in self.engine(n).documents()]

    def loaded(self) -> list[Engine]:
        """The engines of the collections in memory now (those used since the library opened)."""
        with self._lock:
            return [e.engine for e in self._entries if e.engine is not None]

    def summary(self) -> list[dict[str, Any]]:
        """Each collection's name, files and chunks (read from disk for those not loaded)."""
        with self._lock:
            return [{"name": e.name, **self._counts(e)} for e in self._entries]

    def free(self) -> None:
        """Let go of every collection's memory (a server making room) and of the trash."""
        with self._lock:
            for entry in self._entries:
                if entry.engine is not None:
                    entry.engine.clear()
            self._trash = []

    # --- keeping on disk -----------------------------------------------------------------

    def save(self, folder: str | Path | None = None) -> Path:
        """Write what changed since the last save into `folder` (or the library's own): changed
        collections, then the list, then the removal of folders no collection names."""
        target = Path(folder).expanduser() if folder is not None else self.folder
        if target is None:
            raise ValueError("no folder given to save the library in")
        with self._lock:
            if target != self.folder or self._legacy:  # everything is written there
                for entry in self._entries:
                    self.engine(entry.name)
                    entry.saved = None
                self.folder = target
            for entry in self._entries:
                self._save_collection(target, entry)
            manifest = {
                "format": 1,
                "active": self._active,
                "collections": [
                    {"name": e.name, "folder": e.folder, "created": e.created}
                    for e in self._entries
                ],
            }
            write_atomic(target / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
            self._tidy(target)
        return target

    def empty(self) -> bool:
        """One collection with the default name, no file, nothing in the trash: nothing to keep."""
        with self._lock:
            only = self._entries[0] if len(self._entries) == 1 else None
            return bool(
                only
                and only.name == DEFAULT_NAME
                and not self._counts(only)["files"]
                and not self.trash
            )

    def _save_collection(self, folder: Path, entry: _Entry) -> None:
        engine = entry.engine
        if engine is None:  # not loaded: unchanged since it was read
            return
        docs = len(engine.documents())
        key = (id(engine), engine.index.changes if docs else 0, docs)
        if key == entry.saved:
            return
        if docs:
            engine.save(folder / entry.folder)
        else:
            shutil.rmtree(folder / entry.folder, ignore_errors=True)
        entry.saved = key

    def _tidy(self, folder: Path) -> None:
        """Delete the collection folders no entry names, and a library's old top-level index."""
        named = {e.folder for e in self._entries} | {r.folder for r in self.trash if r.folder}
        for item in folder.iterdir():
            if item.is_dir() and _FOLDER.fullmatch(item.name) and item.name not in named:
                shutil.rmtree(item, ignore_errors=True)
            elif self._legacy and _LEGACY.fullmatch(item.name):
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                elif item.name != "USED":
                    item.unlink(missing_ok=True)
        self._legacy = False

    def _read(self) -> None:
        """Take the collections listed in the folder (loaded on first use)."""
        folder = self.folder
        assert folder is not None
        manifest = folder / MANIFEST
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
                entries = [
                    _Entry(str(c["name"]), str(c["folder"]), float(c.get("created", 0)))
                    for c in data["collections"]
                ]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise CollectionError(f"{manifest} is damaged ({e})") from None
            entries = [e for e in entries if _FOLDER.fullmatch(e.folder)]  # never a path
            if entries:
                self._entries = entries
                names = [e.name for e in entries]
                self._active = data.get("active") if data.get("active") in names else names[0]
        elif current_version(folder) is not None:  # one index, saved before libraries
            self._entries[0].engine = None
            self._entries[0].saved = None
            self._legacy = True

    def _load(self, entry: _Entry) -> Engine:
        """A collection's engine from its folder (an empty one if it has none, or can't be read:
        then `problems` says why)."""
        where, engine = self._where(entry), None
        if where is not None and current_version(where) is not None:
            try:
                engine = copied(VectorIndex.load(where), self._new_engine)
                docs = len(engine.documents())
                entry.saved = None if self._legacy else (id(engine), engine.index.changes, docs)
            except CollectionError as e:
                self.problems.append(f"“{entry.name}” could not be opened: {e}")
                log.warning("collection %r not opened: %s", entry.name, e)
        if engine is None:
            engine = self._new_engine()
        engine.name, engine.room = entry.name, self._room
        return engine

    def _where(self, entry: _Entry) -> Path | None:
        """The folder of a collection's index (the library's own for an index from before)."""
        if self.folder is None:
            return None
        return (
            self.folder
            if self._legacy and entry is self._entries[0]
            else self.folder / entry.folder
        )

    def _counts(self, entry: _Entry) -> dict[str, int]:
        if entry.engine is not None:
            docs = entry.engine.documents()
            return {"files": len(docs), "chunks": sum(d.chunks for d in docs)}
        where = self._where(entry)
        version = current_version(where) if where is not None else None
        try:
            found = json.loads((version / "manifest.json").read_text()) if version else {}
        except (OSError, ValueError):
            found = {}
        return {"files": int(found.get("documents", 0)), "chunks": int(found.get("chunks", 0))}

    # --- helpers -------------------------------------------------------------------------

    def _make(self, name: str) -> Engine:
        engine = self._new_engine()
        engine.name, engine.room = name, self._room
        return engine

    def _find(self, name: str) -> _Entry | None:
        exact = [e for e in self._entries if e.name == name]
        folded = [e for e in self._entries if e.name.casefold() == str(name).strip().casefold()]
        return (exact or folded or [None])[0]

    def _entry(self, name: str) -> _Entry:
        entry = self._find(name)
        if entry is None:
            listed = ", ".join(f"“{n}”" for n in self.names())
            raise ValueError(f"no collection named “{name}”; there are: {listed}")
        return entry

    def _check_name(self, name: str, renaming: _Entry | None = None) -> str:
        """`name` trimmed, or ValueError saying what is wrong with it."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a collection needs a name: type one")
        name = " ".join(name.split())
        if len(name) > MAX_NAME:
            raise ValueError(
                f"a collection's name is at most {MAX_NAME} characters, got {len(name)}"
            )
        if any(unicodedata.category(c).startswith("C") for c in name):
            raise ValueError(f"a collection's name can't hold control characters: {name!r}")
        taken = self._find(name)
        if taken is not None and taken is not renaming:
            raise ValueError(f"there is already a collection named “{taken.name}”")
        return name

    def _free_name(self, name: str) -> str:
        """`name`, or `name (restored)`, `name (restored 2)`... when it is taken meanwhile."""
        candidate, n = name, 1
        while self._find(candidate) is not None:
            candidate = f"{name} (restored{f' {n}' if n > 1 else ''})"
            n += 1
        return candidate

    def _room(self, files: int, chunks: int) -> None:
        """Refuse a batch that takes the library's collections together past the limits that one
        collection has (max_files, max_chunks): several collections don't multiply them."""
        loaded = [e.engine for e in self._entries if e.engine is not None]
        settings = loaded[0].settings if loaded else None
        if settings is None or (settings.max_files is None and settings.max_chunks is None):
            return
        counts = [self._counts(e) for e in self._entries]
        held_files, held_chunks = sum(c["files"] for c in counts), sum(c["chunks"] for c in counts)
        if settings.max_files is not None and held_files + files > settings.max_files:
            raise IngestError(
                "",
                f"not added: your collections hold {held_files} files together "
                f"({settings.max_files} at most)",
            )
        if settings.max_chunks is not None and held_chunks + chunks > settings.max_chunks:
            raise IngestError(
                "",
                f"not added: it would take your collections past {settings.max_chunks:,} chunks "
                "together",
            )


def recorded_model(folder: str | Path) -> tuple[str, int | None] | None:
    """(embedding model, MRL dimension) the first collection kept in `folder` was built with
    (read from its manifest, nothing loaded); None when none records one."""
    folder = Path(folder)
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["collections"]
        places = [folder / str(c["folder"]) for c in listed if _FOLDER.fullmatch(str(c["folder"]))]
    except (OSError, ValueError, KeyError, TypeError):
        places = [folder]  # an index folder from before libraries, or nothing
    for place in places:
        version = current_version(place)
        try:
            found = json.loads((version / "manifest.json").read_text()) if version else {}
        except (OSError, ValueError):
            continue
        if found.get("embed_model"):
            return str(found["embed_model"]), found.get("embed_dim")
    return None


def shared_models(settings: Settings) -> Callable[[], Engine]:
    """An engine factory whose engines share one embedder and one reranker, each loaded when the
    first engine needs it (a library's collections search with the same models)."""
    lead: list[Engine] = []

    def new_engine() -> Engine:
        if not lead:
            lead.append(Engine(settings))
            return lead[0]
        return Engine(settings, embedder=lead[0].embedder, reranker=lambda: lead[0].reranker)

    return new_engine


def copied(index: Collection, new_engine: Callable[[], Engine]) -> Engine:
    """A new engine (from `new_engine`) holding a copy of `index`'s documents, chunks, vectors and
    kept originals; an index of another model raises CollectionError before anything is copied."""
    engine = new_engine()
    embedder = engine.embedder
    index.check_model(embedder.model_name, embedder.dim, "the saved collection")
    for doc in list(index.docs.values()):
        copy_document(index, doc, engine)
    return engine


def copy_document(index: Collection, doc: DocInfo, engine: Engine) -> None:
    """Copy one document of `index` (its chunks, vectors and original) into `engine`."""
    ids = index.doc_chunk_ids(doc.doc_id)
    chunks = [index.chunks[i] for i in ids]
    original = index.originals.get(doc.doc_id)
    engine.add_document(DocInfo(**vars(doc)), chunks, index.vectors_of(ids), original=original)


def _files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def _base(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]
