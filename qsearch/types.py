"""Plain data passed between the stages: Document -> Chunk -> Hit. No heavy imports."""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import DEFAULT_MIN_SCORE, Settings

# Scripts written without spaces between words (kana, CJK ideographs, Hangul): the one home of
# these ranges, for BM25's tokenizer and the chunker's cut points.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"


@dataclass(frozen=True)
class Part:
    """A named stretch of a file without pages: a slide, a sheet's row, a chapter, an e-mail.

    `label` names it alone ('slide 3 "Results"'); the numbered parts of one series share
    `run`, the words before a range of their numbers ('sheet "Q3", rows ' + '2–40')."""

    label: str
    number: int | None = None
    run: str = ""


def span_label(first: Part, last: Part) -> str:
    """How a passage from `first` to `last` (inclusive) names where it lies."""
    if first == last:
        return first.label
    if first.run and first.run == last.run and first.number is not None:
        return f"{first.run}{first.number}\u2013{last.number}"
    return f"{first.label} \u2013 {last.label}"


@dataclass(frozen=True)
class Document:
    """The text extracted from one file.

    `text` holds all pages (or parts) joined by a blank line; `page_starts[i]` is the
    character offset where page i+1 begins (empty for formats without pages), and
    `part_starts[i]` where `parts[i]` begins (slides, rows, chapters; empty without).
    """

    source: str
    text: str
    doc_id: str  # sha256 of the file's bytes: the same content is the same document
    kind: str  # pdf, image, text, html, docx, odt, rtf, slides, sheet, ebook or email
    page_starts: tuple[int, ...] = ()
    ocr_pages: tuple[int, ...] = ()  # pages (1-based) whose text was read by OCR
    notes: tuple[str, ...] = ()  # for the user, e.g. "page 4: OCR confidence too low"
    parts: tuple[Part, ...] = ()
    part_starts: tuple[int, ...] = ()

    @property
    def n_pages(self) -> int | None:
        return len(self.page_starts) or None

    def page_at(self, offset: int) -> int | None:
        """1-based page number of the character at `offset`, or None without pages."""
        if not self.page_starts:
            return None
        return max(1, bisect_right(self.page_starts, offset))

    def where(self, start: int, end: int) -> str | None:
        """The label of the part(s) text[start:end] lies in, or None without parts."""
        if not self.parts:
            return None
        first = max(0, bisect_right(self.part_starts, start) - 1)
        last = max(first, bisect_right(self.part_starts, max(start, end - 1)) - 1)
        return span_label(self.parts[first], self.parts[last])


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
    ocr: bool = False  # its text was read from a page image by OCR
    where: str | None = None  # its slide, sheet rows, chapter or e-mail (Document.where)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**data)

    @property
    def pages(self) -> list[int]:
        """The pages the chunk lies on (empty without pages)."""
        return list(range(self.page, (self.page_end or self.page) + 1)) if self.page else []


@dataclass(frozen=True)
class Hit:
    """One search result, ranked from 1."""

    rank: int
    score: float  # overall relevance: P(it answers the query), absolute (search/relevance.py)
    source: str
    page: int | None
    page_end: int | None
    text: str
    start: int
    end: int
    doc_id: str
    rerank_score: float | None = None  # P(relevant) from the reranker, when reranked
    dense_score: float | None = None  # "meaning": cosine similarity (None in lexical mode)
    lexical_score: float | None = None  # raw BM25 score (None in dense mode)
    # "keywords": the IDF-weighted share of the query's words the passage holds, 0..1
    keyword_score: float | None = None
    retrieval_rank: int | None = None  # its rank before reranking, when reranked
    ocr: bool = False  # the passage was read by OCR
    where: str | None = None  # its slide, sheet rows, chapter or e-mail, for files without pages
    weak: bool = False  # its overall relevance is below the minimum (search/strength.py)
    collection: str | None = None  # the named collection it comes from (a library's), if named

    def to_dict(self) -> dict[str, Any]:
        """The hit in the one vocabulary every output uses (JSON, CSV, the page, MCP, the CLI):
        `HIT_FIELDS`, in that order; a score that doesn't apply is None."""
        return {
            "rank": self.rank,
            "source": self.source,
            "collection": self.collection,
            "page": self.page,
            "page_end": self.page_end,
            "where": self.where,
            "ocr": self.ocr,
            "overall": self.score,
            "meaning": self.dense_score,
            "keywords": self.keyword_score,
            "bm25": self.lexical_score,
            "rerank": self.rerank_score,
            "rank_before_rerank": self.retrieval_rank,
            "weak": self.weak,
            "text": self.text,
        }


