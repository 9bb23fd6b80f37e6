"""FAISS on a GPU (store/gpu.py) against a fake GPU half with FAISS's real limits
(fake_faiss_gpu.py): when a GPU copy is made, the lock, k > 2048, failures, ZeroGPU.
The same paths on a real GPU: test_gpu_cuda.py (`make test-gpu`)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from conftest import unit_vectors
from fake_faiss_gpu import GPU_MAX_SELECTION_K, FakeGpuFaiss

from qsearch.store import gpu
from qsearch.store.vectors import DocInfo, VectorIndex, brute_force_search
from qsearch.types import Chunk

DIM = 16


@pytest.fixture
def fake(monkeypatch) -> FakeGpuFaiss:
    """One fake GPU; the process policy fresh, 'auto' device, GPU from 100 vectors."""
    faiss = FakeGpuFaiss(gpus=1)
    monkeypatch.setitem(sys.modules, "faiss", faiss)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(gpu, "_state", {"device": "auto", "min_vectors": 100})
    return faiss


def filled(n: int, docs: int = 4, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    index, vectors = VectorIndex(DIM), unit_vectors(n, DIM, seed)
    per = n // docs
    for d in range(docs):
        rows = vectors[d * per : (d + 1) * per]
        chunks = [Chunk(f"d{d}", f"f{d}.txt", f"t{i}", i, i + 1) for i in range(len(rows))]
        index.add(DocInfo(f"d{d}", f"f{d}.txt", len(rows)), chunks, rows)
    return index, vectors[: per * docs]


def agree(
    index: VectorIndex, vectors: np.ndarray, queries: np.ndarray, k: int, first_id: int = 0
) -> None:
    """The index's top-k equals numpy's over `vectors` (whose ids start at `first_id`)."""
    scores, ids = index.search(queries, k)
    want_scores, want_rows = brute_force_search(vectors, queries, k)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert (ids[:, 0] == want_rows[:, 0] + first_id).all()


def test_small_collections_and_cpu_settings_never_touch_the_gpu(fake):
    small, vectors = filled(40)
    agree(small, vectors, vectors[:3], 5)
    assert fake.calls == [], "a session's small collection gets no GPU copy, asks for no GPU"
    large, vectors = filled(400)
    agree(large, vectors, vectors[:3], 5)
    assert fake.copies == 1 and fake.main_process_calls().count("gpu_search") == 1
    agree(large, vectors, vectors[3:6], 5)
    assert fake.copies == 1, "the copy is reused until the collection changes"
    gpu.configure("cpu", 100)  # --device cpu
    large.remove("d0")
    before = len(fake.calls)
    agree(large, vectors[100:], vectors[100:103], 5, first_id=100)
    assert len(fake.calls) == before, "--device cpu: FAISS stays on the CPU"


def test_k_above_the_gpu_limit_searches_on_the_cpu(fake):
    index, vectors = filled(2400)
    agree(index, vectors, vectors[:2], GPU_MAX_SELECTION_K + 100)
    agree(index, vectors, vectors[:2], 10)
    assert fake.main_process_calls().count("gpu_search") == 1, "k <= 2048 still uses the GPU"


def test_a_failed_gpu_allocation_falls_back_to_the_cpu(fake):
    index, vectors = filled(400)
    fake.fail_alloc = True  # cudaMalloc: out of memory
    agree(index, vectors, vectors[:3], 5)
    assert "out of memory" in index._gpu.failed
    tries = len(fake.calls)
    agree(index, vectors, vectors[:3], 5)
    assert len(fake.calls) == tries, "no GPU retry on every search until the collection changes"
    fake.fail_alloc = False
    index.remove("d3")
    agree(index, vectors[:300], vectors[:3], 5)
    assert fake.copies == 1 and not index._gpu.failed, "after a change the GPU is tried again"


def test_a_search_failing_on_the_gpu_is_answered_by_the_cpu(fake):
    index, vectors = filled(400)
    agree(index, vectors, vectors[:3], 5)
    fake.fail_alloc = True  # the copy exists; its search's temp allocation fails
    agree(index, vectors, vectors[3:6], 5)
    assert index._gpu.index is None and index._gpu.failed


def test_eight_threads_search_one_gpu_index_at_once(fake):
    """One StandardGpuResources, one thread at a time: FAISS aborts otherwise (faiss#1572)."""
    index, vectors = filled(800)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def searcher(seed: int) -> None:
        try:
            start.wait()
            for i in range(10):
                queries = vectors[(seed * 10 + i) % 800 :][:2]
                agree(index, vectors, queries, 8)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert fake.main_process_calls().count("gpu_search") == 80 and fake.copies == 1


def test_zerogpu_and_other_devices_ask_faiss_nothing(fake, monkeypatch):
    index, vectors = filled(400)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    agree(index, vectors, vectors[:3], 5)
    assert fake.calls == [], "cudaGetDeviceCount (faiss.get_num_gpus) initialises CUDA"
    monkeypatch.delenv("SPACES_ZERO_GPU")
    for device in ("mps", "cpu"):
        gpu.configure(device, 100)
        agree(index, vectors, vectors[:3], 5)
        assert fake.calls == [], device
    gpu.configure("cuda:1", 100)  # a GPU that is not there: the CPU, no copy
    agree(index, vectors, vectors[:3], 5)
    assert fake.main_process_calls() == ["get_num_gpus"]


def test_the_threshold_is_a_setting():
    from qsearch import Settings

    assert Settings().faiss_gpu_min_vectors == gpu.DEFAULT_MIN_VECTORS == 200_000
    got = Settings.from_env({"QSEARCH_FAISS_GPU_MIN_VECTORS": "5000"})
    assert got.faiss_gpu_min_vectors == 5000
    with pytest.raises(ValueError, match="faiss_gpu_min_vectors=0: Input should be greater than 0"):
        Settings(faiss_gpu_min_vectors=0)
