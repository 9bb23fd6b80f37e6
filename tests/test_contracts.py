"""One contract suite over every Embedder backend and every Reranker backend (as txtai runs one
suite over every ANN backend): the tiny Qwen3 (last-token), MiniLM (mean), a tiny cross-encoder,
a remote /v1 server, the model service's shared proxy, and the test fake, each through the bases
in models/base.py."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import HashingEmbedder, OverlapReranker
from references import official_rerank_scores

from qsearch.models.base import Embedder, EmbedderBase, NonFiniteError, Reranker, RerankerBase
from qsearch.models.cross_encoder import CrossEncoderReranker

TEXTS = [
    "Paris is the capital of France.",
    "The mitochondria is the powerhouse of the cell.",
    "yes",
    "Tides follow the moon. " * 20,
    "東京大学は日本の国立大学です。",
]
QUERY = "what is the capital of France?"


@pytest.fixture(
    scope="module", params=["qwen3-last-token", "minilm-mean", "remote", "shared", "fake"]
)
def embedder(request, qwen3_embedder_dir) -> Embedder:
    from qsearch.models.embedder import load_embedder

    kind = request.param
    if kind == "qwen3-last-token":
        return load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32")
    if kind == "minilm-mean":
        return request.getfixturevalue("minilm")
    if kind == "remote":
        from qsearch.models.remote import RemoteEmbedder

        return RemoteEmbedder(request.getfixturevalue("app_server")[1])
    if kind == "shared":
        from qsearch import Settings
        from qsearch.web.model_service import ModelService

        return ModelService.load(
            Settings(
                embed_model=str(qwen3_embedder_dir),
                rerank_model="none/none",
                device="cpu",
                dtype="float32",
            )
        ).embedder
    return HashingEmbedder()


def test_embedder_contract(embedder):
    assert isinstance(embedder, Embedder) and isinstance(embedder, EmbedderBase)
    assert embedder.dim > 0 and embedder.max_tokens > 0
    out = embedder.encode(TEXTS)
    assert out.dtype == np.float32 and out.shape == (len(TEXTS), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, embedder.dim)
    with pytest.raises(TypeError, match="a list of texts"):
        embedder.encode("one string")
    progress: list[tuple[int, int]] = []
    queries = embedder.encode(
        [QUERY, "cells"], is_query=True, progress=lambda d, t: progress.append((d, t))
    )
    assert queries.shape == (2, embedder.dim) and progress[-1] == (2, 2)


def test_embedder_batch_invariance_and_order(embedder):
    together = embedder.encode(TEXTS)
    alone = np.vstack([embedder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    np.testing.assert_allclose(embedder.encode(TEXTS[::-1]), together[::-1], atol=2e-5)


def test_embedder_meaning(embedder):
    if embedder.model_name.startswith("fake/") or "qwen3" in embedder.model_name.lower():
        pytest.skip("random or hashed weights: vectors carry no meaning")
    docs = embedder.encode(TEXTS[:3])
    query = embedder.encode([QUERY], is_query=True)[0]
    assert int(np.argmax(docs @ query)) == 0


@pytest.fixture(scope="module", params=["qwen3", "cross-encoder", "remote", "shared", "fake"])
def reranker(request, qwen3_reranker_dir, qwen3_embedder_dir) -> Reranker:
    from qsearch.models.reranker import load_reranker

    kind = request.param
    if kind == "qwen3":
        return load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32")
    if kind == "cross-encoder":
        folder = request.getfixturevalue("cross_encoder_dir")
        return load_reranker(str(folder), device="cpu", dtype="float32")
    if kind == "remote":
        from qsearch.models.remote import RemoteReranker

        return RemoteReranker(request.getfixturevalue("app_server")[1])
    if kind == "shared":
        from qsearch import Settings
        from qsearch.web.model_service import ModelService

        return ModelService.load(
            Settings(
                embed_model=str(qwen3_embedder_dir),
                rerank_model=str(qwen3_reranker_dir),
                device="cpu",
                dtype="float32",
            ),
            measure=False,
        ).reranker()
    return OverlapReranker()


def test_reranker_contract(reranker):
    assert isinstance(reranker, Reranker) and isinstance(reranker, RerankerBase)
    scores = reranker.score(QUERY, TEXTS)
    assert scores.dtype == np.float32 and scores.shape == (len(TEXTS),)
    assert ((0 <= scores) & (scores <= 1)).all()
    assert reranker.score(QUERY, []).shape == (0,)
    np.testing.assert_allclose(reranker.score(QUERY, TEXTS[::-1]), scores[::-1], atol=1e-5)
    one_by_one = np.concatenate([reranker.score(QUERY, [t]) for t in TEXTS])
    np.testing.assert_allclose(one_by_one, scores, atol=1e-5)


def test_rerankers_give_the_reference_scores(reranker, qwen3_reranker_dir):
    """Every Qwen3-backed reranker (local, remote, shared) against the model card's recipe,
    computed independently (references.py: full logits, left padding), not against itself; the
    cross-encoder against sentence-transformers' CrossEncoder on the same folder."""
    if isinstance(reranker, OverlapReranker):
        pytest.skip("the fake is its own reference")
    if isinstance(reranker, CrossEncoderReranker):
        st = pytest.importorskip("sentence_transformers")
        theirs = st.CrossEncoder(str(reranker.folder), device="cpu")
        expected = theirs.predict([(QUERY, t) for t in TEXTS])
        np.testing.assert_allclose(reranker.score(QUERY, TEXTS), expected, atol=1e-5)
        return
    for instruction in (None, "Find facts about cities"):
        np.testing.assert_allclose(
            reranker.score(QUERY, TEXTS, instruction=instruction),
            official_rerank_scores(qwen3_reranker_dir, QUERY, TEXTS, instruction),
            atol=1e-5,
        )


def test_the_non_finite_guard_runs_for_every_backend(embedder, reranker, monkeypatch):
    """The guard lives in the bases: whichever backend, a batch that comes back with NaN is
    computed again by its float32 path, or raises when there is none; NaN never comes back."""
    cls = type(embedder)
    nan_rows = lambda self, items, **kw: np.full((len(items), embedder.dim), np.nan)  # noqa: E731
    monkeypatch.setattr(cls, "embed_batch", nan_rows)
    monkeypatch.setattr(
        cls, "embed_batch_fp32", lambda self, items, **kw: np.ones((len(items), embedder.dim))
    )
    np.testing.assert_allclose(embedder.encode(["a", "b"]), 1 / np.sqrt(embedder.dim), rtol=1e-6)
    monkeypatch.setattr(cls, "embed_batch_fp32", lambda self, items, **kw: None)
    with pytest.raises(NonFiniteError, match="non-finite vectors"):
        embedder.encode(["a passage"])
    cls = type(reranker)
    monkeypatch.setattr(cls, "score_batch", lambda self, q, items, i: np.full(len(items), np.nan))
    monkeypatch.setattr(cls, "score_batch_fp32", lambda self, q, items, i: np.full(len(items), 0.5))
    np.testing.assert_allclose(reranker.score(QUERY, ["a", "b"]), [0.5, 0.5])
    monkeypatch.setattr(cls, "score_batch_fp32", lambda self, q, items, i: None)
    with pytest.raises(NonFiniteError, match="non-finite scores"):
        reranker.score(QUERY, ["a passage"])
