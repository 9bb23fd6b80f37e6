"""Every precision qsearch can run on this CPU against fp32, interleaved on the same inputs: the
contract of this CPU's class. Used by embed_throughput.py on a CPU.

What it measures, all interleaved (a, b, c, then b, c, a, ...) after a warm-up:
- each precision the start-up race ran here (fp32; bf16 where the CPU computes it natively; int8;
  int8+bf16: qsearch.models.cpu_race) as qsearch's embedder: tokens/s, x fp32, min cosine of its
  vectors against fp32's, and one short query's latency, p50 and p95;
- the default: what `auto` ran for this model (the race's winner, if it passed the model's quality
  check); its x fp32 is the contract's figure, against its CPU class's target (CLASSES);
- what bounds it (`layer_breakdown`): on one Qwen3-0.6B decoder layer (the race's probe), the
  share of fp32's time spent in the seven linear layers, each precision's ratio on those layers
  and on the rest, and Amdahl's bound 1 / ((1 - p) + p / r): what the precision could give if only
  its linear layers were faster;
- the reranker in the default against fp32 (with --random-weights).

Ratios compare each precision's fastest round, as `timeit` advises ("higher values are typically
not caused by variability in Python's speed, but by other processes interfering"): on the shared
2-core machines here a neighbour's load cuts bf16 matrix products to a third for seconds at a
time while fp32 barely moves, so medians measure the neighbours. The medians are reported beside
them.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = {  # the contract: the default's embedding tokens/s, x fp32, by CPU class
    "AMX": 4.0,
    "VNNI": 2.4,  # with or without AVX512-BF16
    "AVX512-BF16 without VNNI": 1.9,
    "neither VNNI nor AVX512-BF16": 1.3,
}
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def cpu_class(features: list[str]) -> str:
    """The contract's class of a CPU with `features` (qsearch.models.cpu.cpu_features)."""
    if "AMX" in features:
        return "AMX"
    if "VNNI" in features:
        return "VNNI"
    return (
        "AVX512-BF16 without VNNI" if "AVX512-BF16" in features else "neither VNNI nor AVX512-BF16"
    )


def precisions_here() -> list[str]:
    """fp32 and every precision the race ran on this CPU."""
    from qsearch.models import cpu, cpu_race

    raced = [p for p, _ in cpu_race.candidates(cpu.cpu_features())]
    return list(dict.fromkeys(raced))


def compare_embedders(
    folder: Path, texts: list[str], default: str, rounds: int, precisions: list[str]
) -> dict[str, Any]:
    """tokens/s of each precision, timed alternately, the smallest cosine between its vectors and
    fp32's, and one query's latency; `default` is the contract's."""
    from qsearch.models.embedder import load_embedder

    names = list(dict.fromkeys(["float32", *precisions, default]))
    models = {p: load_embedder(str(folder), device="cpu", dtype=p) for p in names}
    tokens = sum(len(s) for s in models["float32"].prepare(texts))
    seconds, vectors = _interleaved(
        {p: (lambda m=m: m.encode(texts)) for p, m in models.items()}, rounds
    )
    base = vectors["float32"]
    cosine = {
        p: float(
            ((v * base).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(base, axis=1)).min()
        )
        for p, v in vectors.items()
    }
    ratio = {p: min(seconds["float32"]) / min(s) for p, s in seconds.items()}
    median = {
        p: statistics.median(seconds["float32"]) / statistics.median(s) for p, s in seconds.items()
    }
    return {
        "cpu_default": default,
        "tokens": tokens,
        "seconds_all": seconds,
        "tokens_per_s": {p: tokens / min(s) for p, s in seconds.items()},
        "tokens_per_s_median": {p: tokens / statistics.median(s) for p, s in seconds.items()},
        "ratio_vs_fp32": ratio,
        "ratio_vs_fp32_median": median,
        "min_cosine_vs_fp32": cosine,
        "precision_reasons": {p: m.precision for p, m in models.items()},
        "ratio_cpu_default_vs_fp32": ratio[default],
        "ratio_cpu_default_vs_fp32_median": median[default],
        "min_cosine_cpu_default_vs_fp32": cosine[default],
        **query_latency(models, repeats=5 * rounds),
    }


