"""MilvusIndex: a collection kept in Milvus, for corpora that outgrow one machine's folder.

Written once against pymilvus' `MilvusClient`, so the same code runs on Milvus Lite (a `.db`
file), a Milvus Standalone or Distributed server (`http://host:19530`) and Zilliz Cloud.
It implements the collection contract (`base.py`); keyword search is Milvus' own BM25
function over the chunk text, while fusion, rerank and the score breakdown stay qsearch's,
so both backends rank and explain alike.

Stored per chunk: the vector, the text, source, page span, offsets, OCR flag, "where" and the
document id (the file's content hash); per document, its `DocInfo`, in `<name>_docs`; per
source, its doc ids, in `<name>_sources` (milvus_layout.py): a changed file's older version
is found by primary key, at the same cost in a collection of any size.
Adds are idempotent and ordered: the source entry first, then chunk rows upserted under
deterministic ids, the document row last, so a retried add never duplicates rows, and
chunks whose document has no row (an add or remove cut short) are left out of results and
deleted.
The embedding model and dimension are collection properties: an embedder of another model
or dimension is refused, as with the folder index.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence, Set
from typing import Any

import numpy as np

from ..types import Chunk
from .base import NO_KEYWORDS, Collection, CollectionError, DocInfo, KeywordHits
from .milvus_layout import Sources, create
from .milvus_rows import (
    CHUNK_FIELDS,
    PAGE,
    Chunks,
    Docs,
    chunk_id,
    chunk_row,
    doc_row,
    pages,
    quoted,
    to_chunk,
)

TOP_K = 16_384  # the most results Milvus returns for one search


def connect(uri: str, token: str | None = None, timeout: float = 10.0) -> Any:
    """A MilvusClient for `uri` (a `.db` path or `http://host:port`), or a one-line error."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise CollectionError(
            f"--milvus-uri {uri} needs pymilvus, which is optional: "
            "pip install -r requirements-milvus.txt"
        ) from None
    if uri.endswith(".db") and importlib.util.find_spec("milvus_lite") is None:
        raise CollectionError(
            f"a local Milvus Lite file ({uri}) needs milvus-lite: pip install -r "
            "requirements-milvus.txt; on Linux x86_64 then also pip install --no-deps milvus-lite "
            "(faiss-gpu provides the faiss it needs; its faiss-cpu would overwrite it)"
        )
    try:
        return MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except Exception as e:  # noqa: BLE001 - refused, unresolvable, bad token: one message
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CollectionError(f"can't reach Milvus at {uri}: {reason}") from None


