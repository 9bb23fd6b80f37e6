"""Plain data passed between the stages: Document -> Chunk -> Hit. No heavy imports."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """The text extracted from one file.

    `text` holds all pages joined by a blank line; `page_starts[i]` is the character
    offset where page i+1 begins (empty for formats without pages).
    """

    source: str
    text: str
    doc_id: str  # sha256 of the file's bytes: the same content is the same document
    kind: str  # "pdf", "text", "html", "docx"
    page_starts: tuple[int, ...] = ()

    @property
    def n_pages(self) -> int | None:
        return len(self.page_starts) or None

    def page_at(self, offset: int) -> int | None:
        """1-based page number of the character at `offset`, or None without pages."""
        if not self.page_starts:
            return None
        return max(1, bisect_right(self.page_starts, offset))


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: the unit that is embedded, indexed and returned."""

    doc_id: str
    source: str
    text: str
    start: int  # character offsets of `text` in Document.text: text == doc.text[start:end]
    end: int
    page: int | None = None  # first page the chunk lies on (1-based), None without pages
    page_end: int | None = None  # last page, equal to `page` unless the chunk spans pages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**data)


@dataclass(frozen=True)
class Hit:
    """One search result, ranked from 1."""

    rank: int
    score: float  # retrieval score: cosine (dense), BM25 (lexical) or the fused score (hybrid)
    source: str
    page: int | None
    page_end: int | None
    text: str
    start: int
    end: int
    doc_id: str
    rerank_score: float | None = None  # P(relevant) from the reranker, when reranked
    dense_score: float | None = None  # cosine similarity, when the dense index found the chunk
    lexical_score: float | None = None  # BM25 score, when the lexical index found the chunk

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Hits(list[Hit]):
    """The hits of one search, best first, with how long each stage took."""

    def __init__(self, hits: list[Hit] = (), timings_ms: dict[str, float] | None = None):
        super().__init__(hits)
        self.timings_ms: dict[str, float] = dict(timings_ms or {})


@dataclass
class FileReport:
    """What happened to one file handed to Engine.add_files."""

    path: str
    status: str  # "indexed", "unchanged", "replaced" or "error"
    chunks: int = 0
    pages: int | None = None
    error: str | None = None
    doc_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "error"


@dataclass
class AddReport:
    """The result of one Engine.add_files call: one FileReport per file, in input order."""

    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def indexed(self) -> list[FileReport]:
        return [f for f in self.files if f.status in ("indexed", "replaced")]

    @property
    def errors(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "error"]
