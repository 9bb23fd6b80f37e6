"""A stand-in for faiss-gpu's GPU half on a machine without a GPU, for tests.

The real `faiss` module answers everything else (flat indexes, ids, serialisation); this adds
the GPU functions with the behaviours qsearch must survive, each from FAISS's own sources:
- `get_num_gpus()` calls cudaGetDeviceCount, which initialises CUDA (faiss/gpu/utils/
  DeviceUtils.cu): every call is recorded with the calling process's id;
- a GPU index refuses k > 2048 ("GPU index only supports min/max-K selection up to 2048",
  faiss/gpu/GpuIndex.cu, GPU_MAX_SELECTION_K);
- one `StandardGpuResources` may be used by one thread at a time (faiss#1572, #2175): the real
  library then corrupts its temp-memory stack and aborts the process; here the second thread
  raises instead, so a test can see it;
- an allocation can fail ("cudaMalloc error out of memory", StandardGpuResources.cpp), in
  `index_cpu_to_gpu` or in a search.
What it cannot reproduce: GPU speed, real memory limits, CUDA itself.
"""

from __future__ import annotations

import os
import threading
import time
import types
from typing import Any

import faiss as real_faiss
import numpy as np

GPU_MAX_SELECTION_K = 2048
OOM = (
    "Error in virtual void* faiss::gpu::StandardGpuResourcesImpl::allocMemory"
    "(const faiss::gpu::AllocRequest&) at faiss/gpu/StandardGpuResources.cpp:530: "
    "Error: 'err == cudaSuccess' failed: StandardGpuResources: alloc fail type "
    "TemporaryMemoryBuffer "
    "dev 0 space Device stream 0x0 size 1610612736 bytes (cudaMalloc error out of memory [2])"
)


class FakeGpuFaiss(types.ModuleType):
    """`import faiss` while installed in sys.modules: the real module plus a fake GPU half."""

    def __init__(self, gpus: int = 1, search_seconds: float = 0.005):
        super().__init__("faiss")
        self.gpus, self.search_seconds = gpus, search_seconds
        self.calls: list[tuple[int, str]] = []  # (pid, function): every GPU function called
        self.fail_alloc = False  # the next allocations fail, as cudaMalloc does when full
        self.copies = 0  # GPU copies made
        fake = self

        class StandardGpuResources:
            def __init__(self) -> None:
                fake.calls.append((os.getpid(), "StandardGpuResources"))
                self.users = 0
                self.guard = threading.Lock()

            def setTempMemory(self, size: int) -> None:  # noqa: N802 - FAISS's name
                pass

            def enter(self) -> None:
                with self.guard:
                    self.users += 1
                    if self.users > 1:
                        self.users -= 1
                        raise RuntimeError(
                            "StandardGpuResources used by two threads at once: "
                            "the real library aborts here (faiss#1572, #2175)"
                        )

            def leave(self) -> None:
                with self.guard:
                    self.users -= 1

        self.StandardGpuResources = StandardGpuResources

    def __getattr__(self, name: str) -> Any:
        return getattr(real_faiss, name)

    def get_num_gpus(self) -> int:
        self.calls.append((os.getpid(), "get_num_gpus"))
        return self.gpus

    def index_cpu_to_gpu(self, resources: Any, device: int, index: Any) -> GpuIndex:
        self.calls.append((os.getpid(), "index_cpu_to_gpu"))
        if not 0 <= device < self.gpus:
            raise RuntimeError(f"Error: 'device < getNumDevices()' failed: Invalid device {device}")
        resources.enter()
        try:
            if self.fail_alloc:
                raise RuntimeError(OOM)
            self.copies += 1
            return GpuIndex(self, resources, real_faiss.clone_index(index))
        finally:
            resources.leave()

    def main_process_calls(self) -> list[str]:
        return [name for pid, name in self.calls if pid == os.getpid()]


class GpuIndex:
    """A GPU copy: searches with the FAISS GPU limits and through its resources object."""

    def __init__(self, fake: FakeGpuFaiss, resources: Any, index: Any):
        self.fake, self.resources, self.index = fake, resources, index

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.fake.calls.append((os.getpid(), "gpu_search"))
        if k > GPU_MAX_SELECTION_K:
            raise RuntimeError(
                "Error in void faiss::gpu::GpuIndex::search at faiss/gpu/GpuIndex.cu:233: "
                f"GPU index only supports min/max-K selection up to 2048 (requested {k})"
            )
        self.resources.enter()
        try:
            time.sleep(self.fake.search_seconds)  # the kernel runs while the GIL is released
            if self.fake.fail_alloc:
                raise RuntimeError(OOM)
            return self.index.search(queries, k)
        finally:
            self.resources.leave()