class MilvusIndex(Collection):
    """Chunks and vectors in a Milvus collection, documents in `<name>_docs`."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        uri: str = "",
        dim: int | None = None,
        meta: dict[str, Any] | None = None,
    ):
        """Open collection `name`, creating it when `dim` is given and it doesn't exist yet."""
        self.client, self.name, self.uri = client, name, uri or "Milvus"
        self.docs_name = f"{name}_docs"
        if not client.has_collection(name):
            if dim is None:
                raise CollectionError(
                    f"{self.uri} has no collection {name!r}: build it with `python -m qsearch "
                    f"index --milvus {self.uri} --collection {name} PATH...`"
                )
            create(client, name, dim, str((meta or {}).get("embed_model") or ""))
        made_before_the_map = not client.has_collection(f"{name}_sources")
        self.sources = None if made_before_the_map else Sources(client, name)
        for collection in (name, self.docs_name, *([self.sources.name] if self.sources else [])):
            client.load_collection(collection)  # reopened after a restart, it starts released
        properties = client.describe_collection(name).get("properties", {})
        self.dim = int(properties.get("qsearch.dim", dim or 0))
        self.meta: dict[str, Any] = {
            "embed_model": properties.get("qsearch.embed_model"),
            "embed_dim": self.dim,
        }
        self.docs, self.chunks = Docs(self), Chunks(self)
        self.originals: dict[str, bytes] = {}  # page images need the file: the folder keeps it
        self.changes = 0

    @classmethod
    def load(cls, where: str, *, collection: str = "qsearch", token: str | None = None) -> Any:
        """The collection `collection` at `where` (a Milvus Lite file or a server's URI)."""
        return cls(connect(str(where), token), collection, uri=str(where))

    def __str__(self) -> str:
        return f"collection {self.name!r} at {self.uri}"

    # --- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.count_rows(self.name)

    def count_rows(self, collection: str, filter: str = "") -> int:
        rows = self.client.query(collection, filter=filter, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def has_doc(self, doc_id: str) -> bool:
        return bool(self.client.get(self.docs_name, ids=[doc_id], output_fields=["doc_id"]))

    def doc_ids_for_source(self, source: str) -> list[str]:
        return self.doc_ids_for_sources([source]).get(source, [])

    def doc_ids_for_sources(self, sources: Sequence[str]) -> dict[str, list[str]]:
        """Primary-key lookups in the source map, then of the documents: no scan."""
        if self.sources is None:  # a collection made before the map: a filtered query
            return {s: ids for s in dict.fromkeys(sources) if (ids := self._filtered(s))}
        listed = self.sources.get(sources, PAGE)
        named = sorted({d for ids in listed.values() for d in ids})
        alive = {
            r["doc_id"]
            for start in range(0, len(named), PAGE)
            for r in self.client.get(
                self.docs_name, ids=named[start : start + PAGE], output_fields=["doc_id"]
            )
        }
        found = {s: [d for d in ids if d in alive] for s, ids in listed.items()}
        return {s: ids for s, ids in found.items() if ids}

    def _filtered(self, source: str) -> list[str]:
        where = f'info["source"] == {quoted(source)}'
        return [r["doc_id"] for r in self.client.query(self.docs_name, filter=where)]

    def doc_chunk_ids(self, doc_id: str) -> list[int]:
        return [chunk_id(doc_id, n) for n in range(self.docs[doc_id].chunks)]

    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        rows = pages(self.client, self.name, f"doc_id == {quoted(doc_id)}", CHUNK_FIELDS)
        return sorted((to_chunk(r) for r in rows), key=lambda c: c.start)

    # --- changes -------------------------------------------------------------------------

    def add(
        self,
        doc: DocInfo,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        original: bytes | None = None,
    ) -> None:
        """Upsert one document's chunks, then its row: a retry after a failure adds nothing twice.

        A document already here is an error, as in the folder index."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(chunks)}, {self.dim}), got {vectors.shape}"
            )
        if self.has_doc(doc.doc_id):
            raise ValueError(
                f"document {doc.doc_id[:12]}… ({doc.source}) is already in the collection"
            )
        if doc.chunks != len(chunks):  # remove() deletes the chunks by their keys
            raise ValueError(f"DocInfo says {doc.chunks} chunks, but {len(chunks)} were given")
        if self.sources is not None:
            self.sources.link(doc.source, doc.doc_id)
        rows = [chunk_row(n, c, v) for n, (c, v) in enumerate(zip(chunks, vectors.tolist()))]
        for start in range(0, len(rows), PAGE):
            self.client.upsert(self.name, rows[start : start + PAGE])
        self.client.upsert(self.docs_name, [doc_row(doc)])  # last: now its chunks count
        self.changes += 1

    def remove(self, doc_id: str) -> int:
        """Remove the document's row first (its chunks stop counting), its chunks, its source."""
        doc = self.docs.get(doc_id)
        if doc is None:
            raise KeyError(f"no document with id {doc_id!r} in the collection")
        self.client.delete(self.docs_name, ids=[doc_id])
        ids = [chunk_id(doc_id, n) for n in range(doc.chunks)]  # by key: no scan
        for start in range(0, len(ids), PAGE):
            self.client.delete(self.name, ids=ids[start : start + PAGE])
        if self.sources is not None:
            self.sources.unlink(doc.source, doc_id)
        self.chunks.forget()
        self.changes += 1
        return doc.chunks

    def clear(self) -> None:
        self.client.delete(self.docs_name, filter='doc_id != ""')
        self.client.delete(self.name, filter="id >= 0")
        if self.sources is not None:
            self.sources.clear()
        self.chunks.forget()
        self.changes += 1

    def _orphans(self, doc_ids: set[str]) -> set[str]:
        """Which of `doc_ids` have no document row (an add or remove cut short): their chunks go."""
        if not doc_ids:
            return set()
        found = self.client.get(self.docs_name, ids=sorted(doc_ids), output_fields=["doc_id"])
        orphans = doc_ids - {r["doc_id"] for r in found}
        if orphans:
            listed = ", ".join(map(quoted, sorted(orphans)))
            self.client.delete(self.name, filter=f"doc_id in [{listed}]")
        return orphans

    # --- search --------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, within: Set[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest chunks by inner product, best first (exact: FLAT);
        `within` (doc ids) is a filter expression Milvus applies before ranking."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"expected query vectors of shape (n, {self.dim}), got {queries.shape}"
            )
        if int(k) <= 0 or (within is not None and not within):
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        answers = self._answers(queries.tolist(), "vector", "IP", k, within)
        width = max((len(a) for a in answers), default=0)
        scores = np.full((len(queries), width), -np.inf, np.float32)
        ids = np.full((len(queries), width), -1, np.int64)
        for q, answer in enumerate(answers):
            for r, hit in enumerate(answer):
                scores[q, r], ids[q, r] = hit["distance"], hit["id"]
        return scores, ids

    def keyword_search(self, query: str, k: int, within: Set[str] | None = None) -> KeywordHits:
        """Milvus' BM25. It does not expose each term's best score, so the scale's bound is the
        best score among the results (1.0 for the best keyword match), not the terms' bound.
        `within` filters as for `search` (the bound is then the best among those documents)."""
        if not query.strip() or k <= 0 or (within is not None and not within):
            return NO_KEYWORDS
        answer = self._answers([query], "sparse", "BM25", k, within)[0]
        scored = sorted((-abs(float(h["distance"])), int(h["id"])) for h in answer)  # Lite: < 0
        if not scored:
            return NO_KEYWORDS
        scores = np.array([-s for s, _ in scored], np.float32)
        ids = np.array([i for _, i in scored], np.int64)
        return KeywordHits(ids, scores, float(scores[0]), dict(zip(ids.tolist(), scores.tolist())))

    def document_frequencies(self, words: Sequence[Any]) -> list[int]:
        """How many chunks hold each query word, counted by Milvus' own BM25 index (its analyzer
        reads the word as typed, unstemmed; up to TOP_K): the IDF of keyword coverage."""
        counts = []
        for word in words:
            answer = self.client.search(
                self.name,
                data=[word.word],
                anns_field="sparse",
                limit=TOP_K,
                search_params={"metric_type": "BM25"},
                output_fields=[],
            )
            counts.append(len(answer[0]) if answer else 0)
        return counts

    def _answers(
        self, data: list, field: str, metric: str, k: int, within: Set[str] | None = None
    ) -> list[list[dict]]:
        """Milvus' answers (up to k hits each, remembered), without chunks of removed documents;
        `within`: only chunks of these documents (a filter expression on doc_id)."""
        listed = ", ".join(map(quoted, sorted(within or ())))
        where = {"filter": f"doc_id in [{listed}]"} if within else {}
        answers = self.client.search(
            self.name,
            data=data,
            anns_field=field,
            limit=min(int(k), TOP_K),
            search_params={"metric_type": metric},
            output_fields=CHUNK_FIELDS,
            **where,
        )
        orphans = self._orphans({h["entity"]["doc_id"] for a in answers for h in a})
        kept = [[h for h in a if h["entity"]["doc_id"] not in orphans] for a in answers]
        for hit in (h for a in kept for h in a):
            self.chunks.remember(hit["id"], hit["entity"])
        return kept

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        wanted = [int(i) for i in ids]
        rows = self.client.get(self.name, ids=wanted, output_fields=["vector"])
        found = {r["id"]: r["vector"] for r in rows}
        return np.array([found[i] for i in wanted], dtype=np.float32)

    def save(self, folder: Any = None) -> None:
        """Milvus keeps what was inserted; flushing seals it into segments now."""
        self.client.flush(self.name)
        self.client.flush(self.docs_name)
