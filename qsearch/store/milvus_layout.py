"""The collections qsearch keeps in Milvus for one collection `name`, and its source map.

- `name`: one row per chunk: id, doc_id, text (with Milvus' BM25 function into `sparse`),
  the vector, and the chunk's place (JSON). Model and dimension are collection properties.
- `name_docs`: one row per document, keyed by doc_id: its `DocInfo` (JSON).
- `name_sources`: one row per source, keyed by the source's SHA-256: the doc ids read from it.
  Finding a file's older version is then a primary-key `get`, whose cost does not grow with
  the collection (a filtered query scans: measured 2 ms at 100 documents and 30-300 ms at
  17,000 on Milvus Lite). Collections made before this map fall back to a filtered query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

MAX_TEXT = 65_535  # Milvus' longest VARCHAR
# Reads see every write before them (Milvus' default, "Bounded", may miss the last seconds):
# an add must see the document row it checks, a listing the removal just made.
STRONG = {"consistency_level": "Strong"}


def create(client: Any, name: str, dim: int, embed_model: str) -> None:
    """Make the three collections of `name` for vectors of `dim` from `embed_model`."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("chunk", DataType.JSON)  # source, start, end, page, page_end, ocr, where
    bm25 = Function(
        name="bm25",
        function_type=FunctionType.BM25,
        input_field_names=["text"],
        output_field_names=["sparse"],
    )
    schema.add_function(bm25)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index("doc_id", index_type="INVERTED")
    properties = {"qsearch.embed_model": embed_model, "qsearch.dim": str(dim)}
    client.create_collection(
        name, schema=schema, index_params=index, properties=properties, **STRONG
    )
    _keyed(client, f"{name}_docs", "doc_id", 64, "info")
    _keyed(client, f"{name}_sources", "key", 64, "doc_ids", source=True)


def _keyed(client: Any, name: str, key: str, length: int, value: str, source: bool = False) -> None:
    """A collection of JSON values by a VARCHAR key (Milvus wants a vector in each: a dummy)."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field(key, DataType.VARCHAR, max_length=length, is_primary=True)
    if source:
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_TEXT)
    schema.add_field(value, DataType.JSON)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index, **STRONG)


def source_key(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def source_row(source: str, doc_ids: list[str]) -> dict[str, Any]:
    """The row of `<name>_sources` for `source`."""
    return {"key": source_key(source), "source": source, "doc_ids": doc_ids, "unused": [0.0, 0.0]}


class Sources:
    """source -> the doc ids read from it, in `<name>_sources`, by primary key.

    Written before a document's chunks and row, cleaned after its removal: an entry may name
    a document that has no row (an add cut short), never miss one that has."""

    def __init__(self, client: Any, name: str):
        self.client, self.name = client, f"{name}_sources"

    def get(self, sources: Sequence[str], page: int) -> dict[str, list[str]]:
        """source -> doc ids as listed (callers keep those whose document has a row)."""
        keys = [source_key(s) for s in dict.fromkeys(sources)]
        found: dict[str, list[str]] = {}
        for start in range(0, len(keys), page):
            ids = keys[start : start + page]
            for r in self.client.get(self.name, ids=ids, output_fields=["source", "doc_ids"]):
                found[r["source"]] = list(r["doc_ids"])
        return found

    def link(self, source: str, doc_id: str) -> None:
        listed = self.get([source], 1).get(source, [])
        if doc_id not in listed:
            self._write(source, [*listed, doc_id])

    def unlink(self, source: str, doc_id: str) -> None:
        listed = self.get([source], 1).get(source, [])
        if doc_id in listed:
            self._write(source, [d for d in listed if d != doc_id])

    def clear(self) -> None:
        self.client.delete(self.name, filter='key != ""')

    def _write(self, source: str, doc_ids: list[str]) -> None:
        if not doc_ids:
            self.client.delete(self.name, ids=[source_key(source)])
            return
        self.client.upsert(self.name, [source_row(source, doc_ids)])
