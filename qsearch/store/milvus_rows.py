"""Rows of a Milvus collection as qsearch's chunks and documents, read in pages.

Milvus caps one query at 16,384 rows (offset + limit), so every listing goes through
pymilvus' query iterator, which pages by primary key: a collection of any size lists whole.
The `docs` and `chunks` of a `MilvusIndex` are live views over the collections: a lookup
is one primary-key `get`, iteration pages through everything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..types import Chunk
from .base import DocInfo
from .milvus_layout import MAX_TEXT

if TYPE_CHECKING:
    from .milvus import MilvusIndex

PAGE = 4000  # rows per query page and per upsert
CHUNK_FIELDS = ["doc_id", "text", "chunk"]


def pages(client: Any, collection: str, filter: str, fields: list[str]) -> Iterator[dict]:
    """Every row of `collection` matching `filter`, in pages of PAGE rows (no 16,384 ceiling)."""
    iterator = client.query_iterator(
        collection, batch_size=PAGE, filter=filter, output_fields=fields
    )
    try:
        while batch := iterator.next():
            yield from batch
    finally:
        iterator.close()


def quoted(value: str) -> str:
    """`value` as a string literal of Milvus' filter language."""
    return json.dumps(value, ensure_ascii=False)


def chunk_id(doc_id: str, number: int) -> int:
    """A chunk's Milvus id: 60 bits of the hash of its document's content hash and its number,
    the same in every process and replica (two chunks collide with odds of about n² / 2⁶¹)."""
    return int(hashlib.sha256(f"{doc_id}:{number}".encode()).hexdigest()[:15], 16)


def chunk_row(number: int, c: Chunk, vector: list[float]) -> dict[str, Any]:
    """The row of chunk `number` of its document."""
    where = {
        "source": c.source,
        "start": c.start,
        "end": c.end,
        "page": c.page,
        "page_end": c.page_end,
        "ocr": c.ocr,
        "where": c.where,
    }
    return {
        "id": chunk_id(c.doc_id, number),
        "doc_id": c.doc_id,
        "text": c.text[:MAX_TEXT],
        "vector": vector,
        "chunk": where,
    }


def doc_row(doc: DocInfo) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        "info": vars(doc),
        "unused": [0.0, 0.0],
    }


def to_chunk(row: dict[str, Any]) -> Chunk:
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
        where=meta.get("where"),
    )


class Docs(Mapping[str, DocInfo]):
    """doc_id -> DocInfo over `<name>_docs`: `get` is a primary-key lookup, listing pages."""

    def __init__(self, index: MilvusIndex):
        self.index = index

    def __getitem__(self, doc_id: str) -> DocInfo:
        rows = self.index.client.get(self.index.docs_name, ids=[doc_id], output_fields=["info"])
        if not rows:
            raise KeyError(doc_id)
        return DocInfo(**rows[0]["info"])

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.index.has_doc(doc_id)

    def __iter__(self) -> Iterator[str]:
        return (r["doc_id"] for r in self._rows(["doc_id"]))

    def __len__(self) -> int:
        return self.index.count_rows(self.index.docs_name)

    def values(self) -> list[DocInfo]:  # type: ignore[override] - one paged listing, not n gets
        return [DocInfo(**r["info"]) for r in self._rows(["info"])]

    def items(self) -> list[tuple[str, DocInfo]]:  # type: ignore[override]
        return [(d.doc_id, d) for d in self.values()]

    def _rows(self, fields: list[str]) -> Iterator[dict]:
        return pages(self.index.client, self.index.docs_name, "", fields)


class Chunks(Mapping[int, Chunk]):
    """chunk id -> Chunk, fetched on demand (and remembered from search results, up to a bound)."""

    REMEMBER = 10_000

    def __init__(self, index: MilvusIndex):
        self.index, self._cache = index, {}

    def remember(self, chunk_id: int, entity: dict[str, Any]) -> None:
        if len(self._cache) >= self.REMEMBER:
            self._cache.clear()
        self._cache[int(chunk_id)] = to_chunk(entity)

    def forget(self) -> None:
        self._cache.clear()

    def __getitem__(self, chunk_id: int) -> Chunk:
        chunk_id = int(chunk_id)
        if chunk_id not in self._cache:
            rows = self.index.client.get(
                self.index.name, ids=[chunk_id], output_fields=CHUNK_FIELDS
            )
            if not rows:
                raise KeyError(chunk_id)
            self._cache[chunk_id] = to_chunk(rows[0])
        return self._cache[chunk_id]

    def __iter__(self) -> Iterator[int]:
        return (r["id"] for r in pages(self.index.client, self.index.name, "", ["id"]))

    def __len__(self) -> int:
        return len(self.index)
