"""The service's models as an `Embedder` and a `Reranker` (model_service.py): each call crosses
the GPU boundary under the service's lock, windows sized to the measured speed, a query first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..models.base import Embedder, EmbedderBase, Progress, Reranker, RerankerBase
from .sizing import FIRST_WINDOW, estimate_tokens, window_sizes

if TYPE_CHECKING:
    from .model_service import ModelService


class SharedEmbedder(EmbedderBase):
    """The service's embedder as an `Embedder`: each window of texts (sized to the measured
    speed) is one call across the GPU boundary, under the lock; the base does the rest.

    While the service loads its model in the background (`ModelService.start`), what needs the
    model (its name, dimension, tokenizer, any call) waits for it; what the page shows about it
    (device, precision, whether it takes instructions) answers at once, provisionally."""

    max_batch_tokens = max_batch_size = 1 << 30  # a window is one call: no smaller batches
    prefetch = False  # each window's size reads the speed measured on the window before

    def __init__(self, service: ModelService, model: Embedder | None):
        self._service, self._model = service, None
        self._call = threading.local()  # per calling thread: whether its windows go first
        if model is not None:
            self.attach(model)

    def attach(self, model: Embedder) -> None:
        """The loaded model, and the facts about it the rest of the process reads."""
        self._facts = {
            "model_name": model.model_name,
            "dim": model.dim,
            "max_tokens": model.max_tokens,
            "tokenizer": getattr(model, "tokenizer", None),  # chunking runs in the main process
        }
        self._shown = {
            "supports_instruction": model.supports_instruction,
            "device": str(getattr(model, "device", "remote")),
            "precision": getattr(model, "precision", None),  # what runs and why, for the page
            "compiled": bool(getattr(model, "compiled", False)),  # loading.compile_on_cpu
        }
        self._model = model

    def _fact(self, name: str) -> Any:
        if self._model is None:
            self._service.wait_loaded()
        return self._facts[name]

    model_name = property(lambda self: self._fact("model_name"))  # type: ignore[assignment]
    dim = property(lambda self: self._fact("dim"))  # type: ignore[assignment]
    max_tokens = property(lambda self: self._fact("max_tokens"))  # type: ignore[assignment]
    tokenizer = property(lambda self: self._fact("tokenizer"))
    # while loading: instructions as Qwen3 takes them, the device and precision not known yet
    supports_instruction = property(  # type: ignore[assignment]
        lambda self: self._shown["supports_instruction"] if self._model is not None else True
    )
    device = property(lambda self: self._shown["device"] if self._model is not None else "loading")
    precision = property(lambda self: self._shown["precision"] if self._model is not None else None)
    compiled = property(lambda self: self._shown["compiled"] if self._model is not None else False)

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
        self._fact("model_name")
        return self._model.count_tokens(texts)

    def encode(
        self,
        texts: Sequence[str],
        *,
        is_query: bool = False,
        instruction: str | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        self._fact("model_name")  # while the model loads, wait for it
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
