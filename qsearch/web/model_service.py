"""The models of a server process, shared by the web page, the /v1 API and MCP.

- **Loading.** Created once, at startup, in the main process (ZeroGPU requires that too); when
  the configured embedder can't be loaded, the bundled all-MiniLM-L6-v2 stands in, with a notice.
- **One lock, one thread.** All model work in the process runs one call at a time, whoever asks,
  and local models run on one thread of their own: every thread that calls torch gets its own
  OpenMP team and allocator arenas: 40 request threads calling MiniLM in turn left 1,484 MB of
  RSS where one thread serving the same 40 left 668 MB (bench/model_thread_memory.py, 2 cores).
- **The GPU boundary** (gpu_boundary.py): every local model call goes through `embed_texts` or
  `score_passages`, so on ZeroGPU all state (sessions, indexes, BM25, files) stays in the main
  process and only texts, vectors and scores cross.
- **Work sized to the machine.** Embedding goes in windows of about WINDOW_SECONDS of compute
  each (ZEROGPU_WINDOW_SECONDS on ZeroGPU, where every GPU call pays for scheduling and a fork:
  an upload is a few large calls), a waiting query first, so progress (with an ETA) moves
  between calls. The speed recorded is the model's own compute time, measured where it runs.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Settings
from ..models.base import Embedder, EmbedderBase, Progress, Reranker, RerankerBase
from ..models.choose import make_embedder, make_reranker, rerank_choice
from ..models.loading import ModelLoadError, bundled_small_model
from .gpu_boundary import (
    _MODELS,
    _RATES,
    ON_ZEROGPU,
    ZEROGPU_WINDOW_SECONDS,
    GpuUnavailable,
    embed_texts,
    gpu_errors,
    score_passages,
    timed,
)
from .model_lock import ModelLock
from .sizing import (
    BUSY_WINDOW_SECONDS,
    FIRST_WINDOW,
    WINDOW_SECONDS,
    Throughput,
    estimate_tokens,
    rerank_candidates_for,
    window_sizes,
)

__all__ = ["Fallback", "GpuUnavailable", "ModelService", "ON_ZEROGPU"]
SEARCHING_SECONDS = 10.0  # after a short call, this long, windows are BUSY_WINDOW_SECONDS


@dataclass(frozen=True)
class Fallback:
    """A model that could not be loaded and the one that runs instead, with the full reason: the
    terminal and the page say it (web/startup.py) in a short form and in full."""

    role: str  # "embedding" or "reranking"
    wanted: str  # the model asked for (hub id, folder or server URL)
    used: str  # the model running instead
    reason: str  # what went wrong and what to do, in full


class SharedEmbedder(EmbedderBase):
    """The service's embedder as an `Embedder`: each window of texts (sized to the measured
    speed) is one call across the GPU boundary, under the lock; the base does the rest."""

    max_batch_tokens = max_batch_size = 1 << 30  # a window is one call: no smaller batches
    prefetch = False  # each window's size reads the speed measured on the window before

    def __init__(self, service: ModelService, model: Embedder):
        self._service, self._model = service, model
        self.model_name, self.dim, self.max_tokens = model.model_name, model.dim, model.max_tokens
        self.supports_instruction = model.supports_instruction
        self.tokenizer = getattr(model, "tokenizer", None)  # chunking runs in the main process
        self.device = str(getattr(model, "device", "remote"))
        self.precision = getattr(model, "precision", None)  # what runs and why, for the page
        self.compiled = bool(getattr(model, "compiled", False))  # loading.compile_on_cpu
        self._call = threading.local()  # per calling thread: whether its windows go first

    def __repr__(self) -> str:
        return f"SharedEmbedder({self._model!r})"

    def prepare(
        self, texts: Sequence[str], *, is_query: bool = False, instruction: str | None = None
    ) -> list[str]:
        """The texts as they are: the model behind the boundary formats and tokenizes them."""
        return list(texts)

    def lengths(self, items: Sequence[str]) -> list[int]:
        return [1] * len(items)  # one window, one call, in input order

    def windows(self, texts: Sequence[str]) -> Iterator[range]:
        """Windows of about WINDOW_SECONDS at the measured speed (re-read before each)."""
        done, per_text = 0, estimate_tokens(texts) / max(len(texts), 1)
        service = self._service
        for size in window_sizes(len(texts), per_text, service.embed_rate, service.window_now):
            yield range(done, done + size)
            done += size

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self._model.count_tokens(texts)

    def encode(
        self,
        texts: Sequence[str],
        *,
        is_query: bool = False,
        instruction: str | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        # a query, or a short call, goes ahead of indexing windows
        self._call.urgent = is_query or len(texts) <= FIRST_WINDOW
        return super().encode(texts, is_query=is_query, instruction=instruction, progress=progress)

    def embed_batch(
        self, items: list[str], *, is_query: bool, instruction: str | None
    ) -> np.ndarray:
        service = self._service
        with service.lock.hold(getattr(self._call, "urgent", True)):
            return service.embed(items, is_query, instruction)  # it records the model's own speed


class SharedReranker(RerankerBase):
    """The service's reranker as a `Reranker`: one GPU-boundary call per query, under the lock."""

    max_batch_tokens = max_batch_size = 1 << 30  # one call per query

    def __init__(self, service: ModelService, model: Reranker):
        self._service, self._model, self.model_name = service, model, model.model_name

    def __repr__(self) -> str:
        return f"SharedReranker({self._model!r})"

    def lengths(self, items: Sequence[str]) -> list[int]:
        return [1] * len(items)

    def count_tokens(self, query: str, texts: Sequence[str], instruction: str | None = None) -> int:
        return self._model.count_tokens(query, texts, instruction)

    def score_batch(self, query: str, items: list[str], instruction: str | None) -> np.ndarray:
        service = self._service
        with service.lock.hold(urgent=True):
            return service.score(query, items, instruction)  # it records the model's own speed


