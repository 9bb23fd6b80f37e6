"""Reranking: the Qwen3-Reranker template and scores against a direct full-logits computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qsearch.models.embedder import DEFAULT_TASK
from qsearch.models.reranker import PREFIX, SUFFIX, Reranker, format_body, load_reranker

QUERY = "what is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "The mitochondria is the powerhouse of the cell.",
    "yes",
    "The quick brown fox jumps over the lazy dog. " * 10,
]


def official_scores(
    folder, query: str, docs: list[str], instruction: str | None = None, max_length: int = 8192
) -> np.ndarray:
    """The Qwen3-Reranker model card's recipe: full logits at the last position, [no, yes] softmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prefix = tokenizer.encode(PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(SUFFIX, add_special_tokens=False)
    pairs = [
        f"<Instruct>: {instruction or DEFAULT_TASK}\n<Query>: {query}\n<Document>: {d}"
        for d in docs
    ]
    inputs = tokenizer(
        pairs,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix) - len(suffix),
    )
    inputs["input_ids"] = [prefix + ids + suffix for ids in inputs["input_ids"]]
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    no, yes = tokenizer.convert_tokens_to_ids("no"), tokenizer.convert_tokens_to_ids("yes")
    with torch.no_grad():
        logits = model(**inputs).logits[:, -1, :]
    pair = torch.stack([logits[:, no], logits[:, yes]], dim=1)
    return torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().numpy()


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
