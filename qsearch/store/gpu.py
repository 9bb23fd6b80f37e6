"""FAISS on a GPU, only where it pays, and never able to take the server down.

- **Where.** A collection searches on the GPU only when the device setting allows CUDA
  ("auto", "cuda", "cuda:N"), FAISS has GPU support and sees that GPU, and the collection holds
  at least `min_vectors` vectors (default 200k: below that a CPU flat search is a few ms, and
  every GPU copy costs the vectors plus FAISS's temp memory). So a session's small collection
  never gets a GPU copy.
- **ZeroGPU.** `faiss.get_num_gpus()` calls cudaGetDeviceCount, which initialises CUDA, and the
  `spaces` package needs CUDA untouched in the main process (it forks its GPU workers from it).
  With SPACES_ZERO_GPU set (the variable `spaces` reads), FAISS stays on the CPU and no FAISS GPU
  function is called at all.
- **One thread at a time.** One `StandardGpuResources` serves every GPU copy, and FAISS allows
  one thread at a time per resources object (faiss#1572, #2175: concurrent use aborts the
  process), so every GPU call, copy and free holds one lock.
- **CPU fallback.** k above GPU_MAX_K (GPU selection refuses it) searches on the CPU; any GPU
  error (an allocation that fails, a kernel error) is logged, the copy is dropped, and that
  search and the next ones of the collection (until it changes) run on the CPU.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MIN_VECTORS = 200_000  # until measured on a GPU (bench/results/README.md, GPU commands)
GPU_MAX_K = 2048  # faiss/gpu/utils/DeviceDefs.cuh: GPU_MAX_SELECTION_K
CPU_DEVICES = ("cpu", "mps")

_lock = threading.Lock()  # around every use of _state["resources"] and of every GPU copy
_state: dict[str, Any] = {"device": "auto", "min_vectors": DEFAULT_MIN_VECTORS}


def configure(device: str = "auto", min_vectors: int = DEFAULT_MIN_VECTORS) -> None:
    """The process's policy: the device setting ("auto", "cpu", "cuda", "cuda:N", "mps") and the
    smallest collection that searches on the GPU. Touches no GPU."""
    if min_vectors < 1:
        raise ValueError(f"the GPU search threshold must be at least 1 vector, got {min_vectors}")
    with _lock:
        if (device, min_vectors) != (_state["device"], _state["min_vectors"]):
            _state.update(device=device, min_vectors=min_vectors)
            _state.pop("gpu", None)  # the device is looked up again when next needed


def on_zerogpu() -> bool:
    """ZeroGPU hardware, as the `spaces` package identifies it."""
    return bool(os.environ.get("SPACES_ZERO_GPU"))


def gpu_device() -> int | None:
    """The GPU FAISS may use, or None. The only caller of faiss.get_num_gpus, at most once per
    policy, and never on ZeroGPU or with a CPU device setting."""
    device = _state["device"]
    if on_zerogpu() or device in CPU_DEVICES:
        return None
    if "gpu" not in _state:
        wanted = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        try:
            import faiss

            present = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > wanted
        except Exception as e:  # noqa: BLE001 - a broken CUDA setup: FAISS stays on the CPU
            log.warning("FAISS GPU support unusable (%s): searching on the CPU", e)
            present = False
        _state["gpu"] = wanted if present else None
    return _state["gpu"]


class GpuCopy:
    """One collection's GPU copy: made by the first search that needs it, dropped on change."""

    def __init__(self) -> None:
        self.index: Any = None
        self.failed = ""  # why the last GPU attempt failed: the CPU serves until the next change

    def drop(self) -> None:
        """Forget the copy (its memory is freed through the shared resources: under the lock)."""
        if self.index is not None:
            with _lock:
                self.index = None
        self.failed = ""


def search(
    cpu_index: Any, queries: np.ndarray, k: int, copy: GpuCopy, *, allowed: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) from `cpu_index`, or from its GPU copy where the policy says it pays.

    `allowed`: None follows the policy; False never uses the GPU; True ignores the size
    threshold (tests, benchmarks)."""
    if not _wants_gpu(cpu_index.ntotal, k, copy, allowed):
        return cpu_index.search(queries, k)
    device = gpu_device()
    if device is None:
        return cpu_index.search(queries, k)
    try:
        with _lock:
            if copy.index is None:
                import faiss

                copy.index = faiss.index_cpu_to_gpu(_resources(), device, cpu_index)
            return copy.index.search(queries, k)
    except Exception as e:  # noqa: BLE001 - out of GPU memory, a CUDA error: the CPU answers
        log.warning("FAISS GPU search failed (%s): searching on the CPU", e)
        copy.drop()
        copy.failed = str(e) or type(e).__name__
        return cpu_index.search(queries, k)


def _wants_gpu(ntotal: int, k: int, copy: GpuCopy, allowed: bool | None) -> bool:
    if allowed is False or copy.failed or k > GPU_MAX_K:
        return False
    return allowed is True or ntotal >= _state["min_vectors"]


def _resources() -> Any:
    """The process's one StandardGpuResources (call with the lock held)."""
    if "resources" not in _state:
        import faiss

        _state["resources"] = faiss.StandardGpuResources()
    return _state["resources"]
