"""Small, fully predictable stand-ins for engine logic that needs no semantics (as simonw/llm's test
embedder): a text's vector is its words, hashed. Same words, same vector; no shared word, orthogonal-ish."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from conftest import WordTokenizer


class HashingEmbedder:
    """Bag of words hashed into `dim` signed buckets, L2-normalised. Meets the Embedder contract."""

    model_name = "fake/hashing-embedder"
    supports_instruction = False
    max_tokens = 512

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.tokenizer = WordTokenizer()
        self.calls: list[list[str]] = []

    def encode(
        self,
        texts: Sequence[str],
        *,
        is_query: bool = False,
        instruction: str | None = None,
        progress=None,
    ) -> np.ndarray:  # noqa: ANN001
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not a single string")
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % self.dim] += 1.0 if digest[1] % 2 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = np.where(norms > 0, out / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        if progress is not None:
            progress(len(texts), len(texts))
        return out


class OverlapReranker:
    """P(relevant) = the share of the query's words found in the passage. Meets the Reranker contract."""

    model_name = "fake/overlap-reranker"

    def score(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> np.ndarray:
        words = set(re.findall(r"\w+", query.lower()))
        return np.array(
            [len(words & set(re.findall(r"\w+", t.lower()))) / max(len(words), 1) for t in texts],
            dtype=np.float32,
        )
