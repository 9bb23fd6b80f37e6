"""MilvusIndex: a collection kept in Milvus, for corpora that outgrow one machine's folder.

Written once against pymilvus' `MilvusClient`, so the same code runs on Milvus Lite (a `.db`
file), a Milvus Standalone or Distributed server (`http://host:19530`) and Zilliz Cloud.
It meets the surface of `VectorIndex` that the engine uses (add a document's chunks and
vectors, remove a document, dense search, list documents, the model that built it), and
`lexical()` gives BM25 from Milvus' own BM25 function over the chunk text; fusion, rerank
and the score breakdown stay qsearch's, so both backends rank and explain alike.

Stored per chunk: the vector, the text, source, page span, offsets, OCR flag and the
document id (the file's content hash); per document, its `DocInfo`, in a second
collection `<name>_docs`. The embedding model and dimension are collection properties:
an embedder of another model or dimension is refused, as with the folder index.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..types import Chunk
from .vectors import DocInfo, IndexFolderError, check_model

MAX_TEXT = 65_535  # Milvus' longest VARCHAR
BATCH = 1000  # rows per insert


def connect(uri: str, token: str | None = None, timeout: float = 10.0) -> Any:
    """A MilvusClient for `uri` (a `.db` path or `http://host:port`), or a one-line error naming it."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise IndexFolderError(
            f"--milvus-uri {uri} needs pymilvus, which is optional: "
            "pip install -r requirements-milvus.txt"
        ) from None
    if uri.endswith(".db") and importlib.util.find_spec("milvus_lite") is None:
        raise IndexFolderError(
            f"a local Milvus Lite file ({uri}) needs milvus-lite: pip install -r "
            "requirements-milvus.txt; on Linux x86_64 then also pip install --no-deps milvus-lite "
            "(faiss-gpu provides the faiss it needs; its faiss-cpu would overwrite it)"
        )
    try:
        return MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except Exception as e:  # noqa: BLE001 - refused, unresolvable, bad token: one message
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise IndexFolderError(f"can't reach Milvus at {uri}: {reason}") from None


