"""int8 in the memory a laptop has: a bf16 checkpoint loads in bf16 and quantizes exactly as fp32
would, the embedding table runs in int8, the int8 weights are cached on disk (a later start only
packs them), and the cache is checked like the verdicts are. The figures for the 0.6B models are
bench/model_memory.py's, guarded by the slow test at the end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from qsearch.models import cpu, cpu_race, loading, quantize, verdicts, weights_cache
from qsearch.models.embedder import load_embedder
from qsearch.models.reranker import load_reranker

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the quick brown fox", "Paris is the capital of France", "mitochondria " * 30]


@pytest.fixture
def avx2(monkeypatch, tmp_path):
    """An AVX2 CPU whose race put int8 on fbgemm first; verdicts and int8 weights in tmp_path."""
    monkeypatch.setattr(verdicts, "folder", lambda: tmp_path / "cache" / "checks")
    monkeypatch.setattr(cpu, "cpu_features", lambda: ["AVX2"])
    ratios = {"float32": 1.0, "int8/fbgemm": 1.8, "int8+bf16/fbgemm": 1.5}
    monkeypatch.setattr(cpu_race, "race", lambda: ratios)
    cpu_race.choices.cache_clear()
    yield tmp_path / "cache" / "int8"
    cpu_race.choices.cache_clear()


@pytest.fixture
def bf16_checkpoint(qwen3_embedder_dir, tmp_path) -> Path:
    """The tiny Qwen3 embedder saved in bf16, as Qwen3-Embedding-0.6B is published."""
    folder = tmp_path / "bf16"
    shutil.copytree(qwen3_embedder_dir, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    AutoModel.from_pretrained(qwen3_embedder_dir).to(torch.bfloat16).save_pretrained(folder)
    return folder


def test_a_bf16_checkpoint_quantizes_exactly_as_its_fp32_load_would(
    bf16_checkpoint, avx2, monkeypatch
):
    """bf16 -> fp32 is exact: loading in bf16 (half the memory) and quantizing each layer from its
    fp32 value gives the vectors a fp32 load gives, bit for bit."""
    assert loading.checkpoint_dtype(bf16_checkpoint) == "BF16"
    assert loading.pick_dtype("cpu", "int8", bf16_checkpoint) == torch.bfloat16
    assert loading.pick_dtype("cpu", "auto", bf16_checkpoint) == torch.bfloat16  # int8 first
    light = load_embedder(str(bf16_checkpoint), device="cpu", dtype="int8")
    shutil.rmtree(avx2)  # quantize again, from the fp32 load
    monkeypatch.setattr(loading, "checkpoint_dtype", lambda folder: None)
    assert loading.pick_dtype("cpu", "int8", bf16_checkpoint) == torch.float32
    full = load_embedder(str(bf16_checkpoint), device="cpu", dtype="int8")
    np.testing.assert_array_equal(light.encode(TEXTS), full.encode(TEXTS))
    assert quantize.precision_of(light.model) == "int8"


def test_the_embedding_table_runs_in_int8(qwen3_embedder_dir, avx2):
    """One int8 value per weight and one scale per row; the rows it hands on are within half a
    step of the fp32 table's, in the precision the rest runs in."""
    fp32 = AutoModel.from_pretrained(qwen3_embedder_dir, dtype=torch.float32).eval()
    table = fp32.get_input_embeddings().weight.detach().clone()
    for precision, dtype in (("int8", torch.float32), ("int8+bf16", torch.bfloat16)):
        model = quantize.convert(
            AutoModel.from_pretrained(qwen3_embedder_dir).eval(), precision, "fbgemm"
        )
        int8 = model.get_input_embeddings()
        assert int8.weight.dtype == torch.int8 and int8.weight.shape == table.shape
        ids = torch.tensor([[1, 5, 17, 42]])
        rows = int8(ids)
        assert rows.dtype == dtype
        step = table[ids[0]].abs().amax(dim=1, keepdim=True) / 127
        error = (rows[0].float() - table[ids[0]]).abs()
        rounding = 1e-6 if dtype == torch.float32 else table[ids[0]].abs() * 2**-8  # bf16's
        assert (error <= step / 2 + rounding).all()
        assert "int8 rows" in repr(int8)


