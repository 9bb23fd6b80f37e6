"""Document -> Chunks: token-aware, cut where the structure allows, with overlap and offsets.

The document is tokenized once with the embedder's own tokenizer; a chunk is then a
character span holding at most `max_tokens` of those tokens. Each cut goes at the best
boundary in the last part of the window: a heading, else a paragraph, a line, a
sentence, a word. A word is only ever split when it alone is longer than a chunk.
Consecutive chunks overlap by about `overlap` tokens (starting at a sentence when one is
near, else at a word), except across a heading.
"""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np

from ..types import CJK as _CJK
from ..types import Chunk, Document


class Tokenizer(Protocol):
    """What chunking needs of a Hugging Face (fast) tokenizer."""

    def __call__(
        self, text: list[str], *, add_special_tokens: bool, return_offsets_mapping: bool
    ) -> dict: ...


# Each pattern marks the positions where a new piece may start, most preferred first.
_LEVELS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("heading", re.compile(r"(?m)^(?=#{1,6} )")),
    ("paragraph", re.compile(r"\n[ \t]*\n\s*")),
    ("line", re.compile(r"\n\s*")),
    ("sentence", re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f]\s*")),
    ("word", re.compile(rf"\s+|(?<=[{_CJK}])(?=\S)|(?<=\S)(?=[{_CJK}])")),
)
_ANY_CJK = re.compile(rf"[{_CJK}]")
_SPACES = re.compile(r"\s+")
# Only cut at a level's boundary if the chunk before it holds at least this share of the budget.
_MIN_FILL = {"heading": 0.125, "paragraph": 0.5, "line": 0.5, "sentence": 0.5, "word": 0.0}
_TOKENIZE_BLOCK_CHARS = 20_000
_BLOCKS_PER_CALL = 16  # 320,000 characters per tokenizer call
_MAX_CHARS_PER_TOKEN = (
    32  # bounds a chunk's length even where a tokenizer makes one token of a long run
)


