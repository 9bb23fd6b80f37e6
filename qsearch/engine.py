"""Engine: files in (ingest -> chunk -> embed -> index), hits out (embed -> search -> rerank).

The one object the CLI, the web app and Python users drive. Models load lazily, once;
the reranker only when first asked for. Index changes and searches take a lock, so
one engine can serve several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import ingest
from .chunk import chunk_document
from .config import SEARCH_MODES, VERSION, Settings
from .embed import Embedder
from .fusion import fuse
from .index import DocInfo, IndexFolderError, VectorIndex
from .lexical import LexicalIndex
from .rerank import Reranker
from .types import AddReport, Chunk, Document, FileReport, Hit, Hits

Progress = Callable[[str, int, int], None]  # (stage, done, total): stage "reading" or "embedding"
HYBRID_DEPTH = 100  # candidates each ranking contributes to fusion


class Engine:
    """A searchable collection of documents, with the models that index and search it."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None,
                 reranker: Reranker | Callable[[], Reranker] | None = None, index: VectorIndex | None = None,
                 index_dir: str | Path | None = None):
        """`reranker` may be a zero-argument loader, called on first use (the app shares one)."""
        self.settings = settings or Settings.from_env()
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self._embedder = embedder
        self._reranker = reranker
        self._index = index
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()
        self._lexical = LexicalIndex()
        self._lexical_changes = -1
        if index is not None and embedder is not None:
            index.check_model(embedder.model_name, embedder.dim, self.index_dir or "the index")

    @classmethod
    def open(cls, index_dir: str | Path, settings: Settings | None = None, *,
             follow_index_model: bool = False, **kwargs: Any) -> Engine:
        """An engine over the index saved in `index_dir` (empty if there is none yet).

        With `follow_index_model`, the embedding model and dimension are the ones the
        index was built with; otherwise they must match the settings.
        """
        settings = settings or Settings.from_env()
        index = VectorIndex.load(index_dir) if (Path(index_dir) / "CURRENT").is_file() else None
        if index is not None and follow_index_model and index.meta.get("embed_model"):
            settings = settings.with_(embed_model=index.meta["embed_model"], embed_dim=index.meta.get("embed_dim"))
        engine = cls(settings, index=index, index_dir=index_dir, **kwargs)
        if index is not None and engine._embedder is None:
            built_with = index.meta.get("embed_model")
            if built_with and built_with != settings.embed_model:  # fail before loading a model
                index.check_model(settings.embed_model, index.dim, index_dir)
        return engine

    # --- models, loaded on first use -----------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        with self._model_lock:
            if self._embedder is None:
                self._embedder = make_embedder(self.settings)
                if self._index is not None:
                    self._index.check_model(self._embedder.model_name, self._embedder.dim,
                                            self.index_dir or "the index")
            return self._embedder

    @property
    def reranker(self) -> Reranker:
        with self._model_lock:
            if self._reranker is None:
                self._reranker = make_reranker(self.settings)
            elif not isinstance(self._reranker, Reranker):
                self._reranker = self._reranker()
            return self._reranker

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            embedder = self.embedder
            with self._lock:  # threads racing here must end up with one index
                if self._index is None:
                    s = self.settings
                    self._index = VectorIndex(embedder.dim, s.index_kind, meta={
                        "embed_model": embedder.model_name, "embed_dim": s.embed_dim,
                        "chunk_tokens": s.chunk_tokens, "chunk_overlap": s.chunk_overlap,
                        "versions": _versions(),
                    })
        return self._index

    # --- adding and removing -------------------------------------------------------------

    def add_files(self, paths: Iterable[str | Path], progress: Progress | None = None, *,
                  names: Sequence[str] | None = None) -> AddReport:
        """Index files (folders are searched recursively). One bad file never stops the others.

        `names` gives the source shown for each path (e.g. an upload's original file name).
        An unchanged file (same content) is skipped; a changed file replaces its old version.
        """
        started = time.perf_counter()
        files = ingest.find_files(paths) if names is None else [Path(p) for p in paths]
        sources = list(names) if names is not None else [str(p) for p in files]
        if len(sources) != len(files):
            raise ValueError(f"got {len(files)} paths but {len(sources)} names")
        s = self.settings
        limits = ingest.Limits(s.max_file_bytes, s.max_pages, s.max_chars, max_seconds=s.max_seconds_per_file)
        reports: list[FileReport] = []
        new_docs: list[tuple[Document, list[Chunk], FileReport]] = []
        index, embedder = self.index, self.embedder
        max_tokens = min(self.settings.chunk_tokens, embedder.max_tokens)
        overlap = min(self.settings.chunk_overlap, max_tokens // 4)
        seen: set[str] = set()
        for i, (path, source) in enumerate(zip(files, sources)):
            report = FileReport(path=source, status="error")
            reports.append(report)
            try:
                source, data = ingest.read(path, limits, name=source)
                doc_id = ingest.content_hash(data)
                report.doc_id = doc_id
                if doc_id in seen or index.has_doc(doc_id):
                    report.status, report.chunks = "unchanged", getattr(index.docs.get(doc_id), "chunks", 0)
                    report.pages = getattr(index.docs.get(doc_id), "pages", None)
                else:
                    self._check_room(len(new_docs))
                    doc = ingest.parse(source, data, limits)
                    chunks = chunk_document(doc, embedder.tokenizer, max_tokens, overlap)
                    self._check_room(len(new_docs), sum(len(c) for _, c, _ in new_docs) + len(chunks))
                    report.status, report.chunks, report.pages = "indexed", len(chunks), doc.n_pages
                    new_docs.append((doc, chunks, report))
                seen.add(doc_id)
            except ingest.IngestError as e:
                report.error = e.reason
            except Exception as e:  # noqa: BLE001 - a loader bug must not end the batch either
                report.error = f"unexpected error while reading: {type(e).__name__}: {e}"
            if progress:
                progress("reading", i + 1, len(files))

        all_chunks = [c for _, chunks, _ in new_docs for c in chunks]
        vectors = self._embed_unique([c.text for c in all_chunks], progress)
        with self._lock:
            row = 0
            for doc, chunks, report in new_docs:
                if index.has_doc(doc.doc_id):  # added meanwhile by another thread
                    report.status = "unchanged"
                    row += len(chunks)
                    continue
                for old in index.doc_ids_for_source(doc.source):
                    index.remove(old)
                    report.status = "replaced"
                index.add(DocInfo(doc.doc_id, doc.source, len(chunks), doc.n_pages), chunks,
                          vectors[row:row + len(chunks)])
                row += len(chunks)
        return AddReport(reports, time.perf_counter() - started)

    def _check_room(self, new_files: int, new_chunks: int = 0) -> None:
        """Refuse a file that would take the collection past its limits (settings.max_files/max_chunks)."""
        s = self.settings
        if s.max_files is not None and len(self.index.docs) + new_files >= s.max_files:
            raise ingest.IngestError("", f"not added: the collection is full ({s.max_files} files at most)")
        if s.max_chunks is not None and len(self.index) + new_chunks > s.max_chunks:
            raise ingest.IngestError("", f"not added: it would take the collection past {s.max_chunks:,} chunks")

    def remove(self, doc_id: str) -> int:
        """Remove one document by id; returns how many chunks it had."""
        with self._lock:
            return self.index.remove(doc_id)

    def clear(self) -> None:
        with self._lock:
            for doc_id in list(self.index.docs):
                self.index.remove(doc_id)

    def documents(self) -> list[DocInfo]:
        return list(self._index.docs.values()) if self._index is not None else []

    def save(self, index_dir: str | Path | None = None) -> Path:
        folder = Path(index_dir) if index_dir is not None else self.index_dir
        if folder is None:
            raise ValueError("no index folder given: pass index_dir to save() or Engine.open()")
        with self._lock:
            return self.index.save(folder)

    # --- searching -----------------------------------------------------------------------

    def search(self, query: str, k: int = 10, rerank: bool = False, rerank_candidates: int = 50,
               instruction: str | None = None, mode: str | None = None, also: Sequence[Engine] = ()) -> Hits:
        """The k best chunks for `query`.

        `mode` is "hybrid" (dense and BM25 rankings fused), "dense" or "lexical"; default
        from the settings. With `rerank`, the top `rerank_candidates` are rescored. `also`
        names other collections (e.g. a shared read-only index) searched alongside this
        one with the same embedder; their candidates are merged by score before reranking.
        """
        if not query or not query.strip():
            raise ValueError("empty query: type something to search for")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        mode = mode or self.settings.search_mode
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
        instruction = instruction.strip() if instruction and instruction.strip() else None
        engines = [e for e in (self, *also) if e._index is not None and len(e._index)]
        if not engines:
            return Hits([], {})
        depth = max(k, rerank_candidates if rerank else 0)
        timings: dict[str, float] = {}
        vector = None
        if mode != "lexical":
            embedder = self.embedder  # loaded (once) before the clock starts
            for other in engines:
                other.index.check_model(embedder.model_name, embedder.dim, other.index_dir or "a collection")
            t = time.perf_counter()
            vector = embedder.encode([query], is_query=True, instruction=instruction)
            timings["embed_ms"] = _ms_since(t)
        t = time.perf_counter()
        candidates = [c for e in engines for c in e._candidates(query, vector, depth, mode)]
        candidates.sort(key=lambda c: -c[0])  # stable: within a collection, its own order holds
        candidates = candidates[:depth]
        timings["search_ms"] = _ms_since(t)
        rerank_scores: list[float | None] = [None] * len(candidates)
        ranked = list(range(len(candidates)))
        if rerank and candidates:
            head = ranked[:rerank_candidates]
            reranker = self.reranker
            t = time.perf_counter()
            values = reranker.score(query, [candidates[i][3].text for i in head], instruction=instruction)
            for i, v in zip(head, values):
                rerank_scores[i] = float(v)
            ranked = sorted(head, key=lambda i: (-rerank_scores[i], i))
            timings["rerank_ms"] = _ms_since(t)
        hits = [_hit(rank, candidates[i][3], *candidates[i][:3], rerank_scores[i])
                for rank, i in enumerate(ranked[:k], 1)]
        return Hits(hits, timings)

    def _candidates(self, query: str, vector: np.ndarray | None, depth: int,
                    mode: str) -> list[tuple[float, float | None, float | None, Chunk]]:
        """(score, dense score, lexical score, chunk) of this collection's best `depth` chunks."""
        width = max(depth, HYBRID_DEPTH) if mode == "hybrid" else depth
        dense = lexical = None
        with self._lock:
            if mode != "lexical":
                scores, rows = self.index.search(vector, width)
                dense = (rows[0][rows[0] >= 0], scores[0][rows[0] >= 0])
            if mode != "dense":
                lexical_scores, lexical_rows = self._lexical_index().search(query, width)
                lexical = (lexical_rows, lexical_scores)
            order, fused = fuse(mode, dense, lexical, self.settings.fusion, self.settings.dense_weight)
            chunks = [self.index.chunks[r] for r in order[:depth]]
        dense_of = dict(zip(*dense)) if dense is not None else {}
        lexical_of = dict(zip(*lexical)) if lexical is not None else {}
        return [(fused[i], dense_of.get(r), lexical_of.get(r), chunk)
                for i, (r, chunk) in enumerate(zip(order, chunks))]

    def _lexical_index(self) -> LexicalIndex:
        """The BM25 index over the same rows as the dense index, rebuilt after any change."""
        with self._lock:
            if self._lexical_changes != self.index.changes or len(self._lexical) != len(self.index):
                self._lexical.build([c.text for c in self.index.chunks])
                self._lexical_changes = self.index.changes
            return self._lexical

    def _embed_unique(self, texts: list[str], progress: Progress | None) -> np.ndarray:
        """Embed each distinct text once; duplicates share the vector."""
        unique = list(dict.fromkeys(texts))
        where = {t: i for i, t in enumerate(unique)}
        report = (lambda done, total: progress("embedding", done, total)) if progress else None
        vectors = self.embedder.encode(unique, progress=report) if unique else \
            np.zeros((0, self.embedder.dim), np.float32)
        return vectors[[where[t] for t in texts]] if texts else vectors


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name: a remote server (embed_url), or a model loaded here."""
    if settings.embed_url:
        from .remote import RemoteEmbedder

        return RemoteEmbedder(settings.embed_url, api_key=settings.remote_api_key, dim=settings.embed_dim)
    from .embed import load_embedder

    return load_embedder(settings.embed_model, device=settings.device, dim=settings.embed_dim,
                         max_batch_tokens=settings.max_batch_tokens)


def make_reranker(settings: Settings) -> Reranker:
    """The reranker the settings name: a remote /v1/rerank server (rerank_url), or a model loaded here."""
    if settings.rerank_url:
        from .remote import RemoteReranker

        return RemoteReranker(settings.rerank_url, api_key=settings.remote_api_key)
    from .rerank import load_reranker

    return load_reranker(settings.rerank_model, device=settings.device, max_batch_tokens=settings.max_batch_tokens)


def _hit(rank: int, chunk: Chunk, score: float, dense: float | None, lexical: float | None,
         rerank_score: float | None) -> Hit:
    return Hit(rank=rank, score=float(score), rerank_score=rerank_score, source=chunk.source, page=chunk.page,
               page_end=chunk.page_end, text=chunk.text, start=chunk.start, end=chunk.end, doc_id=chunk.doc_id,
               dense_score=None if dense is None else float(dense),
               lexical_score=None if lexical is None else float(lexical))


def _ms_since(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"qsearch": VERSION}
    for package in ("torch", "transformers"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


__all__ = ["Engine", "IndexFolderError", "Progress", "make_embedder", "make_reranker"]
