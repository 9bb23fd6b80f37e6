"""qsearch's CPU default dtype against fp32, interleaved on the same inputs: embedder and reranker.

Used by embed_throughput.py on a CPU (and runnable alone). Ratios compare each dtype's fastest
round, as `timeit` advises ("higher values are typically not caused by variability in Python's
speed, but by other processes interfering"): on the shared 2-core AMX machines here, a neighbour's
load cuts bf16 matrix products to a third for seconds at a time (800 vs 2,300 GFLOP/s) while fp32
barely moves, so medians measure the neighbours. The medians are reported beside them. The
default is what qsearch picks (`loading.cpu_dtype`: bf16 where the CPU has AMX or
AVX512-BF16 and a timing confirms it, else int8 where it measures faster, else fp32);
`--cpu-default bfloat16` forces bf16, to measure its accuracy and speed anyway.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def compare_embedders(folder: Path, texts: list[str], default: str, rounds: int) -> dict[str, Any]:
    """tokens/s of fp32 and of `default`, timed alternately, and the smallest cosine between their
    vectors."""
    from qsearch.models.embedder import load_embedder

    models = {
        dtype: load_embedder(str(folder), device="cpu", dtype=dtype)
        for dtype in dict.fromkeys(["float32", default])
    }
    tokens = sum(len(s) for s in models["float32"].prepare(texts))
    seconds, vectors = _interleaved(
        {d: (lambda m=m: m.encode(texts)) for d, m in models.items()}, rounds
    )
    a, b = vectors["float32"], vectors[default]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "cpu_default": default,
        "tokens": tokens,
        "seconds_all": seconds,
        "tokens_per_s": {d: tokens / min(s) for d, s in seconds.items()},
        "tokens_per_s_median": {d: tokens / statistics.median(s) for d, s in seconds.items()},
        "ratio_cpu_default_vs_fp32": min(seconds["float32"]) / min(seconds[default]),
        "ratio_cpu_default_vs_fp32_median": statistics.median(seconds["float32"])
        / statistics.median(seconds[default]),
        "min_cosine_cpu_default_vs_fp32": float(cosine.min()),
        "cpu_default_precision": models[default].precision,
        **query_latency(models),
    }


def compare_rerankers(
    folder: Path, queries: list[str], passages: list[str], default: str, rounds: int
) -> dict[str, Any]:
    """P(yes) of fp32 and of `default` for each query against the same passages, timed
    alternately: the largest difference, and how often the order of the passages is the same."""
    from qsearch.models.reranker import load_reranker

    models = {
        dtype: load_reranker(str(folder), device="cpu", dtype=dtype)
        for dtype in dict.fromkeys(["float32", default])
    }

    def score(model: Any) -> np.ndarray:
        return np.stack([model.score(q, passages) for q in queries])

    seconds, scores = _interleaved({d: (lambda m=m: score(m)) for d, m in models.items()}, rounds)
    a, b = scores["float32"], scores[default]
    same = [np.array_equal(np.argsort(-x, kind="stable"), np.argsort(-y, kind="stable"))
            for x, y in zip(a, b)]  # fmt: skip
    return {
        "pairs": a.size,
        "rerank_ratio_cpu_default_vs_fp32": min(seconds["float32"]) / min(seconds[default]),
        "rerank_ratio_cpu_default_vs_fp32_median": statistics.median(seconds["float32"])
        / statistics.median(seconds[default]),
        "max_abs_diff_cpu_default_vs_fp32": float(np.abs(a - b).max()),
        "rerank_top10_order_equal_fraction": float(np.mean(same)),
    }


def query_latency(models: dict[str, Any], repeats: int = 20) -> dict[str, Any]:
    """One short query's embedding, ms, p50 and p95 per dtype (alternating, after a warm-up)."""
    query = "what is the role of mitochondria in apoptosis?"
    times: dict[str, list[float]] = {d: [] for d in models}
    for model in models.values():
        model.encode([query], is_query=True)
    for _ in range(repeats):
        for dtype, model in models.items():
            started = time.perf_counter()
            model.encode([query], is_query=True)
            times[dtype].append(1000 * (time.perf_counter() - started))
    return {
        "query_ms_p50": {d: round(float(np.percentile(t, 50)), 1) for d, t in times.items()},
        "query_ms_p95": {d: round(float(np.percentile(t, 95)), 1) for d, t in times.items()},
    }


def _interleaved(
    runs: dict[str, Any], rounds: int
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    for run in runs.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, np.ndarray] = {}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            outputs[name] = runs[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds, outputs