class ModelService:
    """The shared models of one server process: load once, one lock, the GPU boundary, speed."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        *,
        notice: str = "",
        rerank_unavailable: str = "",
        fallbacks: Sequence[Fallback] = (),
    ):
        self.settings, self.notice, self.rerank_unavailable = settings, notice, rerank_unavailable
        self.fallbacks = list(fallbacks)  # what runs instead of what was asked for, and why
        # this service's models in _MODELS (tests run several per process)
        self.key = uuid.uuid4().hex
        self.lock = ModelLock()
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="qsearch-model")
        self._load_lock = threading.Lock()
        self.embed_rate, self.rerank_rate = Throughput(), Throughput()
        _RATES[self.key, "embedder"] = self.embed_rate
        _RATES[self.key, "reranker"] = self.rerank_rate
        self.window_seconds = ZEROGPU_WINDOW_SECONDS if ON_ZEROGPU else WINDOW_SECONDS
        self._local = {"embedder": not settings.embed_url, "reranker": not settings.rerank_url}
        _MODELS[self.key, "embedder"] = embedder
        self.embedder = SharedEmbedder(self, embedder)
        self._reranker: SharedReranker | None = None

    @classmethod
    def load(cls, settings: Settings, *, measure: bool = not ON_ZEROGPU) -> ModelService:
        """The configured models; without the embedder, the bundled small model and a notice."""
        notice, fallbacks = "", []
        if ON_ZEROGPU:  # models run in forked workers there: a recompile would recur every call
            settings = settings.with_(compile=False)
        try:
            embedder = make_embedder(settings)
        except (ModelLoadError, OSError, RuntimeError) as e:
            fallback = bundled_small_model()
            if fallback is None:
                raise
            wanted = settings.embed_url or settings.embed_model
            settings = settings.with_(embed_model=str(fallback), embed_dim=None, embed_url=None)
            embedder = make_embedder(settings)
            notice = (
                f"Could not load {wanted} ({e}). Running on "
                "the small bundled model all-MiniLM-L6-v2 instead: it works, but results are "
                "weaker and task instructions are ignored."
            )
            fallbacks.append(Fallback("embedding", wanted, str(fallback), notice))
        unavailable = ""
        if not settings.rerank_url:  # the reranker, or its fallback cross-encoder, or none
            model, said = rerank_choice(settings)
            if model is None:
                unavailable = f"Reranking is unavailable: {said}"
            elif model != settings.rerank_model:
                fallbacks.append(Fallback("reranking", settings.rerank_model, model, said))
                settings = settings.with_(rerank_model=model)
                notice = f"{notice} {said}".strip()
        service = cls(
            settings, embedder, notice=notice, rerank_unavailable=unavailable, fallbacks=fallbacks
        )
        if ON_ZEROGPU and not unavailable:
            service.reranker()  # ZeroGPU: every model is created at startup, in the main process
        if measure:
            service.measure()
        return service

    def window_now(self) -> float:
        """Seconds of compute for the next embedding window: WINDOW_SECONDS, or
        BUSY_WINDOW_SECONDS while people search (a search waits for one window at most)."""
        if ON_ZEROGPU:  # every call pays for scheduling and a fork there
            return self.window_seconds
        searching = time.monotonic() - self.lock.last_urgent < SEARCHING_SECONDS
        return BUSY_WINDOW_SECONDS if searching else self.window_seconds

    def measure(self) -> None:
        """Time one small batch, so the first progress bar has an ETA and windows fit."""
        sample = [
            "A sentence of ordinary length about nothing in particular, repeated to fill a chunk. "
            * 6
        ] * 4
        self.embedder.encode(sample[:1])  # warm-up: the first call pays for lazy initialisation
        self.embed_rate.clear()
        self.embedder.encode(sample)

    def embed(self, texts: list[str], is_query: bool, instruction: str | None) -> np.ndarray:
        """One model call, its speed recorded; local models go through the GPU boundary (timed
        by the worker), remote servers are called directly."""
        with gpu_errors():
            if self._local["embedder"]:
                vectors, seconds = self._on_model_thread(
                    embed_texts, self.key, texts, is_query, instruction
                )
            else:
                model = _MODELS[self.key, "embedder"]
                vectors, seconds = timed(
                    lambda: model.encode(texts, is_query=is_query, instruction=instruction)
                )
        self.embed_rate.record(estimate_tokens(texts), seconds)
        return vectors

    def score(self, query: str, texts: list[str], instruction: str | None) -> np.ndarray:
        with gpu_errors():
            if self._local["reranker"]:
                scores, seconds = self._on_model_thread(
                    score_passages, self.key, query, texts, instruction
                )
            else:
                model = _MODELS[self.key, "reranker"]
                scores, seconds = timed(lambda: model.score(query, texts, instruction=instruction))
        self.rerank_rate.record(estimate_tokens([query + t for t in texts]), seconds)
        return scores

    def _on_model_thread(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)` on the service's model thread (module docstring), with the caller's
        context variables; on ZeroGPU, where `spaces.GPU` runs models in forked workers and reads
        the request, on the caller's thread as before."""
        if ON_ZEROGPU:
            return call(*args)
        context = contextvars.copy_context()
        return self._model_thread.submit(context.run, call, *args).result()

    def reranker(self) -> SharedReranker:
        """The reranker, loaded the first time it is asked for (at startup on ZeroGPU)."""
        with self._load_lock:
            if self._reranker is None:
                if self.rerank_unavailable:
                    raise ModelLoadError(self.rerank_unavailable)
                try:
                    model = make_reranker(self.settings)
                except Exception as e:  # noqa: BLE001 - any failure to load (damaged weights: not OSError)
                    model = self._fallback_reranker(e)
                _MODELS[self.key, "reranker"] = model
                self._reranker = SharedReranker(self, model)
            return self._reranker

    def _fallback_reranker(self, failed: Exception) -> Reranker:
        """The fallback cross-encoder when the configured reranker fails to load (the page says
        so); else ModelLoadError, and reranking is off from now on."""
        fallback, said = rerank_choice(self.settings, failed)
        try:
            if fallback is None or self.settings.rerank_url:
                raise ModelLoadError(said if fallback is None else failed)
            model = make_reranker(self.settings.with_(rerank_model=fallback))
        except Exception as e:  # noqa: BLE001 - as above
            self.rerank_unavailable = f"Reranking is unavailable: {e}"
            raise ModelLoadError(self.rerank_unavailable) from None
        self.fallbacks.append(Fallback("reranking", self.settings.rerank_model, fallback, said))
        self.settings = self.settings.with_(rerank_model=fallback)
        self.notice = f"{self.notice} {said}".strip()
        return model

    def rerank_candidates(self) -> int:
        """How many candidates rerank in about RERANK_SECONDS at the measured rerank speed; a
        plain default (sizing.DEFAULT_RERANK_CANDIDATES) before the reranker has run."""
        return rerank_candidates_for(self.rerank_rate.per_second, self.settings.chunk_tokens)

    def close(self) -> None:
        """Forget this service's models (tests start several services in one process)."""
        self._model_thread.shutdown(wait=False)
        for role in ("embedder", "reranker"):
            _MODELS.pop((self.key, role), None)
            _RATES.pop((self.key, role), None)
