"""Engine logic on the fake embedder, the model service (fallback, lock, windows, rerank size),
sessions, settings, dtype."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from fakes import HashingEmbedder

from qsearch import Engine, Settings
from qsearch.engine import Cancelled
from qsearch.models import cpu, cpu_race, loading


@pytest.fixture
def engine():
    return Engine(
        Settings(embed_model=HashingEmbedder.model_name, chunk_tokens=32, chunk_overlap=4),
        embedder=HashingEmbedder(),
    )


def write(folder, **files):  # noqa: ANN001, ANN003
    for name, text in files.items():
        (folder / name).write_text(text)
    return sorted(folder / name for name in files)


def test_a_cancelled_run_leaves_the_collection_as_it_was(engine, tmp_path):
    first = write(tmp_path, **{"a.txt": "alpha beta gamma"})
    engine.add_files(first)
    before = (dict(engine.index.docs), dict(engine.index.chunks))
    more = write(tmp_path, **{f"n{i}.txt": f"note {i} " * 50 for i in range(5)})
    asked = []

    def stop_after_reading() -> bool:
        asked.append(1)
        return len(asked) > 5  # the five files are read, then the embedding is stopped

    with pytest.raises(Cancelled, match="nothing was added"):
        engine.add_files(more, should_stop=stop_after_reading)
    assert (dict(engine.index.docs), dict(engine.index.chunks)) == before


def test_clear_is_one_step_and_removal_uses_ids(engine, tmp_path):
    files = write(
        tmp_path, **{f"d{i}.txt": f"document {i} about topic{i} " * 30 for i in range(20)}
    )
    report = engine.add_files(files)
    assert len(engine.documents()) == 20
    removed = next(f.doc_id for f in report.files if f.path.endswith("d3.txt"))
    n = engine.remove(removed)
    assert n > 0 and all(c.doc_id != removed for c in engine.index.chunks.values())
    assert engine.search("topic3", k=3, mode="lexical") == []
    assert engine.search("topic4", k=1)[0].source.endswith("d4.txt")

    def one_by_one(doc_id: str) -> int:
        raise AssertionError(f"clear() removed {doc_id} on its own: clearing must be O(1)")

    engine.index.remove = one_by_one  # no wall clock on a shared machine: count the work
    engine.clear()
    assert engine.documents() == [] and len(engine.index) == 0
    assert engine.search("topic4", k=1) == []


def test_reading_takes_no_model_lock(tmp_path):
    """A parse runs while the model service's lock is held elsewhere (another user's embedding)."""
    from qsearch.web.model_service import ModelService

    service = ModelService(Settings(embed_model=HashingEmbedder.model_name), HashingEmbedder())
    engine = Engine(service.settings, embedder=service.embedder)
    files = write(tmp_path, **{"a.txt": "one two three"})
    with service.lock.hold(urgent=True):  # held: embedding must wait, reading must not
        parsed, reports = engine.read_files(files)
        assert reports[0].status == "indexed" and len(parsed) == 1
        done = threading.Event()
        worker = threading.Thread(target=lambda: (engine.embed_and_add(parsed), done.set()))
        worker.start()
        assert not done.wait(0.3), "embedding waits for the model lock"
    assert done.wait(10) and len(engine.documents()) == 1


def test_the_fallback_notice_when_the_configured_model_cannot_load(minilm_dir):
    from qsearch.web.model_service import ModelService

    service = ModelService.load(
        Settings(embed_model="/no/such/model", rerank_model="/no/such/reranker", device="cpu"),
        measure=False,
    )
    assert service.settings.embed_model == str(minilm_dir)
    assert (
        "Could not load /no/such/model" in service.notice and "all-MiniLM-L6-v2" in service.notice
    )
    assert service.rerank_unavailable.startswith(
        "Reranking is unavailable: model folder '/no/such/reranker'"
    )
    with pytest.raises(loading.ModelLoadError, match="Reranking is unavailable"):
        service.reranker()


def test_embedding_runs_in_windows_that_fit_the_measured_speed():
    from qsearch.web.model_service import ModelService
    from qsearch.web.sizing import FIRST_WINDOW

    fake = HashingEmbedder()
    service = ModelService(Settings(embed_model=fake.model_name), fake)
    texts = [f"text number {i} " * 10 for i in range(40)]
    seen = []
    out = service.embedder.encode(texts, progress=lambda d, t: seen.append(d))
    np.testing.assert_allclose(out, fake.encode(texts), atol=1e-6)
    assert len(fake.calls[0]) == FIRST_WINDOW and len(seen) >= 2 and seen[-1] == 40
    assert service.embed_rate.per_second > 0


def test_model_calls_from_many_request_threads_run_on_one_model_thread():
    """Each thread that calls torch keeps its own OpenMP team and allocator arenas; the service
    runs every local model call on one thread of its own, whoever asks."""
    from concurrent.futures import ThreadPoolExecutor

    from qsearch.web.model_service import ModelService

    class Recording(HashingEmbedder):
        def encode(self, texts, **kw):  # noqa: ANN001, ANN003, ANN201
            ran_on.add(threading.get_ident())
            return super().encode(texts, **kw)

    ran_on: set[int] = set()
    service = ModelService(Settings(embed_model=Recording.model_name), Recording())
    with ThreadPoolExecutor(8) as requests:
        callers = set(
            requests.map(
                lambda i: service.embedder.encode([f"q{i}"]) is not None and threading.get_ident(),
                range(40),
            )
        )
    service.close()
    assert len(callers) > 1 and len(ran_on) == 1 and not ran_on & callers


def test_settings_parse_the_environment_by_type():
    s = Settings.from_env(
        {
            "QSEARCH_MAX_FILES": "7",
            "QSEARCH_DENSE_WEIGHT": "0.3",
            "QSEARCH_OCR": "off",
            "QSEARCH_EMBED_DIM": "256",
            "QSEARCH_DTYPE": "bfloat16",
        }
    )
    assert (s.max_files, s.dense_weight, s.ocr, s.embed_dim, s.dtype) == (
        7,
        0.3,
        False,
        256,
        "bfloat16",
    )
    with pytest.raises(ValueError, match="QSEARCH_MAX_FILES='many' is not an int"):
        Settings.from_env({"QSEARCH_MAX_FILES": "many"})
    with pytest.raises(
        ValueError, match="QSEARCH_OCR='maybe' is not one of 1, true, yes, on, 0, false, no, off"
    ):
        Settings.from_env({"QSEARCH_OCR": "maybe"})
    with pytest.raises(
        ValueError, match="dtype must be one of .*'float32', 'bfloat16'.*got 'int4'"
    ):
        Settings(dtype="int4")


def test_cpu_dtype_follows_the_race(monkeypatch):
    """bf16 loads where it won this machine's race; else the model loads in fp32 (int8 ones are
    converted after loading); --dtype wins."""
    try:
        monkeypatch.setattr(cpu, "cpu_features", lambda: ["AVX2", "AVX512-BF16"])
        for ratios, dtype in (
            ({"bfloat16": 3.5}, torch.bfloat16),
            ({"bfloat16": 0.9}, torch.float32),
        ):
            monkeypatch.setattr(cpu_race, "race", lambda ratios=ratios: {"float32": 1.0, **ratios})
            cpu_race.choices.cache_clear()
            assert loading.pick_dtype("cpu") == dtype
            assert loading.dtype_reason("cpu").startswith(str(dtype).removeprefix("torch."))
        assert "bfloat16 0.9x" in loading.dtype_reason("cpu"), "what the flag promised, measured"
        assert loading.pick_dtype("cpu", "bfloat16") == torch.bfloat16, "--dtype wins"
    finally:
        cpu_race.choices.cache_clear()


def test_bf16_vectors_and_scores_agree_with_fp32(
    qwen3_embedder_dir, qwen3_reranker_dir, minilm_dir
):
    """The CPU default where bf16 is native: same vectors (cosine >= 0.999, alone or in a padded
    batch) and P(yes) within 0.01, for the last-token and the mean-pooling model."""
    from qsearch.models.embedder import load_embedder
    from qsearch.models.reranker import load_reranker

    texts = [
        "Paris is the capital of France.",
        "The quick brown fox jumps over the lazy dog. " * 8,
        "yes",
    ]
    for folder in (qwen3_embedder_dir, minilm_dir):
        fp32 = load_embedder(str(folder), device="cpu", dtype="float32").encode(texts)
        bf16_model = load_embedder(str(folder), device="cpu", dtype="bfloat16")
        bf16 = bf16_model.encode(texts)
        alone = np.vstack([bf16_model.encode([t]) for t in texts])
        assert (fp32 * bf16).sum(1).min() >= 0.999 and (alone * bf16).sum(1).min() >= 0.999, (
            folder.name
        )
    scores = [
        load_reranker(str(qwen3_reranker_dir), device="cpu", dtype=d).score(
            "capital of France?", texts
        )
        for d in ("float32", "bfloat16")
    ]
    assert np.abs(scores[0] - scores[1]).max() <= 0.01


def test_cpu_bf16_compiles_decoder_blocks_without_changing_the_vectors(
    qwen3_embedder_dir, minilm_dir, monkeypatch
):
    """loading.compile_on_cpu: only on a CPU in bf16, where torch.compile works; same vectors."""
    from qsearch.models.embedder import load_embedder

    texts = [
        "Paris is the capital of France.",
        "yes",
        "The quick brown fox jumps over the lazy dog. " * 6,
    ]
    eager = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="bfloat16", compile=False)
    assert not eager.compiled
    assert not load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="float32").compiled
    if not loading._can_compile():
        pytest.skip("torch.compile does not work here (no C++ compiler)")
    compiled = load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="bfloat16")
    assert compiled.compiled
    kinds = {
        type(m).__name__ for m in compiled.model.modules() if m._compiled_call_impl is not None
    }
    assert kinds == {"Qwen3Attention", "Qwen3MLP", "Qwen3RMSNorm"}
    attention = compiled.model.layers[0].self_attn
    assert attention.q_norm._compiled_call_impl is None, (
        "a norm inside compiled attention is compiled with it"
    )
    assert compiled.model.norm._compiled_call_impl is not None  # the final norm, outside any block
    together, alone = compiled.encode(texts), np.vstack([compiled.encode([t]) for t in texts])
    reference = eager.encode(texts)
    assert (together * reference).sum(1).min() >= 0.9995 and (alone * reference).sum(
        1
    ).min() >= 0.9995
    assert not load_embedder(
        str(minilm_dir), device="cpu", dtype="bfloat16"
    ).compiled  # encoders stay eager
    monkeypatch.setattr(loading, "_can_compile", lambda: False)  # no C++ compiler: eager, as before
    assert not load_embedder(str(qwen3_embedder_dir), device="cpu", dtype="bfloat16").compiled


def test_a_query_waits_for_one_indexing_window_not_the_whole_upload():
    from qsearch.web.model_service import ModelService

    calls: list[str] = []  # the order the service ran the model calls in: no clock asserted

    class Slow(HashingEmbedder):
        def encode(self, texts, **kwargs):  # noqa: ANN001, ANN003, ANN201
            calls.append("query" if kwargs.get("is_query") else "window")
            time.sleep(0.25)  # every call, whatever its size: one window = 0.25 s
            return super().encode(texts, **kwargs)

    service = ModelService(Settings(embed_model=Slow.model_name), Slow())
    indexing = threading.Thread(
        target=service.embedder.encode, args=([f"text {i}" for i in range(80)],)
    )
    indexing.start()  # 10 windows of 8 texts: 2.5 s in all
    while not calls:  # the upload's first window is running
        time.sleep(0.01)
    asked = len(calls)
    service.embedder.encode(["a query"], is_query=True)
    indexing.join()
    answered = calls.index("query")
    assert answered - asked <= 1, f"the query waited for {answered - asked} windows: {calls}"
    assert calls.count("window") > answered, f"the whole upload ran first: {calls}"


def test_rerank_candidates_come_from_the_measured_rerank_speed_only():
    """Before any rerank: a plain default (no guess from the models' sizes); then what reranks
    in about RERANK_SECONDS at the speed measured, 5..50."""
    from qsearch.web.model_service import ModelService
    from qsearch.web.sizing import DEFAULT_RERANK_CANDIDATES, RERANK_SECONDS

    service = ModelService(Settings(embed_model=HashingEmbedder.model_name), HashingEmbedder())
    service.embed_rate.record(1_000_000, 1.0)  # a fast embedder says nothing about the reranker
    assert service.rerank_candidates() == DEFAULT_RERANK_CANDIDATES == 30
    per_candidate = service.settings.chunk_tokens + 100
    service.rerank_rate.record(20 * per_candidate / RERANK_SECONDS, 1.0)
    assert service.rerank_candidates() == 20
    service.rerank_rate.record(1e9, 1.0)
    assert service.rerank_candidates() == 50