def layer_breakdown(precisions: list[str], rounds: int) -> dict[str, Any]:
    """On the race's Qwen3-0.6B layer: each precision's time for the whole layer and for its seven
    linear layers alone (same inputs, interleaved), and what Amdahl's law makes of them."""
    import copy

    import torch

    from qsearch.models import cpu_race, quantize

    rows, length = cpu_race.PROBE_SHAPE
    ids = torch.randint(0, cpu_race.PROBE_LAYER["vocab_size"], (rows, length))
    layer = cpu_race.probe(layers=1)  # one layer: its linear layers against the whole of it
    runs: dict[str, Any] = {}
    for precision in dict.fromkeys(["float32", *precisions]):
        model = quantize.convert(copy.deepcopy(layer), precision, cpu_race.forced(precision).engine)
        dtype = torch.bfloat16 if precision in ("bfloat16", "int8+bf16") else torch.float32
        block = model.layers[0]
        parts = {n: getattr(block.self_attn if n in LINEARS[:4] else block.mlp, n) for n in LINEARS}
        widths = {"o_proj": 2048, "down_proj": 3072}
        xs = {n: torch.randn(rows * length, widths.get(n, 1024)).to(dtype) for n in LINEARS}

        def whole(model: Any = model) -> None:
            model(input_ids=ids, use_cache=False)

        def linears(parts: dict = parts, xs: dict = xs) -> None:
            for name, module in parts.items():
                module(xs[name])

        runs[f"{precision}/layer"], runs[f"{precision}/linears"] = whole, linears
    with torch.inference_mode():
        seconds, _ = _interleaved(runs, rounds)
    best = {name: min(s) for name, s in seconds.items()}
    share = best["float32/linears"] / best["float32/layer"]
    fp32_rest = best["float32/layer"] - best["float32/linears"]
    out: dict[str, Any] = {"shape": [rows, length], "linear_share_of_fp32": share}
    for precision in dict.fromkeys(["float32", *precisions]):
        linear = best["float32/linears"] / best[f"{precision}/linears"]
        rest = fp32_rest / max(best[f"{precision}/layer"] - best[f"{precision}/linears"], 1e-9)
        out[precision] = {
            "layer_ratio": best["float32/layer"] / best[f"{precision}/layer"],
            "linear_ratio": linear,
            "rest_ratio": rest,
            "amdahl_bound_rest_at_fp32": 1 / ((1 - share) + share / linear),
            "amdahl_bound_rest_as_measured": 1 / ((1 - share) / rest + share / linear),
        }
    return out


def contract(features: list[str], result: dict[str, Any], breakdown: dict[str, Any]) -> dict:
    """The class's target, and whether the default reached it (fastest round); if not, by how much
    and what bounds it."""
    name = cpu_class(features)
    target, got = CLASSES[name], result["ratio_cpu_default_vs_fp32"]
    bound = breakdown.get(result["cpu_default"], {})
    return {
        "class": name,
        "target_vs_fp32": target,
        "reached": got >= target,
        "reached_by_median": result["ratio_cpu_default_vs_fp32_median"] >= target,
        "short_by": 0.0 if got >= target else target / got,
        "bound_amdahl_rest_at_fp32": bound.get("amdahl_bound_rest_at_fp32"),
        "bound_amdahl_rest_as_measured": bound.get("amdahl_bound_rest_as_measured"),
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
    """One short query's embedding, ms, p50, p95 and fastest per precision (alternating, after a
    warm-up). A query is many small operations on 2 threads: under a neighbour's load each waits
    for the slower thread, so the fastest says what the CPU does, p50 what it did then."""
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
        "query_ms_fastest": {d: round(min(t), 1) for d, t in times.items()},
    }


def _interleaved(
    runs: dict[str, Any], rounds: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    for run in runs.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, Any] = {}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            outputs[name] = runs[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds, outputs
