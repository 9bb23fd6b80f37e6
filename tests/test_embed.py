"""Embedding: the Qwen3 recipe against a direct re-computation, MiniLM against
sentence-transformers; dtype and device by what the hardware computes (torch.cuda faked), the
non-finite guard, sentence-transformers folders, and loading from a hub that never answers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from references import official_qwen3_embeddings

from qsearch.models.embedder import (
    DEFAULT_TASK,
    Embedder,
    format_query,
    load_embedder,
    load_tokenizer,
)
from qsearch.models.loading import ModelLoadError, resolve_model

TEXTS = [
    "Paris is the capital and largest city of France.",
    "The mitochondria is the powerhouse of the cell.",
    "yes",
    "",
    "The quick brown fox jumps over the lazy dog. " * 12,
]


@pytest.fixture(scope="module")
def qwen3(qwen3_embedder_dir):
    return load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32")


def test_contract(qwen3, minilm):
    for embedder in (qwen3, minilm):
        assert isinstance(embedder, Embedder)
        out = embedder.encode(TEXTS)
        assert out.dtype == np.float32 and out.shape == (len(TEXTS), embedder.dim)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        assert embedder.encode([]).shape == (0, embedder.dim)
    with pytest.raises(TypeError):
        qwen3.encode("a single string")


def test_qwen3_documents_match_official_recipe(qwen3, qwen3_embedder_dir):
    np.testing.assert_allclose(
        qwen3.encode(TEXTS), official_qwen3_embeddings(qwen3_embedder_dir, TEXTS), atol=2e-5
    )


def test_qwen3_queries_carry_the_official_instruction(qwen3, qwen3_embedder_dir):
    queries = ["what is the capital of France?", "powerhouse of the cell"]
    task = "Given a question, retrieve passages that answer it"
    expected = official_qwen3_embeddings(
        qwen3_embedder_dir, [f"Instruct: {task}\nQuery:{q}" for q in queries]
    )
    np.testing.assert_allclose(
        qwen3.encode(queries, is_query=True, instruction=task), expected, atol=2e-5
    )
    default = official_qwen3_embeddings(
        qwen3_embedder_dir, [f"Instruct: {DEFAULT_TASK}\nQuery:{q}" for q in queries]
    )
    np.testing.assert_allclose(qwen3.encode(queries, is_query=True), default, atol=2e-5)
    assert format_query("q", "T") == "Instruct: T\nQuery:q"  # no space after "Query:"


def test_eos_ends_every_sequence_exactly_once(qwen3, qwen3_embedder_dir_no_eos):
    old = load_embedder(
        str(qwen3_embedder_dir_no_eos), device="cpu", dtype="float32", max_length=12
    )
    for embedder in (qwen3, old):
        eos = embedder.tokenizer.eos_token_id
        for ids in embedder.prepare(TEXTS) + embedder.prepare(TEXTS, is_query=True):
            assert ids[-1] == eos
            assert len(ids) == 1 or ids[-2] != eos
    truncated = old.prepare([TEXTS[-1]])[0]
    assert len(truncated) == 12 and truncated[-1] == old.tokenizer.eos_token_id
    # With EOS appended by hand, the old tokenizer gives the same vectors as the new one.
    np.testing.assert_allclose(
        load_embedder(str(qwen3_embedder_dir_no_eos), device="cpu", dtype="float32").encode(TEXTS),
        qwen3.encode(TEXTS),
        atol=2e-5,
    )


def test_batch_invariance_and_input_order(qwen3, minilm):
    for embedder in (qwen3, minilm):
        alone = np.stack([embedder.encode([t])[0] for t in TEXTS])
        np.testing.assert_allclose(embedder.encode(TEXTS), alone, atol=2e-5)
        reversed_batch = embedder.encode(TEXTS[::-1])[::-1]
        np.testing.assert_allclose(reversed_batch, alone, atol=2e-5)


def test_token_budget_batches_windows_and_progress(qwen3_embedder_dir):
    embedder = load_embedder(
        str(qwen3_embedder_dir), device="cpu", dtype="float32", max_batch_tokens=64, window=7
    )
    texts = [f"the quick brown fox number {i} " * (1 + i % 7) for i in range(40)]
    seen: list[tuple[int, int]] = []
    out = embedder.encode(texts, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) > 3 and seen[-1] == (40, 40)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    np.testing.assert_allclose(
        out,
        load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32").encode(texts),
        atol=2e-5,
    )


def test_mrl_dimension(qwen3_embedder_dir, qwen3):
    small = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32", dim=32)
    full = qwen3.encode(TEXTS)
    expected = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(small.encode(TEXTS), expected, atol=2e-5)
    for bad in (16, 65):
        with pytest.raises(ValueError, match="32..64"):
            load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32", dim=bad)


def test_minilm_matches_sentence_transformers(minilm, minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm_dir), device="cpu")
    texts = TEXTS + ["word " * 400]  # past the 256-token limit: both truncate the same way
    ours, theirs = minilm.encode(texts), reference.encode(texts, normalize_embeddings=True)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine
    assert minilm.pooling == "mean" and minilm.max_length == 256 and not minilm.supports_instruction


def test_minilm_finds_the_right_passage(minilm):
    passages = [
        "Paris is the capital of France.",
        "Photosynthesis turns light into chemical energy in plants.",
        "The Rhine flows from the Alps to the North Sea.",
    ]
    query = minilm.encode(["How do plants make energy from sunlight?"], is_query=True)
    assert int(np.argmax(minilm.encode(passages) @ query[0])) == 1


def test_load_tokenizer_without_weights(minilm_dir, qwen3_embedder_dir):
    tokenizer, max_tokens = load_tokenizer(str(minilm_dir))
    assert max_tokens == 254  # 256 minus [CLS] and [SEP]
    _, max_tokens = load_tokenizer(str(qwen3_embedder_dir))
    assert max_tokens == 2047  # max positions minus the EOS


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "missing-folder"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_a_hub_that_never_answers_fails_fast_with_advice(tmp_path):
    """A hub (or proxy) that accepts connections and never answers: loading must give up within
    qsearch's own timeouts (HF_HUB_ETAG_TIMEOUT, 5 s by default), not hang. Run in a fresh process
    with the hub online (these tests set HF_HUB_OFFLINE=1, read once at import)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {
        "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}",
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf"),  # nothing cached
    }
    code = "from qsearch.models.loading import resolve_model\nresolve_model('org/no-such-model')"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[1],
        )
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert held, "the hub was asked (not skipped as offline)"
    assert done.returncode != 0 and time.monotonic() - started < 45
    assert "ModelLoadError" in done.stderr and "--embed-model DIR" in done.stderr, done.stderr
    assert "timed out" in done.stderr


def test_sentence_transformers_modules_other_than_pooling_are_refused(qwen3_embedder_dir, tmp_path):
    folder = tmp_path / "with-dense"
    shutil.copytree(qwen3_embedder_dir, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(
        2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(
        json.dumps({"in_features": 64, "out_features": 32, "bias": True})
    )
    with pytest.raises(ModelLoadError, match=r"'sentence_transformers.models.Dense' \(2_Dense\)"):
        load_embedder(str(folder), device="cpu", dtype="float32")


@pytest.mark.gpu
def test_gpu_matches_cpu(qwen3_embedder_dir, qwen3):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    gpu = load_embedder(str(qwen3_embedder_dir), device="cuda")
    cosine = (gpu.encode(TEXTS) * qwen3.encode(TEXTS)).sum(axis=1)
    assert cosine.min() > 0.999
