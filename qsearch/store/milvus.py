"""MilvusIndex: a collection kept in Milvus, for corpora that outgrow one machine's folder.

Written once against pymilvus' `MilvusClient`, so the same code runs on Milvus Lite (a `.db`
file), a Milvus Standalone or Distributed server (`http://host:19530`) and Zilliz Cloud.
It implements the collection contract (`base.py`); keyword search is Milvus' own BM25
function over the chunk text, while fusion, rerank and the score breakdown stay qsearch's,
so both backends rank and explain alike.

Stored per chunk: the vector, the text, source, page span, offsets, OCR flag and the
document id (the file's content hash); per document, its `DocInfo` and its `source` as a
scalar field (a source is found by a filtered query), in a second collection `<name>_docs`.
Adds are idempotent and ordered: chunk rows are upserted under deterministic ids, the
document row is written last, so a retried add never duplicates rows, and chunks whose
document has no row (an add or remove cut short) are left out of results and deleted.
The embedding model and dimension are collection properties: an embedder of another model
or dimension is refused, as with the folder index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..types import Chunk
from .base import NO_KEYWORDS, Collection, CollectionError, DocInfo, KeywordHits
from .milvus_rows import (
    CHUNK_FIELDS,
    MAX_TEXT,
    PAGE,
    Chunks,
    Docs,
    chunk_row,
    doc_row,
    pages,
    quoted,
    to_chunk,
)

TOP_K = 16_384  # the most results Milvus returns for one search


def connect(uri: str, token: str | None = None, timeout: float = 10.0) -> Any:
    """A MilvusClient for `uri` (a `.db` path or `http://host:port`), or a one-line error."""
    from pymilvus import MilvusClient

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
            self._create(dim, meta or {})
        for collection in (name, self.docs_name):
            client.load_collection(collection)  # reopened after a restart, it starts released
        properties = client.describe_collection(name).get("properties", {})
        self.dim = int(properties.get("qsearch.dim", dim or 0))
        self.meta: dict[str, Any] = {
            "embed_model": properties.get("qsearch.embed_model"),
            "embed_dim": self.dim,
        }
        fields = {f["name"] for f in client.describe_collection(self.docs_name)["fields"]}
        self._source = "source" if "source" in fields else 'info["source"]'  # before the field
        self.docs, self.chunks = Docs(self), Chunks(self)
        self.originals: dict[str, bytes] = {}  # page images need the file: the folder keeps it
        self.changes = 0

    @classmethod
    def load(cls, where: str, *, collection: str = "qsearch", token: str | None = None) -> Any:
        """The collection `collection` at `where` (a Milvus Lite file or a server's URI)."""
        return cls(connect(str(where), token), collection, uri=str(where))

    def __str__(self) -> str:
        return f"collection {self.name!r} at {self.uri}"

    def _create(self, dim: int, meta: dict[str, Any]) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("chunk", DataType.JSON)  # source, start, end, page, page_end, ocr
        bm25 = Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
        schema.add_function(bm25)
        index = c.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        index.add_index("doc_id", index_type="INVERTED")
        properties = {
            "qsearch.embed_model": str(meta.get("embed_model") or ""),
            "qsearch.dim": str(dim),
        }
        c.create_collection(self.name, schema=schema, index_params=index, properties=properties)
        docs = c.create_schema(auto_id=False)
        docs.add_field("doc_id", DataType.VARCHAR, max_length=64, is_primary=True)
        docs.add_field("source", DataType.VARCHAR, max_length=MAX_TEXT)
        docs.add_field("info", DataType.JSON)
        docs.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector
        docs_index = c.prepare_index_params()
        docs_index.add_index("unused", index_type="FLAT", metric_type="L2")
        docs_index.add_index("source", index_type="INVERTED")
        c.create_collection(self.docs_name, schema=docs, index_params=docs_index)

    # --- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.count_rows(self.name)

    def count_rows(self, collection: str, filter: str = "") -> int:
        rows = self.client.query(collection, filter=filter, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def has_doc(self, doc_id: str) -> bool:
        return bool(self.client.get(self.docs_name, ids=[doc_id], output_fields=["doc_id"]))

    def doc_ids_for_source(self, source: str) -> list[str]:
        """A filtered query on the `source` field: no listing of the documents."""
        rows = self.client.query(
            self.docs_name, filter=f"{self._source} == {quoted(source)}", output_fields=["doc_id"]
        )
        return [r["doc_id"] for r in rows]

    def doc_ids_for_sources(self, sources: Sequence[str]) -> dict[str, list[str]]:
        """One filtered query per PAGE sources (`source in [...]`), for a batch of files."""
        if self._source != "source":  # `in` needs a field: one query per source
            return super().doc_ids_for_sources(sources)
        found: dict[str, list[str]] = {}
        for start in range(0, len(sources), PAGE):
            listed = ", ".join(map(quoted, sources[start : start + PAGE]))
            for r in pages(self.client, self.docs_name, f"{self._source} in [{listed}]", ["info"]):
                found.setdefault(r["info"]["source"], []).append(r["info"]["doc_id"])
        return found

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
        rows = [chunk_row(n, c, v) for n, (c, v) in enumerate(zip(chunks, vectors.tolist()))]
        for start in range(0, len(rows), PAGE):
            self.client.upsert(self.name, rows[start : start + PAGE])
        row = doc_row(doc)
        if self._source != "source":  # a collection made before the source field
            del row["source"]
        self.client.upsert(self.docs_name, [row])  # last: now its chunks count
        self.changes += 1

    def remove(self, doc_id: str) -> int:
        """Remove the document's row first (its chunks stop counting), then its chunks."""
        if not self.has_doc(doc_id):
            raise KeyError(f"no document with id {doc_id!r} in the collection")
        where = f"doc_id == {quoted(doc_id)}"
        n = self.count_rows(self.name, where)
        self.client.delete(self.docs_name, ids=[doc_id])
        self.client.delete(self.name, filter=where)
        self.chunks.forget()
        self.changes += 1
        return n

    def clear(self) -> None:
        self.client.delete(self.docs_name, filter='doc_id != ""')
        self.client.delete(self.name, filter="id >= 0")
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

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest chunks by inner product, best first (exact: FLAT)."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"expected query vectors of shape (n, {self.dim}), got {queries.shape}"
            )
        answers = self._answers(queries.tolist(), "vector", "IP", k)
        width = max((len(a) for a in answers), default=0)
        scores = np.full((len(queries), width), -np.inf, np.float32)
        ids = np.full((len(queries), width), -1, np.int64)
        for q, answer in enumerate(answers):
            for r, hit in enumerate(answer):
                scores[q, r], ids[q, r] = hit["distance"], hit["id"]
        return scores, ids

    def keyword_search(self, query: str, k: int) -> KeywordHits:
        """Milvus' BM25. It does not expose each term's best score, so the scale's bound is the
        best score among the results (1.0 for the best keyword match), not the terms' bound."""
        if not query.strip():
            return NO_KEYWORDS
        answer = self._answers([query], "sparse", "BM25", k)[0]
        scored = sorted((-abs(float(h["distance"])), int(h["id"])) for h in answer)  # Lite: < 0
        if not scored:
            return NO_KEYWORDS
        scores = np.array([-s for s, _ in scored], np.float32)
        ids = np.array([i for _, i in scored], np.int64)
        return KeywordHits(ids, scores, float(scores[0]), dict(zip(ids.tolist(), scores.tolist())))

    def _answers(self, data: list, field: str, metric: str, k: int) -> list[list[dict]]:
        """Milvus' answers (up to k hits each, remembered), without chunks of removed documents."""
        answers = self.client.search(
            self.name,
            data=data,
            anns_field=field,
            limit=max(1, min(int(k), TOP_K)),
            search_params={"metric_type": metric},
            output_fields=CHUNK_FIELDS,
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
