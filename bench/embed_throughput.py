"""Ingest throughput: qsearch's embedder against sentence-transformers and a naive loop, on the
same chunks.

The three run interleaved (a, b, c, then b, c, a, ...) after a warm-up, on one model in
memory, so that a noisy machine affects them alike. On a CPU it then times fp32 against
qsearch's CPU default dtype, embedder and reranker (cpu_dtype.py). Prints a table, and with
--json a last line holding one JSON object.

    python bench/embed_throughput.py --model DIR --limit 300 --json
    python bench/embed_throughput.py --random-weights --device cuda --dtype bfloat16 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import common
import numpy as np

CPU_LIMIT = (
    64  # chunks embedded on a CPU when --limit is not given (~12k tokens: minutes, not hours)
)


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
        choices=["float32", "bfloat16", "float16", "int8"],
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
        choices=["float32", "bfloat16", "int8"],
        help="on a CPU: the dtype compared with fp32 (default: what qsearch picks on this CPU)",
    )
    p.add_argument(
        "--rerank-queries", type=int, default=3, help="queries x 10 passages for the reranker"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from qsearch.models import batching, loading
    from qsearch.models.embedder import load_embedder

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
    texts = common.chunk_texts(args.data, embedder.tokenizer, limit=args.limit)
    ids = embedder.prepare(texts)
    lengths = [len(s) for s in ids]
    tokens = sum(lengths)

    st = SentenceTransformer(str(folder), device=device, model_kwargs={"dtype": dtype})
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
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "systems": results,
        "ratio_vs_sentence_transformers": results["sentence_transformers"]["seconds_median"]
        / results["qsearch"]["seconds_median"],
        "ratio_vs_naive_loop": results["naive_loop"]["seconds_median"]
        / results["qsearch"]["seconds_median"],
        "max_cosine_diff": float(1 - cosine.min()),
        "peak_rss_mb": common.peak_rss_mb(),
        "environment": common.environment(device),
    }
    if args.random_weights:
        report["note"] = "random weights: throughput is the real model's, the vectors mean nothing"
    if device == "cpu":
        report.update(cpu_dtype_contract(args, folder, texts))
    print(f"{len(texts)} chunks, {tokens} tokens, {report['dtype']} on {device}")
    print(f"{'system':<22} {'tokens/s':>10} {'chunks/s':>9} {'padding':>8} {'median s':>9}")
    for name, r in results.items():
        print(
            f"{name:<22} {r['tokens_per_s']:>10.0f} {r['chunks_per_s']:>9.1f} "
            f"{r['padding_fraction']:>8.1%} "
            f"{r['seconds_median']:>9.2f}"
        )
    print(
        f"qsearch is {report['ratio_vs_sentence_transformers']:.2f}x sentence-transformers and "
        f"{report['ratio_vs_naive_loop']:.2f}x the naive loop; "
        f"max cosine difference {report['max_cosine_diff']:.2e}"
    )
    if args.json:
        print(json.dumps(report))


def cpu_dtype_contract(args: argparse.Namespace, folder: Path, texts: list[str]) -> dict:
    """qsearch's CPU default against fp32 (embedder, and with --random-weights the 0.6B reranker
    too)."""
    import cpu_dtype

    from qsearch.models import loading

    default, why = (
        (args.cpu_default, "forced by --cpu-default") if args.cpu_default else loading.cpu_dtype()
    )
    # fastest rounds are compared: a few more of them ride out a noisy neighbour
    rounds = max(args.rounds, 4)
    result = {
        "cpu_default_reason": why,
        **cpu_dtype.compare_embedders(folder, texts, default, rounds),
    }
    if args.random_weights:
        reranker = common.random_qwen3(
            Path(tempfile.gettempdir()) / "qsearch-bench-qwen3-reranker-0.6b-random", reranker=True
        )
        queries = [f"what does passage {i} say?" for i in range(args.rerank_queries)]
        result.update(cpu_dtype.compare_rerankers(reranker, queries, texts[:10], default, rounds))
    print(f"one query, ms: p50 {result['query_ms_p50']}, p95 {result['query_ms_p95']}")
    print(
        f"CPU default {default} ({why}): "
        f"{result['ratio_cpu_default_vs_fp32']:.2f}x fp32 (fastest rounds; "
        f"medians {result['ratio_cpu_default_vs_fp32_median']:.2f}x), "
        f"min cosine {result['min_cosine_cpu_default_vs_fp32']:.5f}"
        + (
            f"; reranker P(yes) max diff {result['max_abs_diff_cpu_default_vs_fp32']:.4f}, "
            f"top-10 order equal for {result['rerank_top10_order_equal_fraction']:.0%} of queries"
            if "max_abs_diff_cpu_default_vs_fp32" in result
            else ""
        )
    )
    return result


if __name__ == "__main__":
    main()
