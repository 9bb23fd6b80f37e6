"""Work sized to the machine: measured tokens/s, embedding windows of a few seconds, ETAs, and how
many candidates a rerank can take in about RERANK_SECONDS. No heavy imports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

WINDOW_SECONDS = 2.0  # compute in one embedding window: progress moves, a query waits, this long
BUSY_WINDOW_SECONDS = 0.25  # the same while people search (model_service.SEARCHING_SECONDS)
FIRST_WINDOW = 8  # texts in the first window when the speed is not measured yet
MAX_WINDOW = 4096  # texts in one window, however fast the machine
RERANK_SECONDS = 10.0  # the default number of rerank candidates aims at this
DEFAULT_RERANK_CANDIDATES = 30  # until a rerank has been timed
CHARS_PER_TOKEN = 4.0  # English in a subword vocabulary; only for estimates


def estimate_tokens(texts: Sequence[str]) -> float:
    """Tokens in `texts`, estimated from their length (the model's tokenizer is not needed)."""
    return sum(len(t) for t in texts) / CHARS_PER_TOKEN + len(texts)


class Throughput:
    """Tokens per second of one kind of model work, measured as it runs (moving average)."""

    def __init__(self, smoothing: float = 0.3):
        self.smoothing = smoothing
        self.per_second: float | None = None
        self._lock = threading.Lock()

    def record(self, tokens: float, seconds: float) -> None:
        if seconds <= 0 or tokens <= 0:
            return
        rate = tokens / seconds
        with self._lock:
            old = self.per_second
            self.per_second = (
                rate if old is None else (1 - self.smoothing) * old + self.smoothing * rate
            )

    def clear(self) -> None:
        self.per_second = None

    def seconds_for(self, tokens: float) -> float | None:
        return tokens / self.per_second if self.per_second else None


def window_sizes(
    n_texts: int,
    tokens_per_text: float,
    throughput: Throughput,
    seconds: float | Callable[[], float] = WINDOW_SECONDS,
) -> Iterator[int]:
    """Sizes of consecutive windows covering `n_texts` texts, each about `seconds` of compute
    at the measured speed (both re-read before each window; `seconds` may be a function)."""
    done = 0
    while done < n_texts:
        rate, seconds_now = throughput.per_second, seconds() if callable(seconds) else seconds
        size = FIRST_WINDOW if rate is None else int(seconds_now * rate / max(tokens_per_text, 1.0))
        size = max(1, min(size, MAX_WINDOW, n_texts - done))
        yield size
        done += size


def rerank_candidates_for(tokens_per_second: float | None, chunk_tokens: int) -> int:
    """Candidates (a multiple of 5, 5..50) that rerank in about RERANK_SECONDS at the measured
    rerank speed; DEFAULT_RERANK_CANDIDATES before the reranker has run."""
    if not tokens_per_second:
        return DEFAULT_RERANK_CANDIDATES
    per_candidate = chunk_tokens + 100  # the passage, the query and the reranker's template
    n = int(RERANK_SECONDS * tokens_per_second / per_candidate) // 5 * 5
    return max(5, min(50, n))


def eta_text(seconds: float | None) -> str:
    """'about 1 min 20 s left', or '' when unknown."""
    if seconds is None:
        return ""
    seconds = max(1, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"about {minutes} min {seconds} s left" if minutes else f"about {seconds} s left"
