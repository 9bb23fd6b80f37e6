"""Ingest throughput: qsearch's embedder against sentence-transformers and a naive loop, on the
same chunks.

The three run interleaved (a, b, c, then b, c, a, ...) after a warm-up, on one model in
memory, so that a noisy machine affects them alike. On a CPU it then times every precision
qsearch can run there against fp32, and checks the default against its CPU class's contract
(cpu_dtype.py; --contract-only skips the systems). Prints a table, and with --json a last line
holding one JSON object.

    python bench/embed_throughput.py --model DIR --limit 300 --json
    python bench/embed_throughput.py --random-weights --device cuda --dtype bfloat16 --json
    python bench/embed_throughput.py --random-weights --device cpu --limit 16 --contract-only --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import common
import numpy as np

CPU_LIMIT = (
    64  # chunks embedded on a CPU when --limit is not given (~12k tokens: minutes, not hours)
)
# qsearch's vectors against sentence-transformers' in the same precision: 1 - min cosine allowed.
# The two batch differently (a token budget against 32 texts a batch). In fp32 and bf16 that moves
# the last bits (MiniLM on test_bench.py's tiny set: 1.2e-7 and 1.3e-5). torch's dynamic int8
# scales each batch's activations by that batch's largest value, so a text's int8 vector depends
# on the texts batched with it (there: 0.018 int8, 0.023 int8+bf16); the model check lets a copy
# 0.01 away from fp32 run (checks.MIN_COSINE), so two int8 runs may be twice that apart, and more.
COSINE_TOLERANCE = {
    "float32": 1e-4,
    "float16": 1e-3,
    "bfloat16": 1e-3,
    "int8": 5e-2,
    "int8+bf16": 5e-2,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="hub id or folder (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="the exact Qwen3-Embedding-0.6B architecture with random weights and the real Qwen "
        "vocabulary",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=common.SHARED / "scifact-dev",
        help="a BEIR folder or a folder of documents (default: ../shared/data/scifact-dev)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16", "int8", "int8+bf16"],
        help="qsearch's dtype (default: what it picks: bf16 on GPU; on a CPU bf16, int8 or fp32); "
        "sentence-transformers runs fp32 on a CPU",
    )
    p.add_argument("--max-batch-tokens", type=int, help="qsearch's token budget per forward pass")
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="sentence-transformers' and the naive loop's batch",
    )
    p.add_argument(
        "--limit",
        type=int,
        help=f"only the first N chunks (default: all on a GPU, {CPU_LIMIT} on a CPU, "
        "where fp32 embeds ~250 tokens/s)",
    )
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each system")
    p.add_argument(
        "--cpu-default",
        choices=["float32", "bfloat16", "int8", "int8+bf16"],
        help="on a CPU: the contract's precision (default: what qsearch's auto runs here)",
    )
    p.add_argument(
        "--contract-rounds",
        type=int,
        default=4,
        help="on a CPU: timed rounds of each precision (the fastest counts: more ride out noise)",
    )
    p.add_argument(
        "--contract-only",
        action="store_true",
        help="on a CPU: only the precision contract, not sentence-transformers and the naive loop",
    )
    p.add_argument(
        "--rerank-queries", type=int, default=3, help="queries x 10 passages for the reranker"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from qsearch.models import loading
    from qsearch.models.embedder import load_embedder

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if args.random_weights:
        folder = common.random_qwen3(
            Path(tempfile.gettempdir()) / "qsearch-bench-qwen3-embedding-0.6b-random"
        )
    else:
        folder = Path(args.model) if args.model else loading.bundled_small_model()
    device = loading.pick_device(args.device)
    if device == "cpu" and args.limit is None:
        args.limit = CPU_LIMIT  # all of SciFact would take fp32 about two hours per round
    dtype = loading.pick_dtype(device, args.dtype or "auto")  # int8 loads (and ST runs) in fp32
    embedder = load_embedder(
        str(folder),
        device=device,
        max_batch_tokens=args.max_batch_tokens,
        dtype=args.dtype or "auto",
    )
    loaded = gpu_memory_mb(device)  # the embedder's weights, before any batch ran
    texts = common.chunk_texts(args.data, embedder.tokenizer, limit=args.limit)
    tokens = sum(len(s) for s in embedder.prepare(texts))
    report = {
        "benchmark": "embed_throughput",
        "model": common.model_label(args.model, folder),
        "random_weights": args.random_weights,
        "dtype": str(dtype).removeprefix("torch."),
        "qsearch_precision": embedder.precision,  # what qsearch ran (int8 loads as float32)
        "device": device,
        "chunks": len(texts),
        "tokens": tokens,
        "max_batch_tokens": embedder.max_batch_tokens,
        "rounds": args.rounds,
    }
    if not (args.contract_only and device == "cpu"):
        report.update(compare_systems(args, folder, device, dtype, embedder, texts))
    if device.startswith("cuda"):
        report["gpu_memory"] = gpu_memory(args, embedder, loaded, report, texts)
    report["peak_rss_mb"] = common.peak_rss_mb()
    report["environment"] = common.environment(device) | {"load_average_start": load_at_start}
    if args.random_weights:
        report["note"] = "random weights: throughput is the real model's, the vectors mean nothing"
    if device == "cpu":
        report.update(cpu_dtype_contract(args, folder, texts, embedder))
        report["peak_rss_mb"] = common.peak_rss_mb()
        report["environment"]["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(report))


def compare_systems(args, folder, device, dtype, embedder, texts) -> dict:  # noqa: ANN001
    """qsearch's embedder against sentence-transformers and a naive loop, interleaved."""
    import torch
    from sentence_transformers import SentenceTransformer

    from qsearch.models import batching

    ids = embedder.prepare(texts)
    lengths = [len(s) for s in ids]
    tokens = sum(lengths)
    st, st_precision = same_precision_st(SentenceTransformer, folder, device, dtype, embedder)
    st.max_seq_length = embedder.max_length

    def ours() -> np.ndarray:
        return embedder.encode(texts)

    def sentence_transformers() -> np.ndarray:
        return st.encode(
            texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def naive() -> np.ndarray:
        """Fixed-size batches in input order, each padded to its longest text."""
        out = []
        for start in range(0, len(ids), args.batch_size):
            out.append(embedder._forward(ids[start : start + args.batch_size]))
        return np.concatenate(out)

    systems = {"qsearch": ours, "sentence_transformers": sentence_transformers, "naive_loop": naive}
    st_order = np.argsort(
        [-len(t) for t in texts], kind="stable"
    )  # sentence-transformers sorts by characters
    padding = {
        "qsearch": batching.padding_fraction(
            lengths,
            batching.token_budget_batches(
                lengths, embedder.max_batch_tokens, embedder.max_batch_size
            ),
        ),
        "sentence_transformers": batching.padding_fraction(
            lengths,
            [st_order[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)],
        ),
        "naive_loop": batching.padding_fraction(
            lengths,
            [
                np.arange(i, min(i + args.batch_size, len(texts)))
                for i in range(0, len(texts), args.batch_size)
            ],
        ),
    }
    for run in systems.values():
        run()  # warm-up, untimed: kernels, caches, the allocator
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    peak_gpu: dict[str, float | None] = {}
    outputs: dict[str, np.ndarray] = {}
    names = list(systems)
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            outputs[name] = systems[name]()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                peak_gpu[name] = torch.cuda.max_memory_allocated() / 2**20
            seconds[name].append(time.perf_counter() - started)

    a, b = outputs["qsearch"], outputs["sentence_transformers"]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    results = {}
    for name in systems:
        median = statistics.median(seconds[name])
        results[name] = {
            "seconds_median": median,
            "seconds_all": seconds[name],
            "tokens_per_s": tokens / median,
            "chunks_per_s": len(texts) / median,
            "padding_fraction": padding[name],
            "peak_gpu_mb": peak_gpu.get(name),
        }
    out = {
        "batch_size": args.batch_size,
        "sentence_transformers_precision": st_precision,
        "max_cosine_tolerance": COSINE_TOLERANCE[st_precision],
        "systems": results,
        "ratio_vs_sentence_transformers": results["sentence_transformers"]["seconds_median"]
        / results["qsearch"]["seconds_median"],
        "ratio_vs_naive_loop": results["naive_loop"]["seconds_median"]
        / results["qsearch"]["seconds_median"],
        "max_cosine_diff": float(1 - cosine.min()),
    }
    print(f"{len(texts)} chunks, {tokens} tokens, {str(dtype).removeprefix('torch.')} on {device}")
    print(f"{'system':<22} {'tokens/s':>10} {'chunks/s':>9} {'padding':>8} {'median s':>9}")
    for name, r in results.items():
        print(
            f"{name:<22} {r['tokens_per_s']:>10.0f} {r['chunks_per_s']:>9.1f} "
            f"{r['padding_fraction']:>8.1%} {r['seconds_median']:>9.2f}"
        )
    print(
        f"qsearch is {out['ratio_vs_sentence_transformers']:.2f}x sentence-transformers and "
        f"{out['ratio_vs_naive_loop']:.2f}x the naive loop; "
        f"max cosine difference {out['max_cosine_diff']:.2e}"
    )
    return out


def gpu_memory_mb(device: str) -> dict[str, float]:
    """On a GPU: the memory torch holds there (now and at its peak) and the process's RSS, MB."""
    on_gpu = common.gpu_mb(device)
    return on_gpu | {"rss_mb": round(common.rss_mb(), 1)} if on_gpu else {}


def gpu_memory(args, embedder, loaded: dict, report: dict, texts: list[str]) -> dict:  # noqa: ANN001
    """Each model's GPU memory in this precision: the embedder after loading and at its ingest
    peak (qsearch's own runs above); with --random-weights the 0.6B reranker beside it, after
    loading and at its peak over one rerank of 20 passages. RSS too: no copy of the weights
    stays in the CPU's memory (place.py loads them straight to the GPU)."""
    import torch

    out = {
        "embedder_after_load": loaded,
        "embedder_peak_ingest_mb": report.get("systems", {}).get("qsearch", {}).get("peak_gpu_mb"),
    }
    if args.random_weights:
        from qsearch.models.reranker import load_reranker

        folder = common.random_qwen3(
            Path(tempfile.gettempdir()) / "qsearch-bench-qwen3-reranker-0.6b-random", reranker=True
        )
        before = torch.cuda.memory_allocated()
        reranker = load_reranker(str(folder), device=embedder.device, dtype=args.dtype or "auto")
        out["reranker_after_load"] = gpu_memory_mb(embedder.device)
        out["reranker_weights_mb"] = round((torch.cuda.memory_allocated() - before) / 2**20, 1)
        torch.cuda.reset_peak_memory_stats()
        reranker.score("what do these passages say?", texts[:20])
        out["reranker_peak_rerank_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def same_precision_st(cls, folder, device, dtype, embedder):  # noqa: ANN001, ANN201
    """sentence-transformers' model of `folder`, in the precision qsearch's embedder runs, and
    that precision: like is compared with like, so the vectors must agree within that precision's
    COSINE_TOLERANCE. On a CPU `auto` may run bf16 or int8 where sentence-transformers would run
    fp32: its model then takes the same precision through the same conversion (bf16 weights, or
    torch's dynamic int8 linear layers packed for the same kernels: quantize.convert)."""
    from qsearch.models import cpu_race, quantize

    precision = quantize.precision_of(embedder.model) if device == "cpu" else None
    if precision in (None, "float32", "float16") or device != "cpu":
        st = cls(str(folder), device=device, model_kwargs={"dtype": dtype})
        return st, str(dtype).removeprefix("torch.")
    import torch

    st = cls(str(folder), device=device, model_kwargs={"dtype": torch.float32})
    engine = cpu_race.forced(precision).engine if precision.startswith("int8") else None
    quantize.convert(st[0].auto_model, precision, engine)
    return st, precision


def cpu_dtype_contract(args: argparse.Namespace, folder: Path, texts: list[str], embedder) -> dict:  # noqa: ANN001
    """Every precision against fp32 on this CPU, the default's contract (its class's target, what
    bounds it), and with --random-weights the 0.6B reranker in the default against fp32."""
    import cpu_dtype

    from qsearch.models import cpu, cpu_race, quantize

    if args.cpu_default:
        default, why = args.cpu_default, "forced by --cpu-default"
    else:  # what auto ran for this model: the race's winner, if it passed the model's check
        default, why = quantize.precision_of(embedder.model), embedder.precision
    rounds = args.contract_rounds
    features, precisions = cpu.cpu_features(), cpu_dtype.precisions_here()
    result = {
        "cpu_default_reason": why,
        "cpu_features": features,
        "isa_caps": cpu.isa_caps(),
        "race": cpu_race.race(),
        **cpu_dtype.compare_embedders(folder, texts, default, rounds, precisions),
    }
    result["layer_breakdown"] = cpu_dtype.layer_breakdown([*precisions, default], rounds + 1)
    result["contract"] = cpu_dtype.contract(features, result, result["layer_breakdown"])
    result["race_against_work"] = race_against_work(result)
    if args.random_weights:
        reranker = common.random_qwen3(
            Path(tempfile.gettempdir()) / "qsearch-bench-qwen3-reranker-0.6b-random", reranker=True
        )
        queries = [f"what does passage {i} say?" for i in range(args.rerank_queries)]
        result.update(cpu_dtype.compare_rerankers(reranker, queries, texts[:10], default, rounds))
    print_contract(result)
    return result


def race_against_work(result: dict) -> dict:
    """Whether the race's pick (its first choice, before any model check) is the precision that
    ran fastest end to end here, or by how much it misses: its tokens/s over the fastest's."""
    from qsearch.models import cpu_race

    ratios = result["ratio_vs_fp32"]
    pick = cpu_race.choices()[0].precision
    fastest = max(ratios, key=ratios.__getitem__)
    return {
        "race_pick": pick,
        "race_pick_x_fp32_in_race": cpu_race.choices()[0].speedup,
        "fastest_end_to_end": fastest,
        "pick_x_fp32_end_to_end": ratios.get(pick),
        "fastest_x_fp32_end_to_end": ratios[fastest],
        "pick_over_fastest": ratios[pick] / ratios[fastest] if pick in ratios else None,
    }


def print_contract(result: dict) -> None:
    """The contract as a table: each precision, then the default against its class's target."""
    print(f"{'precision':<10} {'tok/s best':>10} {'median':>7} {'x fp32':>7} {'x med':>6} "
          f"{'min cos':>8} {'query p50/p95 ms':>17} {'layer x':>8} {'linears x':>9}")  # fmt: skip
    for p, tps in result["tokens_per_s"].items():
        layer = result["layer_breakdown"].get(p, {})
        print(
            f"{p:<10} {tps:>10.0f} {result['tokens_per_s_median'][p]:>7.0f} "
            f"{result['ratio_vs_fp32'][p]:>7.2f} {result['ratio_vs_fp32_median'][p]:>6.2f} "
            f"{result['min_cosine_vs_fp32'][p]:>8.5f} "
            f"{result['query_ms_p50'][p]:>8.1f}/{result['query_ms_p95'][p]:<8.1f} "
            f"({result['query_ms_fastest'][p]:.1f}) "
            f"{layer.get('layer_ratio', float('nan')):>8.2f} "
            f"{layer.get('linear_ratio', float('nan')):>9.2f}"
        )
    c = result["contract"]
    said = "reached" if c["reached"] else f"short by {c['short_by']:.2f}x"
    print(
        f"default {result['cpu_default']} ({result['cpu_default_reason']}): "
        f"{result['ratio_cpu_default_vs_fp32']:.2f}x fp32 (medians "
        f"{result['ratio_cpu_default_vs_fp32_median']:.2f}x); class {c['class']}, target "
        f"{c['target_vs_fp32']}x: {said}; Amdahl bound {c['bound_amdahl_rest_at_fp32']:.2f}x "
        f"(rest at fp32 speed), {c['bound_amdahl_rest_as_measured']:.2f}x (rest as measured)"
    )
    race = result["race_against_work"]
    print(
        f"race's pick {race['race_pick']} ({race['race_pick_x_fp32_in_race']:.2f}x fp32 in the "
        f"race): {race['pick_x_fp32_end_to_end'] or float('nan'):.2f}x end to end; fastest end "
        f"to end {race['fastest_end_to_end']} {race['fastest_x_fp32_end_to_end']:.2f}x"
    )
    if "max_abs_diff_cpu_default_vs_fp32" in result:
        print(
            f"reranker: P(yes) max diff {result['max_abs_diff_cpu_default_vs_fp32']:.4f}, "
            f"top-10 order equal for {result['rerank_top10_order_equal_fraction']:.0%} of "
            f"queries, {result['rerank_ratio_cpu_default_vs_fp32']:.2f}x fp32"
        )


if __name__ == "__main__":
    main()
