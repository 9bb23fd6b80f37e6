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
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Settings
from ..models.base import Embedder, Reranker
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
from .shared_models import SharedEmbedder, SharedReranker
from .sizing import (
    BUSY_WINDOW_SECONDS,
    WINDOW_SECONDS,
    Throughput,
    estimate_tokens,
    rerank_candidates_for,
)

__all__ = ["Fallback", "GpuUnavailable", "ModelService", "ON_ZEROGPU"]
log = logging.getLogger("qsearch")
SEARCHING_SECONDS = 10.0  # after a short call, this long, windows are BUSY_WINDOW_SECONDS


@dataclass(frozen=True)
class Fallback:
    """A model that could not be loaded and the one that runs instead, with the full reason: the
    terminal and the page say it (web/startup.py) in a short form and in full."""

    role: str  # "embedding" or "reranking"
    wanted: str  # the model asked for (hub id, folder or server URL)
    used: str  # the model running instead
    reason: str  # what went wrong and what to do, in full


class ModelService:
    """The shared models of one server process: load once, one lock, the GPU boundary, speed."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None,
        *,
        notice: str = "",
        rerank_unavailable: str = "",
        fallbacks: Sequence[Fallback] = (),
    ):
        """`embedder` None: `start` loads it in the background (see `loading`)."""
        self.settings, self.notice, self.rerank_unavailable = settings, notice, rerank_unavailable
        self.fallbacks = list(fallbacks)  # what runs instead of what was asked for, and why
        self.loaded = threading.Event()  # set once the embedder is there (or failed to load)
        self.settled = threading.Event()  # set once loaded and its speed measured (or failed)
        if embedder is not None:
            self.settled.set()
        self._loader: threading.Thread | None = None  # start's, until begin_loading
        self.load_error: BaseException | None = None
        self.load_started = time.monotonic()
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
        self.embedder = SharedEmbedder(self, None)
        self._reranker: SharedReranker | None = None
        if embedder is not None:
            self._attach(embedder)

    def _attach(self, embedder: Embedder) -> None:
        _MODELS[self.key, "embedder"] = embedder
        self.embedder.attach(embedder)
        self.loaded.set()

    @property
    def loading(self) -> bool:
        """Whether the embedder is still loading (`start`)."""
        return not self.loaded.is_set()

    def loading_seconds(self) -> float:
        """How long the embedder has been loading (or took to load)."""
        return time.monotonic() - self.load_started

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait for the embedder (at most `timeout` s: whether it is there); ModelLoadError when
        it could not be loaded. A deferred load (`start`) begins now if it had not."""
        self.begin_loading()
        if not self.loaded.wait(timeout):
            return False
        if self.load_error is not None:
            raise ModelLoadError(
                f"The embedding model could not be loaded: {self.load_error}"
            ) from None
        return True

    @classmethod
    def start(cls, settings: Settings, *, measure: bool = not ON_ZEROGPU) -> ModelService:
        """The service at once, its models to load on a thread of their own once `begin_loading`
        is called (server.launch calls it when the server is up, so that loading doesn't slow
        the server's start on a small CPU): the page answers while they load, says so, and what
        needs the embedder waits for it. On ZeroGPU models must be created before any GPU call
        forks a worker: there it loads before returning."""
        if ON_ZEROGPU:
            return cls.load(settings, measure=measure)
        service = cls(settings, None)

        def load() -> None:
            try:
                loaded = cls.load(settings, measure=False)  # its models, fallbacks and notices
                embedder = _MODELS[loaded.key, "embedder"]
                loaded.close()
                service.settings, service.notice = loaded.settings, loaded.notice
                service.rerank_unavailable = loaded.rerank_unavailable
                service.fallbacks = loaded.fallbacks
                service._attach(embedder)
                if measure:
                    service.measure()
            except BaseException as e:  # noqa: BLE001 - any failure is the page's to show
                service.load_error = e
                service.loaded.set()
                log.error("The embedding model could not be loaded: %s", e)
            finally:
                service.settled.set()

        service._loader = threading.Thread(target=load, name="qsearch-model-load", daemon=True)
        return service

    def begin_loading(self) -> None:
        """Start loading the models `start` deferred (at most once; nothing if loaded)."""
        with self._load_lock:
            loader, self._loader = self._loader, None
        if loader is not None:
            self.load_started = time.monotonic()
            loader.start()

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
        self.wait_loaded()  # which reranker, and whether any, is settled with the embedder
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
