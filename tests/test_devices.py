"""What runs where: dtype, attention and token budget by the GPU's compute capability (torch.cuda
faked as each GPU; no GPU here), Apple's MPS and its CPU fallback, and the non-finite guard on a
low-precision model that overflows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import HashingEmbedder
from references import official_qwen3_embeddings

from qsearch.models import attention, batching, loading
from qsearch.models.base import NonFiniteError
from qsearch.models.embedder import load_embedder

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


def fake_gpu(monkeypatch, capability: tuple[int, int], gib: float, name: str) -> None:
    """torch.cuda as on a real `name`: its capability and memory; `is_bf16_supported` True, as
    torch 2.13 reports even on a T4 (it counts emulation)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    props = type("Props", (), {"total_memory": int(gib * 2**30), "name": name})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)


@pytest.mark.parametrize(
    ("gpu", "capability", "gib", "dtype", "budget", "attn"),
    [
        ("Tesla T4", (7, 5), 15.0, torch.float16, 15360, attention.SDPA_REPEAT_KV),
        ("A100-SXM4-40GB", (8, 0), 39.4, torch.bfloat16, 16384, "sdpa"),
        ("H100 80GB HBM3", (9, 0), 79.2, torch.bfloat16, 16384, "sdpa"),
    ],
)
def test_dtype_attention_and_budget_by_gpu(monkeypatch, gpu, capability, gib, dtype, budget, attn):
    fake_gpu(monkeypatch, capability, gib, gpu)
    assert loading.pick_device("auto") == "cuda"
    assert loading.pick_dtype("cuda") == dtype, gpu
    assert f"{capability[0]}.{capability[1]}" in loading.dtype_reason("cuda")
    assert loading.pick_dtype("cuda", "float32") == torch.float32, "fp32 on request"
    assert loading.pick_attention("cuda") == attn
    assert batching.default_token_budget("cuda") == budget


def test_apple_silicon_runs_mps_in_fp16_and_falls_back_to_the_cpu(monkeypatch, qwen3_embedder_dir):
    """MPS where torch reports it; this torch has no MPS, so moving the model there fails as it
    would on a Mac where an op is missing: the model runs on the CPU and says why."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert loading.pick_device("auto") == "mps"
    assert loading.pick_dtype("mps") == torch.float16
    assert loading.pick_dtype("mps", "float32") == torch.float32
    assert "MPS" in loading.dtype_reason("mps")
    embedder = load_embedder(str(qwen3_embedder_dir), device="auto", dtype="float32")
    assert embedder.device == "cpu" and "MPS failed" in embedder.precision, embedder.precision
    np.testing.assert_allclose(
        embedder.encode(TEXTS), official_qwen3_embeddings(qwen3_embedder_dir, TEXTS), atol=2e-5
    )


def inject_inf(model) -> None:  # noqa: ANN001
    """Overflow as fp16 Qwen3 models can (QwenLM/Qwen3-Embedding#164): the final norm's output
    of the first row becomes inf, in a low-precision model only."""

    def hook(module, inputs, output):  # noqa: ANN001, ANN202
        if output.dtype == torch.float32:
            return output
        output = output.clone()
        output[0] = float("inf")
        return output

    model.norm.register_forward_hook(hook)


def test_non_finite_vectors_are_computed_again_in_fp32(qwen3_embedder_dir, qwen3, caplog):
    low = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="bfloat16", compile=False)
    inject_inf(low.model)
    with caplog.at_level("WARNING", logger="qsearch.models"):
        out = low.encode(TEXTS)
    assert np.isfinite(out).all(), "NaN never reaches the caller"
    np.testing.assert_allclose(out, qwen3.encode(TEXTS), atol=2e-5)  # the fp32 recomputation
    assert low.nonfinite_batches >= 1 and "again in float32" in caplog.text
    assert low._fp32_model.dtype == torch.float32


def test_a_backend_without_an_fp32_path_raises_instead_of_returning_nan():
    class Broken(HashingEmbedder):
        def embed_batch(self, items, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return np.full((len(items), self.dim), np.nan, np.float32)

    with pytest.raises(NonFiniteError, match="non-finite vectors"):
        Broken().encode(["a", "b"])


def test_repeated_kv_attention_gives_the_same_vectors(qwen3_embedder_dir, qwen3, monkeypatch):
    """Below sm80 (attention.py): SDPA is called with as many K/V heads as query heads and never
    `enable_gqa`, so its memory-efficient kernel can run; the vectors stay the same."""
    monkeypatch.setattr(loading, "pick_attention", lambda device: attention.register())
    calls: list[tuple[int, int, bool]] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append((query.shape[1], key.shape[1], bool(kwargs.get("enable_gqa"))))
        return sdpa(query, key, value, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    repeated = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32")
    assert repeated.model.config._attn_implementation == attention.SDPA_REPEAT_KV
    vectors = repeated.encode(TEXTS)
    assert calls and all(q == k and not gqa for q, k, gqa in calls), calls[:3]
    calls.clear()
    np.testing.assert_allclose(vectors, qwen3.encode(TEXTS), atol=2e-5)
    assert all(q != k and gqa for q, k, gqa in calls), "plain SDPA: GQA, as transformers#48633"


@pytest.mark.gpu
def test_gpu_attention_runs_on_the_memory_efficient_kernel(qwen3_embedder_dir, qwen3):
    """On a real GPU, with SDPA limited to its memory-efficient kernel: plain SDPA (transformers
    passes enable_gqa with unequal heads, transformers#48633) finds no kernel, the repeated-K/V
    attention runs and gives the CPU's vectors."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    plain = load_embedder(str(qwen3_embedder_dir), device="cuda", dtype="float16")
    plain.model.set_attn_implementation("sdpa")
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION), pytest.raises(RuntimeError):
        plain.encode(TEXTS)
    plain.model.set_attn_implementation(attention.register())
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        vectors = plain.encode(TEXTS)
    assert (vectors * qwen3.encode(TEXTS)).sum(1).min() > 0.999


@pytest.mark.gpu
def test_gpu_fp16_overflow_is_computed_again_in_fp32(qwen3_embedder_dir, qwen3):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    low = load_embedder(str(qwen3_embedder_dir), device="cuda", dtype="float16")
    inject_inf(low.model)
    out = low.encode(TEXTS)
    assert np.isfinite(out).all() and low.nonfinite_batches >= 1
    assert (out * qwen3.encode(TEXTS)).sum(1).min() > 0.999