def chunk_document(
    doc: Document, tokenizer: Tokenizer, max_tokens: int = 256, overlap: int = 32
) -> list[Chunk]:
    """Split `doc` into chunks of at most ~max_tokens tokens; identical chunks are kept once."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(
            f"need max_tokens >= 1 and 0 <= overlap < max_tokens, "
            f"got max_tokens={max_tokens}, overlap={overlap}"
        )
    spans = split_spans(doc.text, token_starts(doc.text, tokenizer), max_tokens, overlap)
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for start, end in spans:
        text = doc.text[start:end]
        if text in seen:
            continue
        seen.add(text)
        page, page_end = doc.page_at(start), doc.page_at(end - 1)
        ocr = page is not None and any(page <= p <= page_end for p in doc.ocr_pages)
        chunks.append(
            Chunk(
                doc_id=doc.doc_id,
                source=doc.source,
                text=text,
                start=start,
                end=end,
                page=page,
                page_end=page_end,
                ocr=ocr,
                where=doc.where(start, end),
            )
        )
    return chunks


def token_starts(text: str, tokenizer: Tokenizer) -> np.ndarray:
    """Character offset at which each token of `text` starts (sorted), tokenizing in blocks,
    _BLOCKS_PER_CALL at a time: the tokenizer's Python lists of offsets (~100 bytes a token)
    exist for one group of blocks at a time, not for a whole 10-million-character document."""
    blocks = _blocks(text, _TOKENIZE_BLOCK_CHARS)
    parts = []
    for first in range(0, len(blocks), _BLOCKS_PER_CALL):
        group = blocks[first : first + _BLOCKS_PER_CALL]
        encoded = tokenizer(
            [text[a:b] for a, b in group], add_special_tokens=False, return_offsets_mapping=True
        )
        for (block_start, _), offsets in zip(group, encoded["offset_mapping"]):
            if len(offsets):
                firsts = np.fromiter((o[0] for o in offsets), np.int64, count=len(offsets))
                parts.append(firsts + block_start)
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def split_spans(
    text: str, starts: np.ndarray, max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """The (start, end) character spans of the chunks; pure, so it is easy to test."""
    levels = dict(_LEVELS)
    if not _ANY_CJK.search(text):  # the word level's look-arounds cost a second per 3 MB
        levels["word"] = _SPACES
    bounds = {name: _positions(pattern, text) for name, pattern in levels.items()}
    # where a sentence (or paragraph) starts, once, for every chunk's overlap to look up
    both = np.concatenate([bounds["paragraph"], bounds["sentence"]])
    bounds["sentence starts"] = _once(np.sort(both, kind="stable"))
    n_tokens, length = len(starts), len(text)
    spans: list[tuple[int, int]] = []
    s = 0
    while s < length:
        first = int(np.searchsorted(starts, s))
        window_end = length if first + max_tokens >= n_tokens else int(starts[first + max_tokens])
        if window_end <= s:  # many tokens sharing one start: take the next distinct one
            later = starts[starts > s]
            window_end = int(later[0]) if len(later) else length
        window_end = min(window_end, s + max_tokens * _MAX_CHARS_PER_TOKEN)  # one giant "token"
        if window_end >= length:
            cut, level = length, "end"
        else:
            cut, level = _best_cut(bounds, starts, s, first, window_end, max_tokens)
        span = _strip(text, s, cut)
        if span:
            spans.append(span)
        if cut >= length:
            break
        s = (
            cut
            if level in ("heading", "end") or overlap == 0
            else _overlap_start(bounds, starts, s, cut, overlap)
        )
    return spans


def _best_cut(
    bounds: dict[str, np.ndarray],
    starts: np.ndarray,
    s: int,
    first: int,
    window_end: int,
    max_tokens: int,
) -> tuple[int, str]:
    """The latest boundary of the most preferred level that leaves the chunk full enough."""
    for name, _ in _LEVELS:  # heading, paragraph, line, sentence, word: most preferred first
        # this level may cut only after the chunk holds its minimum share of max_tokens
        fill = first + int(max_tokens * _MIN_FILL[name])
        min_pos = int(starts[fill]) if _MIN_FILL[name] and fill < len(starts) else s + 1
        positions = bounds[name]  # this level's boundaries, sorted character offsets
        hi = np.searchsorted(positions, window_end, side="right")  # boundaries up to the window
        lo = np.searchsorted(positions, max(min_pos, s + 1), side="left")  # ... from min_pos on
        if hi > lo:  # some boundary of this level lies in [min_pos, window_end]: take the last
            return int(positions[hi - 1]), name
    return window_end, "token"  # one word longer than a chunk: cut between tokens


def _overlap_start(
    bounds: dict[str, np.ndarray], starts: np.ndarray, s: int, cut: int, overlap: int
) -> int:
    """Where the next chunk starts: ~`overlap` tokens before `cut`, at the start of a sentence when
    one lies within twice that distance, else at a word."""
    cut_token = int(np.searchsorted(starts, cut))  # the token the cut falls on
    first = int(np.searchsorted(starts, s))  # the chunk's first token
    if cut_token - overlap <= first:  # a chunk shorter than the overlap: no overlap at all
        return cut
    target = int(starts[cut_token - overlap])  # exactly `overlap` tokens back
    earliest = int(starts[max(first + 1, cut_token - 2 * overlap)])  # at most twice as far
    sentence_starts = bounds["sentence starts"]  # not lines: text is often hard-wrapped
    lo = np.searchsorted(sentence_starts, max(earliest, s + 1), side="left")
    near = sentence_starts[lo : np.searchsorted(sentence_starts, cut, side="left")]
    if len(near):  # a sentence starts near enough: the one closest to the target
        return int(near[np.argmin(np.abs(near - target))])
    words = bounds["word"]  # else the first word boundary at or after the target
    i = np.searchsorted(words, target, side="left")
    return int(words[i]) if i < len(words) and s < words[i] < cut else cut


def _positions(pattern: re.Pattern[str], text: str) -> np.ndarray:
    """Where `pattern`'s matches end, sorted, once each (straight into an array: no list)."""
    return _once(np.fromiter((m.end() for m in pattern.finditer(text)), dtype=np.int64))


def _once(ordered: np.ndarray) -> np.ndarray:
    """A sorted array without its repeats (np.unique hashes: seconds on millions)."""
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _blocks(text: str, size: int) -> list[tuple[int, int]]:
    """Cut `text` into spans of about `size` characters, at a newline or space when there is one."""
    blocks, start, n = [], 0, len(text)
    while start < n:
        end = min(start + size, n)
        if end < n:
            for sep in ("\n", " "):
                k = text.rfind(sep, start + size // 2, end)
                if k > start:
                    end = k + 1
                    break
        blocks.append((start, end))
        start = end
    return blocks
