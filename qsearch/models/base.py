"""The two faces of the models wing, and the loop each backend shares.

As simonw/llm's `EmbeddingModel.embed_multi` batches once and a backend writes only
`embed_batch`, `EmbedderBase.encode` does what every embedder needs: it checks the input,
prepares texts in windows (a thread prepares the next window while the model runs), sorts
each window into token-budget batches, reports progress, keeps the first `dim` values,
L2-normalises, and guards against non-finite output. A backend writes `embed_batch` (and,
when it tokenizes, `prepare`); `RerankerBase.score` does the same for `score_batch`.

The non-finite guard: a batch whose vectors or scores are not all finite (fp16 can overflow
in Qwen3 models, QwenLM/Qwen3-Embedding#164) is computed again by `*_batch_fp32`, a backend's
float32 path; NaN or inf never reaches the caller, an index, a score bar or JSON.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import batching, heap

Progress = Callable[[int, int], None]  # (done, total)
DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"
CHARS_PER_TOKEN = 4  # English in a subword vocabulary: for budgets where no tokenizer runs
log = logging.getLogger("qsearch.models")


class NonFiniteError(RuntimeError):
    """A model gave NaN or inf, also in float32 (or it has no float32 path to try)."""


def format_query(query: str, task: str | None = None, sep: str = "") -> str:
    """The official Qwen3-Embedding query format (no space after `Query:`; `sep` for the models
    whose own query prompt has one, such as gte-Qwen2)."""
    return f"Instruct: {task or DEFAULT_TASK}\nQuery:{sep}{query}"


def check_texts(texts: Any, what: str = "texts") -> None:
    """A list (or other sequence) of strings, never one bare string: a clear TypeError otherwise."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"expected a list of {what}, not a single string: pass [text]")
    if not isinstance(texts, Sequence):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] must be a string, got {type(text).__name__}")


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


