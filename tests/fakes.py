"""Small, fully predictable stand-ins for engine logic that needs no semantics (as simonw/llm's
test embedder): a text's vector is its words, hashed. Same words, same vector; no shared word,
orthogonal-ish. Each is one method over the models' bases, as every real backend is."""

from __future__ import annotations

import hashlib
import re

import numpy as np
from conftest import WordTokenizer

from qsearch.models.base import EmbedderBase, RerankerBase


class HashingEmbedder(EmbedderBase):
    """Bag of words hashed into `dim` signed buckets (the base L2-normalises). `calls` records
    every batch it was given."""

    model_name = "fake/hashing-embedder"
    supports_instruction = False
    max_tokens = 512

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.tokenizer = WordTokenizer()
        self.calls: list[list[str]] = []

    def embed_batch(
        self, items: list[str], *, is_query: bool, instruction: str | None
    ) -> np.ndarray:
        self.calls.append(list(items))
        out = np.zeros((len(items), self.dim), np.float32)
        for row, text in enumerate(items):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % self.dim] += 1.0 if digest[1] % 2 else -1.0
        return out


class OverlapReranker(RerankerBase):
    """P(relevant) = the share of the query's words found in the passage."""

    model_name = "fake/overlap-reranker"

    def score_batch(self, query: str, items: list[str], instruction: str | None) -> np.ndarray:
        words = set(re.findall(r"\w+", query.lower()))
        return np.array(
            [len(words & set(re.findall(r"\w+", t.lower()))) / max(len(words), 1) for t in items],
            dtype=np.float32,
        )
