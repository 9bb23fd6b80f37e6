"""Engine: files in (read -> chunk -> embed -> index), hits out (embed -> retrieval.retrieve).

The one object the CLI, the web app and Python users drive. Models load lazily, once;
the reranker only when first asked for. Reading and chunking need no model and take no
model lock; only embedding does. Index changes and searches take the engine's lock, so
one engine can serve several threads; a batch of files changes the index at its very end,
so a cancelled or failed batch leaves the collection as it was.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .config import Settings
from .documents.pool import Cancelled, Parsed, check_stop, read_files
from .indexing import Admission, Progress, add_parsed, check_room, embed_unique, new_folder_index
from .models.choose import make_embedder, make_reranker, make_reranker_or_fallback
from .models.embedder import Embedder
from .models.reranker import Reranker
from .search.cache import SearchCache
from .search.retrieval import Ranking, retrieve
from .search.within import Since, Within
from .store import gpu
from .store.base import Collection, CollectionError, DocInfo, IndexFolderError
from .store.vectors import VectorIndex
from .types import AddReport, Chunk, FileReport, Hits


class Engine:
    """A searchable collection of documents, with the models that index and search it."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        reranker: Reranker | Callable[[], Reranker] | None = None,
        index: Collection | None = None,
        index_dir: str | Path | None = None,
        admit: Admission | None = None,
        name: str | None = None,
        room: Callable[[int, int], None] | None = None,
    ):
        """`reranker` may be a zero-argument loader, called on first use (the app shares one);
        `admit` may refuse a file before chunking or before embedding (a server's memory).
        `name` labels the collection's hits (a library's collection name); `room(files,
        chunks)` may refuse a batch that takes a group of collections past its limits."""
        self.settings = settings or Settings.from_env()
        self.name, self.room = name, room
        gpu.configure(self.settings.device, self.settings.faiss_gpu_min_vectors)
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self._embedder = embedder
        self._reranker = reranker
        self._admit = admit
        self._index = index
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()
        self._cache = SearchCache()  # instant repeats: query vectors, candidates, rerank scores
        if index is not None and embedder is not None:
            index.check_model(embedder.model_name, embedder.dim, self.index_dir or "the index")

    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        settings: Settings | None = None,
        *,
        follow_index_model: bool = False,
        **kwargs: Any,
    ) -> Engine:
        """An engine over the index saved in `index_dir` (empty if there is none yet).

        With `follow_index_model`, the embedding model and dimension are the ones the
        index was built with; otherwise they must match the settings.
        """
        settings = settings or Settings.from_env()
        index = VectorIndex.load(index_dir) if (Path(index_dir) / "CURRENT").is_file() else None
        if index is not None and follow_index_model and index.meta.get("embed_model"):
            settings = settings.with_(
                embed_model=index.meta["embed_model"], embed_dim=index.meta.get("embed_dim")
            )
        engine = cls(settings, index=index, index_dir=index_dir, **kwargs)
        if index is not None and engine._embedder is None:
            built_with = index.meta.get("embed_model")
            if built_with and built_with != settings.embed_model:  # fail before loading a model
                index.check_model(settings.embed_model, index.dim, index_dir)
        return engine

    @classmethod
    def open_milvus(
        cls,
        uri: str,
        collection: str,
        settings: Settings | None = None,
        *,
        create: bool = False,
        follow_index_model: bool = False,
        **kwargs: Any,
    ) -> Engine:
        """An engine over a Milvus collection (`uri`: a Milvus Lite file or `http://host:19530`).

        With `create`, a missing collection is made for the embedder's model and dimension;
        without it, a missing collection is an error naming the URI."""
        from .store.milvus import MilvusIndex, connect

        settings = settings or Settings.from_env()
        client = connect(uri, settings.milvus_token)
        if client.has_collection(collection) or not create:
            index = MilvusIndex(client, collection, uri=uri)
            if follow_index_model and index.meta.get("embed_model"):
                settings = settings.with_(embed_model=index.meta["embed_model"])
            return cls(settings, index=index, **kwargs)
        engine = cls(settings, **kwargs)
        embedder = engine.embedder
        engine._index = MilvusIndex(
            client, collection, uri=uri, dim=embedder.dim, meta={"embed_model": embedder.model_name}
        )
        return engine

    # --- models, loaded on first use -----------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        with self._model_lock:
            if self._embedder is None:
                self._embedder = make_embedder(self.settings)
                if self._index is not None:
                    self._index.check_model(
                        self._embedder.model_name, self._embedder.dim, self.index_dir or "the index"
                    )
            return self._embedder

    @property
    def reranker(self) -> Reranker:
        """Loaded on first use; the app's fallback, with a warning, when it can't be (choose.py)."""
        with self._model_lock:
            if self._reranker is None:
                self._reranker = make_reranker_or_fallback(self.settings)
            elif not isinstance(self._reranker, Reranker):
                self._reranker = self._reranker()
            return self._reranker

    @property
    def index(self) -> Collection:
        if self._index is None:
            embedder = self.embedder
            with self._lock:  # threads racing here must end up with one index
                if self._index is None:
                    self._index = new_folder_index(embedder, self.settings)
        return self._index

    # --- adding and removing -------------------------------------------------------------

    def add_files(
        self,
        paths: Iterable[str | Path],
        progress: Progress | None = None,
        *,
        names: Sequence[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> AddReport:
        """Index files (folders are searched recursively). One bad file never stops the others.

        `names` gives the source shown for each path (e.g. an upload's original file name).
        An unchanged file (same content) is skipped; a changed file replaces its old version.
        `should_stop` is asked between files and between embedding windows; when it answers
        True, Cancelled is raised and the collection is left as it was.
        """
        started = time.perf_counter()
        parsed, reports = self.read_files(paths, progress, names=names, should_stop=should_stop)
        self.embed_and_add(parsed, progress, should_stop=should_stop)
        return AddReport(reports, time.perf_counter() - started)

    def read_files(
        self,
        paths: Iterable[str | Path],
        progress: Progress | None = None,
        *,
        names: Sequence[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[list[Parsed], list[FileReport]]:
        """Read and chunk files (no model work): the new documents, and one report per file."""
        return read_files(
            paths,
            self.settings,
            self.index,
            self.embedder,
            progress=progress,
            names=names,
            should_stop=should_stop,
            check_room=self._check_room,
        )

    def embed_and_add(
        self,
        parsed: Sequence[Parsed],
        progress: Progress | None = None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Embed the chunks of parsed files, then add them all at once, replacing older versions."""
        texts = [c.text for p in parsed for c in p.chunks]
        vectors = embed_unique(self.embedder, texts, progress, should_stop)
        check_stop(should_stop)
        index = self.index
        with self._lock:
            add_parsed(index, parsed, vectors)

    def _check_room(
        self, new_files: int, new_chunks: int = 0, new: Sequence[Chunk] = (), text: str = ""
    ) -> None:
        """Refuse a file that would take the collection past its limits, or that the server's
        memory can't take (`admit`: its `text` before chunking, its chunks `new` after)."""
        check_room(self.index, self.settings, new_files, new_chunks)
        if self.room is not None:
            self.room(new_files + 1, new_chunks)
        if self._admit is not None and text:
            self._admit.admit_text(len(text), self.embedder.dim)
        if self._admit is not None and new:
            self._admit.admit(new, self.embedder.dim)

    def add_document(
        self,
        doc: DocInfo,
        chunks: Sequence[Chunk],
        vectors: Any,
        original: bytes | None = None,
    ) -> None:
        """Add one document already embedded (a collection copied, a removal undone): its chunks
        and their L2-normalised vectors; a doc_id already here is a ValueError."""
        index = self.index
        with self._lock:
            index.add(doc, chunks, vectors, original=original)

    def remove(self, doc_id: str) -> int:
        """Remove one document by id; returns how many chunks it had."""
        with self._lock:
            return self.index.remove(doc_id)

    def clear(self) -> None:
        """Remove every document, in O(1): the index is replaced."""
        with self._lock:
            if self._index is not None:
                self._index.clear()

    def documents(self) -> list[DocInfo]:
        return list(self._index.docs.values()) if self._index is not None else []

    def save(self, index_dir: str | Path | None = None) -> Path | None:
        """Make the collection durable: a folder index is saved atomically into `index_dir` (or
        the folder it was opened from); a server's collection flushes what was added."""
        with self._lock:
            return self.index.save(index_dir if index_dir is not None else self.index_dir)

    # --- searching -----------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        rerank: bool = False,
        rerank_candidates: int = 50,
        instruction: str | None = None,
        mode: str | None = None,
        also: Sequence[Engine] = (),
        min_score: float | None = None,
        *,
        files: Sequence[str] | str | None = None,
        file_types: Sequence[str] | str | None = None,
        since: Since = None,
    ) -> Hits:
        """The k best chunks for `query`.

        `mode` is "hybrid" (dense and BM25 fused), "dense" or "lexical"; default from the
        settings. With `rerank`, the top `rerank_candidates` are rescored. `also` names other
        collections (e.g. a shared read-only index) searched alongside this one with the
        same embedder; their candidates are merged by score before reranking. A hit's score is
        its overall relevance (0..1, absolute); below `min_score` (default: settings) it is weak.
        `files`, `file_types` and `since` narrow the search to those documents before
        ranking (search/within.py says how each is written); a file that names no document
        of the collections searched is a ValueError that lists the ones there are.
        """
        if not query or not query.strip():
            raise ValueError("empty query: type something to search for")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        ranking = Ranking.from_settings(self.settings, mode)
        instruction = instruction.strip() if instruction and instruction.strip() else None
        engines = [e for e in (self, *also) if e._index is not None and len(e._index)]
        scopes = self._scopes(engines, Within.of(files, file_types, since))
        if not engines or not any(s is None or s for s in scopes):
            return Hits([], {})
        vector, embed_ms, scale = None, None, None
        if ranking.mode != "lexical":
            embedder = self.embedder  # loaded (once) before the clock starts
            for other in engines:
                other.index.check_model(
                    embedder.model_name, embedder.dim, other.index_dir or "a collection"
                )
            t = time.perf_counter()
            vector = self._cache.query_vector(embedder, query, instruction)
            embed_ms = 1000 * (time.perf_counter() - t)
            scale = self._cache.scale(embedder, instruction)
        with self._lock:
            hits = retrieve(
                [e.index for e in engines],
                query,
                vector,
                k=k,
                ranking=ranking,
                reranker=self.reranker if rerank else None,
                rerank_candidates=rerank_candidates,
                instruction=instruction,
                cache=self._cache,
                within=scopes,
                scale=scale,
                min_score=self.settings.min_score if min_score is None else min_score,
            )
        if embed_ms is not None:
            hits.timings_ms = {"embed_ms": embed_ms, **hits.timings_ms}
        return _labelled(hits, engines)

    @staticmethod
    def _scopes(engines: Sequence[Engine], within: Within | None) -> list[frozenset[str] | None]:
        """For each engine, the doc ids `within` lets through (None: no filter); ValueError for a
        file that names no document in any of them."""
        if within is None:
            return [None] * len(engines)
        docs = [list(e.index.docs.values()) for e in engines]
        unknown = within.unknown_files(d for listed in docs for d in listed)
        if unknown:
            names = sorted({Path(d.source).name for listed in docs for d in listed})
            shown = ", ".join(names[:20]) + (
                f" and {len(names) - 20} more" if len(names) > 20 else ""
            )
            raise ValueError(
                f"no file named {', '.join(map(repr, unknown))} in the collection(s) searched; "
                f"they hold: {shown or 'nothing'}"
            )
        return [within.doc_ids(listed) for listed in docs]


def _labelled(hits: Hits, engines: Sequence[Engine]) -> Hits:
    """`hits` with the name of the collection each came from (where the collections are named)."""
    named = [e for e in engines if e.name]
    if not named or not hits:
        return hits
    if len(engines) == 1:
        owner = {h.doc_id: engines[0].name for h in hits}
    else:
        owner = {}
        for h in hits:
            owner.setdefault(
                h.doc_id, next((e.name for e in engines if e.index.has_doc(h.doc_id)), None)
            )
    return Hits(
        [dataclasses.replace(h, collection=owner.get(h.doc_id)) for h in hits],
        hits.timings_ms,
        min_score=hits.min_score,
    )


__all__ = ["Cancelled", "CollectionError", "Engine", "IndexFolderError", "Progress"]
__all__ += ["make_embedder", "make_reranker"]
