"""The GPU boundary of the server process: the only functions under `spaces.GPU`.

`embed_texts` and `score_passages` are pure model calls, texts in, numpy out, plus the seconds
the model computed (timed inside the call, so in the worker on ZeroGPU: sizing then ignores
queueing, scheduling and forking). On ZeroGPU (`spaces` 0.51, spaces/zero/wrappers.py) each
call runs in a worker forked from the main process, reused by later calls of the same function;
arguments and results are pickled; memory changes stay in the worker; every failure arrives as
`gr.Error` titled "ZeroGPU ...", which `gpu_errors` turns into GpuUnavailable: a readable
message on the page, a JSON 503 with the reason on /v1 (openai_api). Off ZeroGPU, spaces.GPU
does nothing, and without the `spaces` package these are plain functions.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gradio as gr
import numpy as np

from .sizing import Throughput, estimate_tokens

_MODELS: dict[tuple[str, str], Any] = {}  # (service key, "embedder" | "reranker") -> the model
_RATES: dict[tuple[str, str], Throughput] = {}  # the same keys -> measured compute tokens/s
_MAIN_PID = os.getpid()
ON_ZEROGPU = bool(os.environ.get("SPACES_ZERO_GPU"))  # as `spaces` identifies ZeroGPU
ZEROGPU_WINDOW_SECONDS = 20.0  # compute per upload call on ZeroGPU: few calls, progress still moves
UNMEASURED_RATE = 20_000.0  # tokens/s assumed before a GPU call has been timed: a slow GPU's
MAX_DURATION = 300  # seconds: the longest GPU call asked for


class GpuUnavailable(gr.Error):
    """ZeroGPU could not run a model call: no GPU, quota, a worker error. `reason` says which."""

    def __init__(self, reason: str):
        super().__init__(
            f"The GPU could not run this request ({reason}). Try again in a moment.",
            title="GPU unavailable",
        )
        self.reason = reason


def zerogpu_reason(error: BaseException) -> str | None:
    """'ZeroGPU quota exceeded: ...' for an error raised by `spaces`, else None."""
    title = getattr(error, "title", "")
    if isinstance(error, gr.Error) and str(title).startswith("ZeroGPU"):
        return f"{title}: {getattr(error, 'message', '') or error}"
    return None


def _gpu(duration: Callable[..., float]) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)` where `spaces` is installed (on Spaces it is); else as is."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return lambda fn: spaces.GPU(fn, duration=duration)


def _seconds(key: str, role: str, tokens: float, short: bool) -> int:
    """ZeroGPU time to ask for: twice the compute at the measured rate (a slow GPU's rate before
    any call), plus 5 s for a query-sized call or 15 s (worker start-up) for a batch."""
    rate = _RATES[key, role].per_second if (key, role) in _RATES else None
    return int(min(MAX_DURATION, (5 if short else 15) + 2 * tokens / (rate or UNMEASURED_RATE)))


def _embed_seconds(
    key: str, texts: Sequence[str], is_query: bool = False, instruction: str | None = None
) -> int:
    return _seconds(key, "embedder", estimate_tokens(texts), short=is_query)


def _score_seconds(
    key: str, query: str, texts: Sequence[str], instruction: str | None = None
) -> int:
    return _seconds(key, "reranker", estimate_tokens([query + t for t in texts]), short=True)


@_gpu(_embed_seconds)
def embed_texts(
    key: str, texts: list[str], is_query: bool = False, instruction: str | None = None
) -> tuple[np.ndarray, float]:
    """Texts -> (float32 vectors (len(texts), dim), seconds the model computed), with the
    service's embedder. Pure: changes nothing."""
    _after_fork()
    started = time.perf_counter()
    vectors = _MODELS[key, "embedder"].encode(texts, is_query=is_query, instruction=instruction)
    return vectors, time.perf_counter() - started


@_gpu(_score_seconds)
def score_passages(
    key: str, query: str, texts: list[str], instruction: str | None = None
) -> tuple[np.ndarray, float]:
    """(query, passages) -> (float32 relevance scores, seconds the model computed), with the
    service's reranker. Pure: changes nothing."""
    _after_fork()
    started = time.perf_counter()
    scores = _MODELS[key, "reranker"].score(query, texts, instruction=instruction)
    return scores, time.perf_counter() - started


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    return call(), time.perf_counter() - started


@contextmanager
def gpu_errors() -> Iterator[None]:
    """A ZeroGPU failure as GpuUnavailable (other errors pass as they are)."""
    try:
        yield
    except gr.Error as e:
        reason = zerogpu_reason(e)
        if reason is None:
            raise
        raise GpuUnavailable(reason) from None


def _after_fork() -> None:
    """In a forked worker (ZeroGPU's), CPU ops run on one thread: OpenMP's thread pool does not
    survive fork(), and a parallel CPU op there can hang. GPU kernels are unaffected."""
    torch = sys.modules.get("torch")  # models that don't use torch (remote, tests) need nothing
    if torch is not None and os.getpid() != _MAIN_PID:
        torch.set_num_threads(1)
