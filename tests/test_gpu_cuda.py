"""The first run on a real GPU (`make test-gpu`): driver and CUDA, dtype by compute capability,
Qwen3-architecture models on the GPU against the CPU, the non-finite guard, FAISS on the GPU
after a removal and under 8 threads. Every test is `gpu` and skips without CUDA; the same
FAISS paths run on a fake GPU in test_gpu.py."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pytest
import torch
from conftest import unit_vectors

from qsearch.models import loading
from qsearch.store import gpu
from qsearch.store.vectors import DocInfo, VectorIndex, brute_force_search
from qsearch.types import Chunk

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
TEXTS = [
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "yes",
]


def faiss_gpus() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def test_the_driver_cuda_and_gpu_are_reported():
    driver = "nvidia-smi not found"
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv"]
        driver = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    props = torch.cuda.get_device_properties(0)
    print(
        f"\n{driver}\ntorch {torch.__version__}, CUDA {torch.version.cuda}, {props.name} "
        f"sm{props.major}{props.minor}, {props.total_memory / 2**30:.1f} GiB, "
        f"FAISS GPUs {faiss_gpus()}"
    )
    assert torch.version.cuda is not None


def test_dtype_follows_the_compute_capability():
    """bf16 only where it is native (sm80+); torch's is_bf16_supported counts emulation."""
    major, _ = torch.cuda.get_device_capability(0)
    want = torch.bfloat16 if major >= 8 else torch.float16
    assert loading.pick_dtype("cuda") == want, loading.dtype_reason("cuda")
    assert loading.pick_dtype("cuda", "float32") == torch.float32


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_qwen3_models_on_the_gpu_agree_with_the_cpu(qwen3_embedder_dir, qwen3_reranker_dir):
    from qsearch.models.embedder import load_embedder
    from qsearch.models.reranker import load_reranker

    cpu = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32").encode(TEXTS)
    on_gpu = load_embedder(str(qwen3_embedder_dir), device="cuda")
    together = on_gpu.encode(TEXTS)
    alone = np.vstack([on_gpu.encode([t]) for t in TEXTS])
    assert cosines(cpu, together).min() >= 0.999 and cosines(cpu, alone).min() >= 0.999
    query = "capital of France?"
    cpu_scores = load_reranker(str(qwen3_reranker_dir), device="cpu", dtype="float32").score(
        query, TEXTS
    )
    gpu_scores = load_reranker(str(qwen3_reranker_dir), device="cuda").score(query, TEXTS)
    assert np.abs(cpu_scores - gpu_scores).max() <= 0.01


def test_a_non_finite_fp16_batch_is_recomputed(qwen3_embedder_dir, qwen3_reranker_dir):
    """fp16 can overflow in Qwen3 (QwenLM/Qwen3-Embedding#164): the last layer's fp16 output is
    made inf here; what comes out must be finite and equal the fp32 result."""
    from qsearch.models.embedder import load_embedder
    from qsearch.models.reranker import load_reranker

    def poison(module, args, output):  # noqa: ANN001, ANN202
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.dtype == torch.float16:
            hidden[0] = float("inf")
        return output

    cpu = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32").encode(TEXTS)
    fp16 = load_embedder(str(qwen3_embedder_dir), device="cuda", dtype="float16")
    fp16.model.layers[-1].register_forward_hook(poison)
    out = fp16.encode(TEXTS)
    assert np.isfinite(out).all() and cosines(cpu, out).min() >= 0.999
    reranker = load_reranker(str(qwen3_reranker_dir), device="cuda", dtype="float16")
    reranker.body.layers[-1].register_forward_hook(poison)
    scores = reranker.score("capital of France?", TEXTS)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


@pytest.fixture
def gpu_index():
    if not faiss_gpus():
        pytest.skip("this FAISS has no GPU support (faiss-gpu is for Linux x86_64)")
    gpu.configure("cuda", min_vectors=1000)
    index, vectors = VectorIndex(64), unit_vectors(20_000, 64, seed=3)
    for d in range(4):
        rows = vectors[d * 5000 : (d + 1) * 5000]
        chunks = [Chunk(f"d{d}", f"f{d}", f"t{i}", i, i + 1) for i in range(len(rows))]
        index.add(DocInfo(f"d{d}", f"f{d}", len(rows)), chunks, rows)
    yield index, vectors
    gpu.configure()


def test_gpu_faiss_after_remove(gpu_index):
    index, vectors = gpu_index
    queries = vectors[::997]
    assert (index.search(queries, 10)[1][:, 0] == np.arange(0, 20_000, 997)).all()
    assert index._gpu.index is not None and not index._gpu.failed, "searched on the GPU"
    index.remove("d1")
    kept = np.concatenate([vectors[:5000], vectors[10_000:]])
    scores, ids = index.search(kept[:50], 10)
    want, rows = brute_force_search(kept, kept[:50], 10)
    np.testing.assert_allclose(scores, want, atol=1e-3)
    assert not np.isin(ids, np.arange(5000, 10_000)).any(), "removed ids never come back"
    assert index._gpu.index is not None and not index._gpu.failed
    big = index.search(kept[:2], 3000)  # above GPU_MAX_K: the CPU answers
    assert big[0].shape == (2, 3000) and (big[1][:, 0] == [0, 1]).all()


def test_eight_threads_search_one_gpu_index_at_once(gpu_index):
    index, vectors = gpu_index
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def searcher(seed: int) -> None:
        try:
            start.wait()
            for i in range(50):
                rows = (np.arange(4) * 131 + seed * 50 + i) % 20_000
                assert (index.search(vectors[rows], 5)[1][:, 0] == rows).all()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert index._gpu.index is not None and not index._gpu.failed, "all on the GPU"
