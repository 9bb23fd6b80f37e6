"""Instant repeats: what a search computed, kept for the next search that needs the same thing.

A repeated query, or the same query with another result count, mode or rerank setting,
reuses three things (the query cache of the reranking design this project started from):
- the query vector, keyed by (model, dimension, query, instruction);
- the scored candidates, keyed by (query vector, ranking, width, and each collection's
  identity and version): any add, remove or clear bumps a collection's change counter,
  so a changed collection is never answered from an old entry;
- the reranker's scores, one per (reranker model, query, instruction, passage text): a
  passage scored once is not scored again, whatever else is in the batch.
- the embedder's relevance anchors (relevance.py), keyed by (model, dimension, instruction):
  measured once, on the first search with each.
Each is an LRU bounded by entries (sizes below; ~5 MB at most with 1024-dim vectors and
100-candidate pools). The cache is thread-safe: one engine serves several threads.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from .relevance import Anchors, Scale, anchor_passages, measure_anchors

if TYPE_CHECKING:  # retrieval imports this module
    from .retrieval import Candidate

V = TypeVar("V")

VECTORS = 256  # query vectors (4 KB each at 1024 dims)
POOLS = 64  # candidate lists (up to a few hundred Candidates each, sharing the stored chunks)
RERANK_SCORES = 8192  # single floats keyed by passage text (the text is the stored string)
ANCHORS = 16  # two floats per (model, dimension, instruction)


class LRU(Generic[V]):
    """A dict bounded to `size` entries that forgets the least recently used first."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"cache size must be at least 1, got {size}")
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_serial = itertools.count(1)
_tokens: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_tokens_lock = threading.Lock()


def version(collection: Any) -> tuple[int, int]:
    """(identity, change counter) of a collection's store: equal only while nothing changed.

    The identity is a serial number given to the store object on first sight (never reused,
    unlike `id()`), so a replaced store never matches an entry of the one it replaced."""
    store = collection  # the store itself: the collection contract (store/base.py)
    with _tokens_lock:
        token = _tokens.get(store)
        if token is None:
            token = _tokens[store] = next(_serial)
    return token, int(store.changes)


class SearchCache:
    """The three caches of one engine: query vectors, scored candidates, reranker scores."""

    def __init__(
        self, vectors: int = VECTORS, pools: int = POOLS, rerank_scores: int = RERANK_SCORES
    ):
        self.vectors: LRU[np.ndarray] = LRU(vectors)
        self.pools: LRU[list[Candidate]] = LRU(pools)
        self.scores: LRU[float] = LRU(rerank_scores)
        self.anchors: LRU[Anchors] = LRU(ANCHORS)

    def scale(self, embedder: Any, instruction: str | None) -> Scale:
        """The relevance scale of the embedder's cosines (relevance.measure_anchors), measured
        once per (model, dimension, instruction); the anchor passages once per model."""
        key = (embedder.model_name, embedder.dim, instruction)
        anchors = self.anchors.get(key)
        if anchors is None:
            model = ("anchor passages", *key[:2])
            passages = self.vectors.get(model)
            if passages is None:
                passages = anchor_passages(embedder)
                self.vectors.put(model, passages)
            anchors = measure_anchors(embedder, instruction, passages=passages)
            self.anchors.put(key, anchors)
        return Scale(anchors)

    def query_vector(self, embedder: Any, query: str, instruction: str | None) -> np.ndarray:
        """The query's vector, embedded once per (model, dimension, query, instruction)."""
        key = (embedder.model_name, embedder.dim, query, instruction)
        vector = self.vectors.get(key)
        if vector is None:
            vector = embedder.encode([query], is_query=True, instruction=instruction)[0]
            vector.setflags(write=False)  # shared between searches: nobody may change it
            self.vectors.put(key, vector)
        return vector

    def candidates(
        self,
        collections: Sequence[Any],
        query: str,
        vector: np.ndarray | None,
        ranking: Hashable,
        width: int,
        compute: Callable[[], list[Candidate]],
        scope: Hashable = None,
    ) -> list[Candidate]:
        """The scored candidates `compute` returns, once per query, vector, ranking (with the
        relevance scale), width, collection versions and `scope` (what the search was narrowed
        to)."""
        key = (
            query,
            None if vector is None else vector.tobytes(),
            ranking,
            width,
            tuple(version(c) for c in collections),
            scope,
        )
        found = self.pools.get(key)
        if found is None:
            found = compute()
            self.pools.put(key, found)
        return found

    def rerank_scores(
        self, reranker: Any, query: str, texts: Sequence[str], instruction: str | None
    ) -> np.ndarray:
        """P(relevant) for each text; only the passages not scored before go to the reranker."""
        keys = [(reranker.model_name, query, instruction, t) for t in texts]
        scores = [self.scores.get(k) for k in keys]
        todo = [i for i, s in enumerate(scores) if s is None]
        if todo:
            new = reranker.score(query, [texts[i] for i in todo], instruction=instruction)
            for i, s in zip(todo, new):
                scores[i] = float(s)
                self.scores.put(keys[i], float(s))
        return np.array(scores, dtype=np.float32)

    def clear(self) -> None:
        for lru in (self.vectors, self.pools, self.scores, self.anchors):
            lru.clear()