HIT_FIELDS = {  # Hit.to_dict's names and what each means: the page's legend and the MCP docs say so
    "rank": "1 for the best passage",
    "source": "the file the passage comes from",
    "collection": "the named collection it comes from (null for an unnamed one, e.g. an index "
    "folder)",
    "page": "the first page it lies on (null without pages)",
    "page_end": "the last page it lies on",
    "where": "where it lies in a file without pages: its slide, sheet and rows, chapter or "
    "e-mail (null for pages and plain text)",
    "ocr": "true when its text was read from a page image by OCR",
    "overall": "how likely the passage answers the query, 0 to 1, on one scale for every query "
    "and collection (never relative to the other results): from its meaning and keywords, and "
    "the reranker's judgement when reranked",
    "meaning": "cosine similarity of the passage and the query embeddings, 0 to 1 (null in "
    "lexical mode)",
    "keywords": "how much of the query's words the passage holds, each weighted by how rare it "
    "is here, 0 to 1: 1 holds them all (null in dense mode)",
    "bm25": "the raw BM25 score (null in dense mode)",
    "rerank": "the reranker's probability that the passage is relevant, 0 to 1 (null without "
    "rerank)",
    "rank_before_rerank": "its rank before the rerank (null without rerank)",
    "weak": "true when its overall relevance is below the minimum relevance "
    f"({DEFAULT_MIN_SCORE:g} unless set): probably not an answer",
    "text": "the passage",
}


class Hits(list[Hit]):
    """The hits of one search, best first, with how long each stage took and the minimum
    relevance their `weak` flags were decided by."""

    def __init__(self, hits: list[Hit] = (), timings_ms: dict[str, float] | None = None, *,
                 min_score: float | None = None):  # fmt: skip
        super().__init__(hits)
        self.timings_ms: dict[str, float] = dict(timings_ms or {})
        self.min_score = min_score


@dataclass
class FileReport:
    """What happened to one file handed to Engine.add_files."""

    path: str
    status: str  # "indexed", "unchanged", "replaced" or "error"
    chunks: int = 0
    pages: int | None = None
    error: str | None = None
    doc_id: str | None = None
    ocr_pages: list[int] = field(default_factory=list)  # pages read by OCR
    notes: list[str] = field(default_factory=list)  # e.g. pages skipped, OCR off
    seconds: float = 0.0  # reading (a wait for a free reader included) and chunking it took

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


# --- reading files -------------------------------------------------------------------------------


class IngestError(Exception):
    """A file that can't be turned into text; str() is one line naming file and reason."""

    def __init__(self, path: object, reason: str, detail: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.detail = detail  # the library's exception behind the reason, for the log
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple:  # crosses from the parsing process intact
        return (IngestError, (self.path, self.reason, self.detail))


@dataclass(frozen=True)
class Limits:
    """Bounds on what one file may cost: bytes on disk, pages (and slides), unpacked bytes,
    spreadsheet and table cells, extracted characters, pixels, seconds, and the memory of the
    reader process that reads it."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_chars: int = 10_000_000
    max_unzipped_bytes: int = 200 * 1024 * 1024  # .docx, .xlsx, .epub ... are zips: no bombs
    max_seconds: float = 120.0  # extraction time, checked between pages and paragraphs
    max_pixels: int = 60_000_000  # one image or rendered page: 60 megapixels
    max_cells: int = 2_000_000  # a spreadsheet's cells (all sheets), or a document's table cells
    max_reader_mb: int = 2048  # the address space of the reader process reading it (pool.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_file_bytes,
            settings.max_pages,
            settings.max_chars,
            max_seconds=settings.max_seconds_per_file,
            max_reader_mb=settings.max_reader_mb,
        )


@dataclass(frozen=True)
class ReadOptions:
    """How files are read: whether and in which language pages without text are OCR'd."""

    ocr: bool = True
    ocr_lang: str = "eng"
    ocr_page_seconds: float = 60.0  # one page's OCR, within the file's max_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadOptions:
        return cls(settings.ocr, settings.ocr_lang)


@dataclass
class Extracted:
    """What a loader found: the text of each page (one page for formats without pages), or of
    each part with its label in `parts` (slides, rows, chapters: as many as `pages`)."""

    kind: str
    pages: list[str]
    parts: list[Part] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    no_text_reason: str = "no text found in the file"


class Deadline:
    """A file's limits and the moment its extraction started, so loaders can stop a file that
    takes too long (between pages; the reader pool kills a reader stuck inside one)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.started = time.monotonic()

    def seconds_left(self) -> float:
        return self.limits.max_seconds - (time.monotonic() - self.started)

    def check(self, source: str, where: str) -> None:
        if self.seconds_left() < 0:
            raise IngestError(
                source, f"took too long: over {self.limits.max_seconds:g} s, stopped at {where}"
            )
