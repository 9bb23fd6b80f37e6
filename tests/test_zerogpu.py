"""The server on ZeroGPU, in-process: the model service's calls go through the `spaces` stand-in
(zerogpu.py: forked workers reused per function, pickled arguments and results, errors shaped
as spaces 0.51 raises them), FAISS has a fake GPU half (fake_faiss_gpu.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zerogpu
from fake_faiss_gpu import FakeGpuFaiss
from fakes import HashingEmbedder
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qsearch import Engine, Settings
from qsearch.store import gpu
from qsearch.web import gpu_boundary, model_service
from qsearch.web.model_service import GpuUnavailable, ModelService
from qsearch.web.openai_api import openai_router
from qsearch.web.server import Context


@pytest.fixture
def on_zerogpu(monkeypatch):
    """SPACES_ZERO_GPU set, the model calls under the stand-in's spaces.GPU, as on the Space."""
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(model_service, "ON_ZEROGPU", True)
    for name, seconds in (("embed_texts", "_embed_seconds"), ("score_passages", "_score_seconds")):
        plain = getattr(gpu_boundary, name)
        wrapped = zerogpu.GPU(plain, duration=getattr(gpu_boundary, seconds))
        monkeypatch.setattr(model_service, name, wrapped)
    zerogpu.CALLS.clear()
    yield
    zerogpu.shutdown()


def service_with(embedder: HashingEmbedder, **settings) -> ModelService:
    return ModelService(Settings(embed_model=embedder.model_name, **settings), embedder)


def test_upload_and_shared_index_search_make_no_faiss_gpu_call(on_zerogpu, monkeypatch, tmp_path):
    """The main process never initialises CUDA: no FAISS GPU function runs there, and every
    model call crossed spaces.GPU (the model ran in the worker: the main copy saw nothing)."""
    faiss = FakeGpuFaiss(gpus=1)
    monkeypatch.setitem(sys.modules, "faiss", faiss)
    monkeypatch.setattr(gpu, "_state", {"device": "auto", "min_vectors": 1})
    embedder = HashingEmbedder()
    service = service_with(embedder, device="auto", faiss_gpu_min_vectors=1)
    (tmp_path / "handbook.md").write_text("The office closes at 6pm on Fridays.")
    library = Engine(service.settings, embedder=service.embedder)
    library.add_files([tmp_path / "handbook.md"])
    library.save(tmp_path / "shared")
    ctx = Context(service, Engine.open(tmp_path / "shared", service.settings, **_models(service)))
    session = ctx.new_engine()
    (tmp_path / "coffee.txt").write_text("Grind coffee beans finely for espresso. " * 20)
    session.add_files([tmp_path / "coffee.txt"])
    hits = session.search("office on Fridays", k=3, also=[ctx.shared])
    assert "handbook.md" in {Path(h.source).name for h in hits}
    assert faiss.main_process_calls() == [], "cudaGetDeviceCount initialises CUDA"
    assert zerogpu.CALLS.count("embed_texts") >= 3, zerogpu.CALLS  # 2 uploads and a query
    assert embedder.calls == [], "the embedder ran in the GPU worker, never in the main process"


def _models(service: ModelService) -> dict:
    return {"embedder": service.embedder, "reranker": service.reranker}


def test_workers_are_reused_per_function_and_keep_their_memory(on_zerogpu):
    """As spaces does: a live idle worker serves the next call of the same function."""
    seen: list[int] = []

    def remember(x: int) -> tuple[int, int]:
        seen.append(x)  # changes the worker's memory, never the caller's
        return os.getpid(), len(seen)

    call = zerogpu.GPU(remember, duration=10)
    first, second = call(1), call(2)
    assert first[0] == second[0] != os.getpid() and (first[1], second[1]) == (1, 2)
    assert seen == [] and zerogpu.CALLS == ["remember", "remember"]


def test_upload_windows_follow_the_workers_compute_not_the_wait(on_zerogpu, monkeypatch):
    """Queueing and forking (here 0.5 s before each call) don't shrink windows: the worker
    times its own compute, so an upload is a few large GPU calls."""
    plain = model_service.embed_texts

    def queued(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.5)  # waiting for a GPU: ZeroGPU's queue, the fork, moving the weights
        return plain(*args, **kwargs)

    monkeypatch.setattr(model_service, "embed_texts", queued)
    service = service_with(HashingEmbedder())
    texts = [f"passage {i} about things " * 20 for i in range(600)]
    vectors = service.embedder.encode(texts)
    assert vectors.shape == (600, 64)
    assert zerogpu.CALLS.count("embed_texts") <= 3, "the first window of 8, then one or two"
    assert service.embed_rate.per_second > 10 * 8 * 125 / 0.5, "compute speed, not the wait"


def test_durations_asked_for_are_short_for_queries_and_follow_the_measured_rate():
    key = "durations"
    rate = gpu_boundary._RATES[key, "embedder"] = model_service.Throughput()
    try:
        assert gpu_boundary._embed_seconds(key, ["a short query"], is_query=True) <= 6
        long = ["word " * 400] * 200  # ~100k tokens
        assert gpu_boundary._embed_seconds(key, long) == 15 + 2 * 100_200 // 20_000
        rate.record(1_000_000, 1.0)  # measured: 1M tokens/s of compute
        assert gpu_boundary._embed_seconds(key, long) == 15
        assert gpu_boundary._score_seconds(key, "q", ["passage"] * 50) <= 6
    finally:
        gpu_boundary._RATES.pop((key, "embedder"))


class Broken(HashingEmbedder):
    def encode(self, texts, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if texts == ["boom"]:
            raise ValueError("an error inside the GPU worker")
        return super().encode(texts, **kwargs)


def test_zerogpu_errors_are_readable_on_the_page_and_a_json_503_on_v1(on_zerogpu):
    service = service_with(Broken())
    with pytest.raises(GpuUnavailable) as caught:
        service.embedder.encode(["boom"])
    assert caught.value.reason == "ZeroGPU worker error: ValueError"  # what spaces tells
    assert isinstance(caught.value, zerogpu.gr.Error), "Gradio shows its message on the page"
    assert "The GPU could not run this request" in caught.value.message
    app = FastAPI()
    app.include_router(openai_router(lambda: service.embedder))
    answer = TestClient(app).post("/v1/embeddings", json={"input": ["boom"]})
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["type"] == "service_unavailable" and "ZeroGPU worker error" in error["message"]
    ok = TestClient(app).post("/v1/embeddings", json={"input": ["fine"]})
    assert ok.status_code == 200 and np.isfinite(ok.json()["data"][0]["embedding"]).all()


def test_a_worker_that_dies_or_overruns_is_a_gpu_task_aborted(on_zerogpu):
    def die() -> None:
        os._exit(1)

    def overrun() -> None:
        time.sleep(5)

    for task, duration in ((die, 10), (overrun, 0.5)):
        with pytest.raises(zerogpu.gr.Error) as caught:
            zerogpu.GPU(task, duration=duration)()
        assert caught.value.title == "ZeroGPU worker error"
        assert caught.value.message == "GPU task aborted"
        reason = gpu_boundary.zerogpu_reason(caught.value)
        assert reason == "ZeroGPU worker error: GPU task aborted"
