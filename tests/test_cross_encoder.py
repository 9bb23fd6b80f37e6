"""The cross-encoder backend (models/cross_encoder.py) and the reranker fallback: when
Qwen3-Reranker can't be loaded, the app reranks with a cross-encoder the machine has (said on the
page), or with none (and says why), as the embedder falls back to MiniLM."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from qsearch import Settings
from qsearch.models import loading
from qsearch.models.cross_encoder import CrossEncoderReranker
from qsearch.models.reranker import Qwen3Reranker, load_reranker
from qsearch.web.model_service import ModelService

QUERY = "why does bread rise?"
PASSAGES = ["Bread rises because yeast makes gas.", "The tides follow the moon. " * 40]


def test_long_pairs_truncate_as_sentence_transformers_does(cross_encoder_dir):
    st = pytest.importorskip("sentence_transformers")
    ours = load_reranker(str(cross_encoder_dir), device="cpu", dtype="float32")
    assert isinstance(ours, CrossEncoderReranker) and ours.max_length == 128
    theirs = st.CrossEncoder(str(cross_encoder_dir), device="cpu")
    expected = theirs.predict([(QUERY, p) for p in PASSAGES])  # the second is past 128 tokens
    np.testing.assert_allclose(ours.score(QUERY, PASSAGES), expected, atol=1e-5)


def test_the_folder_decides_the_backend(cross_encoder_dir, qwen3_reranker_dir):
    assert isinstance(
        load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32"), Qwen3Reranker
    )
    assert isinstance(
        load_reranker(str(cross_encoder_dir), device="cpu", dtype="float32"), CrossEncoderReranker
    )


def test_a_cross_encoder_with_several_labels_is_refused(cross_encoder_dir, tmp_path):
    folder = shutil.copytree(cross_encoder_dir, tmp_path / "three")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(loading.ModelLoadError, match="3 labels; supported: one label"):
        CrossEncoderReranker(str(folder), device="cpu")


def service(minilm_dir, **settings) -> ModelService:  # noqa: ANN003
    return ModelService.load(
        Settings(embed_model=str(minilm_dir), device="cpu", **settings), measure=False
    )


def test_a_missing_reranker_falls_back_to_the_cross_encoder(minilm_dir, cross_encoder_dir):
    shared = service(
        minilm_dir, rerank_model="/no/such/reranker", rerank_fallback=str(cross_encoder_dir)
    )
    assert shared.rerank_unavailable == "" and shared.settings.rerank_model == str(
        cross_encoder_dir
    )
    assert "Could not load the reranker /no/such/reranker (model folder" in shared.notice
    assert f"Reranking with the cross-encoder {cross_encoder_dir} instead" in shared.notice
    scores = shared.reranker().score(QUERY, PASSAGES)
    assert scores.shape == (2,) and ((0 < scores) & (scores < 1)).all()


def test_without_a_fallback_reranking_is_off_and_says_why(minilm_dir, tmp_path):
    off = service(minilm_dir, rerank_model="/no/such/reranker", rerank_fallback="none")
    assert off.rerank_unavailable.startswith(
        "Reranking is unavailable: model folder '/no/such/reranker'"
    )
    neither = service(
        minilm_dir, rerank_model="/no/such/reranker", rerank_fallback=str(tmp_path / "gone")
    )
    assert "Nor can its fallback be loaded: model folder" in neither.rerank_unavailable
    with pytest.raises(loading.ModelLoadError, match="Reranking is unavailable"):
        neither.reranker()


def test_a_reranker_that_fails_to_load_falls_back_too(minilm_dir, cross_encoder_dir, tmp_path):
    """Found, but its weights are damaged: loading fails at first use, and the fallback runs."""
    broken = shutil.copytree(cross_encoder_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    shared = service(minilm_dir, rerank_model=str(broken), rerank_fallback=str(cross_encoder_dir))
    assert shared.rerank_unavailable == "" and shared.notice == ""
    assert shared.reranker().score(QUERY, PASSAGES[:1]).shape == (1,)
    assert shared.settings.rerank_model == str(cross_encoder_dir)
    assert f"Could not load the reranker {broken}" in shared.notice


def test_the_fallback_is_a_setting_of_the_app(monkeypatch):
    from qsearch.app_flags import parse_app_args

    assert Settings().rerank_fallback == "cross-encoder/ms-marco-MiniLM-L6-v2"
    assert parse_app_args(["--rerank-fallback", "none"])[1].rerank_fallback == "none"
    monkeypatch.setenv("QSEARCH_RERANK_FALLBACK", "/models/ce")
    assert parse_app_args([])[1].rerank_fallback == "/models/ce"


def test_without_a_reranker_the_page_says_so_in_one_plain_sentence(minilm_dir):
    """Not the loader's text (it names HF_HUB_OFFLINE): one sentence on the page, the reason in
    the server details; and the instruction field says that nothing here reads it (MiniLM
    ignores instructions), so it can't be edited."""
    from qsearch.web.page import build_page
    from qsearch.web.server import Context

    ctx = Context.create(
        Settings(embed_model=str(minilm_dir), device="cpu", rerank_model="/no/such/reranker",
                 rerank_fallback="none"),
    )  # fmt: skip
    try:
        off = ctx.rerank_off()
        assert off.startswith("This server has no reranker") and off.count(". ") == 0, off
        assert "/no/such/reranker" in ctx.status_markdown() and "/no/such" not in off
        demo = build_page(ctx)
        shown = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
        assert shown["qs-rerank"].info == off and not shown["qs-rerank"].interactive
        assert shown["qs-instruction"].info.startswith("Nothing here reads it")
        assert shown["qs-instruction"].interactive is False
        assert shown["qs-min-score"].value == ctx.service.settings.min_score
    finally:
        ctx.service.close()