@runtime_checkable
class Embedder(Protocol):
    """The contract every embedding backend meets (through EmbedderBase)."""

    model_name: str
    dim: int
    max_tokens: int  # longest text (in tokens) that is embedded without truncation
    supports_instruction: bool

    def encode(
        self,
        texts: Sequence[str],
        *,
        is_query: bool = False,
        instruction: str | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """float32 array (len(texts), dim), L2-normalised rows, in input order."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for `texts` (usage reports)."""
        ...


@runtime_checkable
class Reranker(Protocol):
    """The contract every reranking backend meets (through RerankerBase)."""

    model_name: str

    def score(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> np.ndarray:
        """float32 array (len(texts),): higher is more relevant; Qwen3: P(yes) in [0, 1]."""
        ...

    def count_tokens(self, query: str, texts: Sequence[str], instruction: str | None = None) -> int:
        """Tokens the model reads for these pairs (usage reports)."""
        ...


class EmbedderBase(ABC):
    """`encode` once for every backend; a backend writes `embed_batch` (its inputs -> vectors)."""

    model_name: str
    dim: int
    max_tokens: int = 8192
    supports_instruction: bool = False
    window: int = 4096  # texts prepared (and length-sorted) together
    prefetch: bool = True  # prepare the next window in a thread while this one is embedded
    max_batch_tokens: int = 16384  # rows x longest row per embed_batch call
    max_batch_size: int = 512
    nonfinite_batches: int = 0  # batches the guard computed again in float32

    def prepare(
        self, texts: Sequence[str], *, is_query: bool = False, instruction: str | None = None
    ) -> list[Any]:
        """The inputs `embed_batch` takes, one per text: here the texts, queries formatted."""
        if is_query and self.supports_instruction:
            return [format_query(t, instruction) for t in texts]
        return list(texts)

    def lengths(self, items: Sequence[Any]) -> list[int]:
        """Tokens per prepared input: token-id lists count themselves, texts are estimated."""
        return [estimate_tokens(x) if isinstance(x, str) else len(x) for x in items]

    def windows(self, texts: Sequence[str]) -> Iterator[range]:
        """Consecutive ranges of texts prepared together: `window` texts each."""
        for start in range(0, len(texts), self.window):
            yield range(start, min(start + self.window, len(texts)))

    @abstractmethod
    def embed_batch(
        self, items: list[Any], *, is_query: bool, instruction: str | None
    ) -> np.ndarray:
        """Vectors (len(items), >= dim) for one batch of prepared inputs, any float dtype."""

    def embed_batch_fp32(
        self, items: list[Any], *, is_query: bool, instruction: str | None
    ) -> np.ndarray | None:
        """The same batch in float32, for the non-finite guard; None where there is no such path."""
        return None

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for `texts` (for usage reports)."""
        return sum(self.lengths(self.prepare(texts)))

    def encode(
        self,
        texts: Sequence[str],
        *,
        is_query: bool = False,
        instruction: str | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """float32 (len(texts), dim), L2-normalised rows, in input order."""
        check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        done = tokens = 0
        for window, items in self._prepared(texts, is_query, instruction):
            lengths = self.lengths(items)
            tokens += sum(lengths)
            for batch in batching.token_budget_batches(
                lengths, self.max_batch_tokens, self.max_batch_size
            ):
                chosen = [items[i] for i in batch]
                vectors = self.embed_batch(chosen, is_query=is_query, instruction=instruction)
                vectors = self._finite(vectors, chosen, is_query, instruction)
                out[window.start + batch] = normalize(vectors[:, : self.dim])
                done += len(batch)
                if progress is not None:
                    progress(done, len(texts))
        if tokens >= self.max_batch_tokens:  # a batch's activations freed: give them back
            heap.release()
        return out

    def _prepared(
        self, texts: Sequence[str], is_query: bool, instruction: str | None
    ) -> Iterator[tuple[range, list[Any]]]:
        """(window, its prepared inputs), windows taken lazily. With `prefetch`, a thread prepares
        the next window while the caller embeds this one (fast tokenizers release the GIL)."""
        windows = iter(self.windows(texts))
        if not self.prefetch:
            for window in windows:
                chosen = [texts[i] for i in window]
                yield window, self.prepare(chosen, is_query=is_query, instruction=instruction)
            return
        with ThreadPoolExecutor(1) as worker:

            def submit(window: range | None) -> Future | None:
                if window is None:
                    return None
                chosen = [texts[i] for i in window]
                return worker.submit(
                    self.prepare, chosen, is_query=is_query, instruction=instruction
                )

            window = next(windows, None)
            pending = submit(window)
            while window is not None and pending is not None:
                items = pending.result()
                following = next(windows, None)
                pending = submit(following)
                yield window, items
                window = following

    def _finite(
        self, vectors: np.ndarray, items: list[Any], is_query: bool, instruction: str | None
    ) -> np.ndarray:
        if np.isfinite(vectors).all():
            return vectors
        self.nonfinite_batches += 1
        log.warning(
            "%s: non-finite vectors in a batch of %d; computing it again in float32 (%d so far)",
            self.model_name,
            len(items),
            self.nonfinite_batches,
        )
        again = self.embed_batch_fp32(items, is_query=is_query, instruction=instruction)
        if again is None or not np.isfinite(again).all():
            raise NonFiniteError(
                f"{self!r} gave non-finite vectors for {len(items)} inputs"
                + (", also in float32" if again is not None else " and has no float32 path")
            )
        return again


class RerankerBase(ABC):
    """`score` once for every backend; a backend writes `score_batch` (its inputs -> scores)."""

    model_name: str
    max_batch_tokens: int = 1 << 30
    max_batch_size: int = 256
    nonfinite_batches: int = 0

    def prepare(self, query: str, texts: Sequence[str], instruction: str | None = None) -> list:
        """The inputs `score_batch` takes, one per passage: here the passages themselves."""
        return list(texts)

    def lengths(self, items: Sequence[Any]) -> list[int]:
        return [estimate_tokens(x) if isinstance(x, str) else len(x) for x in items]

    @abstractmethod
    def score_batch(self, query: str, items: list[Any], instruction: str | None) -> np.ndarray:
        """Scores (len(items),) for one batch of prepared inputs."""

    def score_batch_fp32(
        self, query: str, items: list[Any], instruction: str | None
    ) -> np.ndarray | None:
        """The same batch in float32, for the non-finite guard; None where there is no such path."""
        return None

    def count_tokens(self, query: str, texts: Sequence[str], instruction: str | None = None) -> int:
        return sum(self.lengths(self.prepare(query, texts, instruction)))

    def score(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> np.ndarray:
        """float32 (len(texts),): higher is more relevant."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        check_texts(texts, "passages")
        out = np.empty(len(texts), dtype=np.float32)
        if not len(texts):
            return out
        items = self.prepare(query, texts, instruction)
        lengths = self.lengths(items)
        for batch in batching.token_budget_batches(
            lengths, self.max_batch_tokens, self.max_batch_size
        ):
            chosen = [items[i] for i in batch]
            scores = np.asarray(self.score_batch(query, chosen, instruction), dtype=np.float32)
            out[batch] = self._finite(scores, query, chosen, instruction)
        if sum(lengths) >= self.max_batch_tokens:  # a batch's activations freed: give them back
            heap.release()
        return out

    def _finite(
        self, scores: np.ndarray, query: str, items: list[Any], instruction: str | None
    ) -> np.ndarray:
        if np.isfinite(scores).all():
            return scores
        self.nonfinite_batches += 1
        log.warning(
            "%s: non-finite scores in a batch of %d; computing it again in float32 (%d so far)",
            self.model_name,
            len(items),
            self.nonfinite_batches,
        )
        again = self.score_batch_fp32(query, items, instruction)
        if again is None or not np.isfinite(again).all():
            raise NonFiniteError(
                f"{self!r} gave non-finite scores for {len(items)} passages"
                + (", also in float32" if again is not None else " and has no float32 path")
            )
        return np.asarray(again, dtype=np.float32)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