class MilvusIndex:
    """Chunks and vectors in a Milvus collection, with the surface of `VectorIndex` the engine uses."""

    kind = "milvus"

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
                raise IndexFolderError(
                    f"{self.uri} has no collection {name!r}: build it with `python -m qsearch "
                    f"index --milvus {self.uri} --collection {name} PATH...`"
                )
            self._create(dim, meta or {})
        for collection in (name, self.docs_name):
            client.load_collection(
                collection
            )  # a collection reopened after a restart starts released
        properties = client.describe_collection(name).get("properties", {})
        self.dim = int(properties.get("qsearch.dim", dim or 0))
        self.meta: dict[str, Any] = {
            "embed_model": properties.get("qsearch.embed_model"),
            "embed_dim": self.dim,
        }
        self.chunks = _Chunks(self)
        self.originals: dict[
            str, bytes
        ] = {}  # page images need the file: kept only by the folder index
        self.changes = 0

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
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = c.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        properties = {
            "qsearch.embed_model": str(meta.get("embed_model") or ""),
            "qsearch.dim": str(dim),
        }
        c.create_collection(self.name, schema=schema, index_params=index, properties=properties)
        docs = c.create_schema(auto_id=False)
        docs.add_field("doc_id", DataType.VARCHAR, max_length=64, is_primary=True)
        docs.add_field("info", DataType.JSON)
        docs.add_field(
            "unused", DataType.FLOAT_VECTOR, dim=2
        )  # Milvus wants a vector in every collection
        docs_index = c.prepare_index_params()
        docs_index.add_index("unused", index_type="FLAT", metric_type="L2")
        c.create_collection(self.docs_name, schema=docs, index_params=docs_index)

    # --- contents ------------------------------------------------------------------------

    @property
    def docs(self) -> dict[str, DocInfo]:
        rows = self.client.query(
            self.docs_name, filter='doc_id != ""', output_fields=["info"], limit=16384
        )
        return {r["doc_id"]: DocInfo(**r["info"]) for r in rows}

    def __len__(self) -> int:
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def has_doc(self, doc_id: str) -> bool:
        return bool(self.client.get(self.docs_name, ids=[doc_id], output_fields=["doc_id"]))

    def doc_ids_for_source(self, source: str) -> list[str]:
        return [d.doc_id for d in self.docs.values() if d.source == source]

    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        rows = self.client.query(
            self.name,
            filter=f"doc_id == {json.dumps(doc_id)}",
            output_fields=["doc_id", "text", "chunk"],
            limit=16384,
        )
        return sorted((_chunk(r) for r in rows), key=lambda c: c.start)

    def add(
        self,
        doc: DocInfo,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        original: bytes | None = None,
    ) -> None:
        """Add one document's chunks; a document already here is an error, as in the folder index."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(chunks)}, {self.dim}), got {vectors.shape}"
            )
        if self.has_doc(doc.doc_id):
            raise ValueError(
                f"document {doc.doc_id[:12]}… ({doc.source}) is already in the collection"
            )
        rows = [
            {
                "id": chunk_id(doc.doc_id, n),
                "doc_id": c.doc_id,
                "text": c.text[:MAX_TEXT],
                "vector": v.tolist(),
                "chunk": {
                    "source": c.source,
                    "start": c.start,
                    "end": c.end,
                    "page": c.page,
                    "page_end": c.page_end,
                    "ocr": c.ocr,
                },
            }
            for n, (c, v) in enumerate(zip(chunks, vectors))
        ]
        for start in range(0, len(rows), BATCH):
            self.client.insert(self.name, rows[start : start + BATCH])
        self.client.insert(
            self.docs_name, [{"doc_id": doc.doc_id, "info": vars(doc), "unused": [0.0, 0.0]}]
        )
        self.changes += 1

    def remove(self, doc_id: str) -> int:
        if not self.has_doc(doc_id):
            raise KeyError(f"no document with id {doc_id!r} in the collection")
        n = len(self.doc_chunks(doc_id))
        self.client.delete(self.name, filter=f"doc_id == {json.dumps(doc_id)}")
        self.client.delete(self.docs_name, ids=[doc_id])
        self.changes += 1
        return n

    def clear(self) -> None:
        self.client.delete(self.name, filter="id >= 0")
        self.client.delete(self.docs_name, filter='doc_id != ""')
        self.changes += 1

    # --- search --------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k nearest chunks by inner product, best first (exact: a FLAT index)."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"expected query vectors of shape (n, {self.dim}), got {queries.shape}"
            )
        k = min(int(k), 16384)
        answers = self.client.search(
            self.name,
            data=queries.tolist(),
            anns_field="vector",
            limit=k,
            search_params={"metric_type": "IP"},
            output_fields=["doc_id", "text", "chunk"],
        )
        width = max((len(a) for a in answers), default=0)
        scores = np.full((len(queries), width), -np.inf, np.float32)
        ids = np.full((len(queries), width), -1, np.int64)
        for q, answer in enumerate(answers):
            for r, hit in enumerate(answer):
                scores[q, r], ids[q, r] = hit["distance"], hit["id"]
                self.chunks.remember(hit["id"], hit["entity"])
        return scores, ids

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        rows = {
            r["id"]: r["vector"]
            for r in self.client.get(self.name, ids=[int(i) for i in ids], output_fields=["vector"])
        }
        return np.array([rows[int(i)] for i in ids], dtype=np.float32)

    def lexical(self) -> MilvusLexical:
        return MilvusLexical(self)

    def check_model(self, model_name: str, dim: int, where: Any = None) -> None:
        check_model(
            self.meta.get("embed_model"),
            self.dim,
            model_name,
            dim,
            where or f"collection {self.name!r} at {self.uri}",
        )

    def save(self, folder: Any = None) -> None:
        """Milvus keeps what was inserted; flushing seals it into segments now."""
        self.client.flush(self.name)
        self.client.flush(self.docs_name)


class MilvusLexical:
    """BM25 from Milvus' own BM25 function, with the surface retrieval uses of `LexicalIndex`.

    Milvus returns the top k with their scores; a chunk outside them scores 0 here. It does
    not expose each term's best score, so the keyword bar's scale is the best score among the
    query's results (1.0 for the best keyword match) rather than the terms' upper bound."""

    def __init__(self, index: MilvusIndex):
        self.index = index
        self._best = 0.0

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
        if not query.strip():
            return np.zeros(0, np.float32), np.zeros(0, np.int64), {}
        answer = self.index.client.search(
            self.index.name,
            data=[query],
            anns_field="sparse",
            limit=min(k, 16384),
            search_params={"metric_type": "BM25"},
            output_fields=["doc_id", "text", "chunk"],
        )[0]
        scored = [
            (abs(float(h["distance"])), int(h["id"])) for h in answer
        ]  # Milvus Lite reports BM25 negated
        scored.sort(key=lambda t: (-t[0], t[1]))
        for h in answer:
            self.index.chunks.remember(h["id"], h["entity"])
        scores = np.array([s for s, _ in scored], np.float32)
        ids = np.array([i for _, i in scored], np.int64)
        self._best = float(scores.max()) if len(scores) else 0.0
        return scores, ids, dict(zip(ids.tolist(), scores.tolist()))

    def scores_of(self, every: dict[int, float], ids: list[int]) -> list[float]:
        return [every.get(i, 0.0) for i in ids]

    def upper_bound(self, query: str) -> float:
        return self._best


class _Chunks(Mapping[int, Chunk]):
    """id -> Chunk, fetched from Milvus on demand (and remembered from search results)."""

    def __init__(self, index: MilvusIndex):
        self.index, self._cache = index, {}

    def remember(self, chunk_id: int, entity: dict[str, Any]) -> None:
        self._cache[int(chunk_id)] = _chunk(entity)

    def __getitem__(self, chunk_id: int) -> Chunk:
        chunk_id = int(chunk_id)
        if chunk_id not in self._cache:
            rows = self.index.client.get(
                self.index.name, ids=[chunk_id], output_fields=["doc_id", "text", "chunk"]
            )
            if not rows:
                raise KeyError(chunk_id)
            self._cache[chunk_id] = _chunk(rows[0])
        return self._cache[chunk_id]

    def __iter__(self) -> Iterator[int]:
        rows = self.index.client.query(
            self.index.name, filter="id >= 0", output_fields=["id"], limit=16384
        )
        return iter(sorted(r["id"] for r in rows))

    def __len__(self) -> int:
        return len(self.index)


def _chunk(row: dict[str, Any]) -> Chunk:
    meta = row["chunk"]
    return Chunk(
        doc_id=row["doc_id"],
        source=meta["source"],
        text=row["text"],
        start=meta["start"],
        end=meta["end"],
        page=meta.get("page"),
        page_end=meta.get("page_end"),
        ocr=bool(meta.get("ocr")),
    )


def chunk_id(doc_id: str, number: int) -> int:
    """A chunk's Milvus id: 60 bits of the hash of its document's content hash and its number, the same
    in every process and replica (two chunks collide with odds of about n² / 2⁶¹)."""
    return int(hashlib.sha256(f"{doc_id}:{number}".encode()).hexdigest()[:15], 16)