def test_int8_weights_are_kept_and_a_later_start_only_packs_them(qwen3_embedder_dir, avx2):
    """The first load quantizes and keeps the int8 weights (with a sidecar naming their key and
    checksum); the next one reads them, never quantizing, and embeds bit for bit alike; a file
    altered on disk is removed and the weights quantized and kept again."""
    first = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="int8")
    data, sidecar = sorted(avx2.glob("*.safetensors")), sorted(avx2.glob("*.json"))
    assert len(data) == len(sidecar) == 1 and not list(avx2.glob("*.tmp"))
    entry = json.loads(sidecar[0].read_text())
    assert entry["key"] == json.loads(json.dumps(weights_cache.key(qwen3_embedder_dir)))
    assert len(entry["layers"]) == 14 and len(entry["sha256"]) == 64
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    from_float = dynamic.from_float
    try:
        dynamic.from_float = classmethod(lambda cls, mod: pytest.fail("quantized again"))
        later = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="int8+bf16")
        again = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="int8")
    finally:
        dynamic.from_float = from_float
    np.testing.assert_array_equal(again.encode(TEXTS), first.encode(TEXTS))
    assert quantize.precision_of(later.model) == "int8+bf16"  # one file serves both precisions
    blob = bytearray(data[0].read_bytes())
    blob[-1] ^= 0xFF  # one flipped bit in the last weight
    data[0].write_bytes(bytes(blob))
    assert weights_cache.read(qwen3_embedder_dir) is None
    assert not data[0].exists() and not sidecar[0].exists(), "an altered file is removed"
    redone = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="int8")
    np.testing.assert_array_equal(redone.encode(TEXTS), first.encode(TEXTS))
    assert weights_cache.read(qwen3_embedder_dir) is not None


def test_a_stale_or_unwritable_cache_is_never_trusted(qwen3_embedder_dir, avx2, monkeypatch):
    load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="int8")
    (sidecar,) = avx2.glob("*.json")
    entry = json.loads(sidecar.read_text())
    entry["key"]["torch"] = "0.0"  # written by another torch
    sidecar.write_text(json.dumps(entry))
    assert weights_cache.read(qwen3_embedder_dir) is None and not sidecar.exists()
    monkeypatch.setattr(weights_cache, "folder", lambda: Path("/proc/no-such-folder"))
    model = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="int8")  # runs uncached
    assert quantize.precision_of(model.model) == "int8"


def test_the_reranker_runs_int8_from_the_cache_too(qwen3_reranker_dir, avx2):
    fp32 = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32")
    first = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="int8")
    later = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="int8")
    passages = ["Paris is in France", "bees make honey", "rivers flow to the sea"]
    a, b = (m.score("where is Paris?", passages) for m in (first, later))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, fp32.score("where is Paris?", passages), atol=0.05)
    assert first.head_rows.dtype == torch.float32


@pytest.mark.slow
def test_the_06b_models_fit_a_laptop(shared_data):
    """The issue's bounds on the exact Qwen3-0.6B architectures (random weights) at the CPU's
    default precision: the embedder alone within 1.5 GB of RSS after loading and after embedding
    an upload's 64 chunks; with the reranker loaded and run, both within 3 GB."""
    done = subprocess.run(
        [sys.executable, "bench/model_memory.py", "--random-weights", "--precisions", "auto",
         "--rerank", "--limit", "64", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = json.loads(done.stdout.strip().splitlines()[-1])["runs"]
    assert "error" not in run, run
    assert run["after_load"]["rss_mb"] <= 1500, run
    assert run["after_ingest_rss_mb"] <= 1500, run
    assert run["after_rerank"]["rss_mb"] <= 3000, run
