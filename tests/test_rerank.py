"""Reranking: the Qwen3-Reranker template and scores against a direct full-logits computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from references import official_rerank_scores as official_scores

from qsearch.models.embedder import DEFAULT_TASK
from qsearch.models.reranker import PREFIX, SUFFIX, Reranker, format_body, load_reranker

QUERY = "what is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "The mitochondria is the powerhouse of the cell.",
    "yes",
    "The quick brown fox jumps over the lazy dog. " * 10,
]


@pytest.fixture(scope="module")
def reranker(qwen3_reranker_dir):
    return load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32")


def test_contract(reranker):
    assert isinstance(reranker, Reranker)
    scores = reranker.score(QUERY, DOCS)
    assert scores.shape == (len(DOCS),) and scores.dtype == np.float32
    assert ((scores > 0) & (scores < 1)).all()
    assert reranker.score(QUERY, []).shape == (0,)


def test_scores_match_full_logits(reranker, qwen3_reranker_dir):
    np.testing.assert_allclose(
        reranker.score(QUERY, DOCS), official_scores(qwen3_reranker_dir, QUERY, DOCS), atol=1e-5
    )
    task = "Given a claim, find evidence"
    np.testing.assert_allclose(
        reranker.score(QUERY, DOCS, instruction=task),
        official_scores(qwen3_reranker_dir, QUERY, DOCS, task),
        atol=1e-5,
    )


def test_template_is_exact(reranker):
    ids = reranker.prepare(QUERY, ["a document"], "an instruction")[0]
    text = reranker.tokenizer.decode(ids)
    assert text == PREFIX + format_body(QUERY, "a document", "an instruction") + SUFFIX
    assert format_body("q", "d") == f"<Instruct>: {DEFAULT_TASK}\n<Query>: q\n<Document>: d"


def test_only_the_body_is_truncated(qwen3_reranker_dir):
    short = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32", max_length=120)
    for ids in short.prepare(QUERY, DOCS):
        assert len(ids) <= 120
        assert ids[: len(short.prefix_ids)] == short.prefix_ids
        assert ids[-len(short.suffix_ids) :] == short.suffix_ids
    np.testing.assert_allclose(
        short.score(QUERY, DOCS),
        official_scores(qwen3_reranker_dir, QUERY, DOCS, max_length=120),
        atol=1e-5,
    )


def test_batches_do_not_change_scores(qwen3_reranker_dir, reranker):
    tiny_batches = load_reranker(
        str(qwen3_reranker_dir), device="cpu", dtype="float32", max_batch_tokens=100
    )
    np.testing.assert_allclose(
        tiny_batches.score(QUERY, DOCS), reranker.score(QUERY, DOCS), atol=1e-5
    )
    alone = [reranker.score(QUERY, [d])[0] for d in DOCS]
    np.testing.assert_allclose(reranker.score(QUERY, DOCS), alone, atol=1e-5)


def test_non_finite_scores_are_computed_again_in_fp32(qwen3_reranker_dir, reranker, caplog):
    """A low-precision reranker whose hidden state overflows (inf injected into the final norm's
    output, first row, bf16 only): the batch is scored again by a float32 copy; no NaN."""
    low = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="bfloat16", compile=False)

    def hook(module, inputs, output):  # noqa: ANN001, ANN202
        if output.dtype == torch.float32:
            return output
        output = output.clone()
        output[0] = float("inf")
        return output

    low.body.norm.register_forward_hook(hook)
    with caplog.at_level("WARNING", logger="qsearch.models"):
        scores = low.score(QUERY, DOCS)
    assert np.isfinite(scores).all(), "NaN never reaches a score bar or JSON"
    np.testing.assert_allclose(scores, reranker.score(QUERY, DOCS), atol=1e-5)
    assert low.nonfinite_batches >= 1 and "again in float32" in caplog.text


def test_a_single_string_is_refused(reranker):
    with pytest.raises(TypeError, match="not a single string"):
        reranker.score(QUERY, "one passage")
