"""What the models cost in memory, per precision: the process's resident memory (RSS) after the
embedder loads, its peak while it embeds an upload's chunks and what stays after; then the
reranker beside it, after one rerank. On a GPU also the GPU memory each model holds and peaks at.

Each precision runs in a fresh interpreter, one after another (RSS is a process's whole memory,
and an allocator keeps what it once held): torch, transformers, the tokenizer, the model, and
whatever loading it left behind all count, as they do in the app. The peak during ingest is the
high-water mark reset after loading (Linux: /proc/self/clear_refs), so it is the ingest's own.

    python bench/model_memory.py --random-weights --json          # auto, fp32, bf16, the int8s
    python bench/model_memory.py --random-weights --precisions auto --rerank --json
    python bench/model_memory.py --random-weights --device cuda --json   # GPU: bf16, fp16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

EMBEDDER = "qsearch-bench-qwen3-embedding-0.6b-random"
RERANKER = "qsearch-bench-qwen3-reranker-0.6b-random"


def memory_mb() -> dict[str, float]:
    """This process's RSS and its high-water mark (VmHWM), MB; anonymous and file-backed."""
    fields = {"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in fields:
                out[fields[name]] = round(int(value.split()[0]) / 1024, 1)
    return out


def reset_peak() -> None:
    """Start the high-water mark (VmHWM) again from the current RSS (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(args: argparse.Namespace) -> dict:
    """In this fresh interpreter: load the embedder in `args.child`, embed the chunks, and with
    --rerank load the reranker and rerank; memory after each step."""
    import torch

    from qsearch.models.embedder import load_embedder
    from qsearch.models.reranker import load_reranker

    started = time.perf_counter()
    embedder = load_embedder(str(args.embedder), device=args.device, dtype=args.child)
    out: dict = {
        "precision": args.child,
        "runs": embedder.precision,
        "load_seconds": round(time.perf_counter() - started, 1),
        "after_load": memory_mb() | common.gpu_mb(embedder.device),
    }
    texts = common.chunk_texts(args.data, embedder.tokenizer, limit=args.limit)
    tokens = sum(len(s) for s in embedder.prepare(texts))
    reset_peak()
    if embedder.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    embedder.encode(texts)
    out["ingest"] = {"chunks": len(texts), "tokens": tokens}
    out["ingest"]["seconds"] = round(time.perf_counter() - started, 1)
    out["during_ingest"] = memory_mb() | common.gpu_mb(embedder.device)  # peak: the ingest's
    out["after_ingest_rss_mb"] = out["during_ingest"]["rss_mb"]
    if args.rerank:
        reranker = load_reranker(str(args.reranker), device=args.device, dtype=args.child)
        out["reranker_runs"] = reranker.precision
        out["after_reranker_load"] = memory_mb() | common.gpu_mb(embedder.device)
        reset_peak()
        reranker.score("what do these passages say?", texts[:20])
        out["after_rerank"] = memory_mb() | common.gpu_mb(embedder.device)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--random-weights", action="store_true", help="the 0.6B Qwen3 models, random")
    p.add_argument("--embed-model", help="an embedder folder (default: the random Qwen3 one)")
    p.add_argument("--rerank-model", help="a reranker folder (default: the random Qwen3 one)")
    p.add_argument("--data", type=Path, default=common.SHARED / "scifact-dev")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", help="comma-separated (default: auto and every one here)")
    p.add_argument("--limit", type=int, default=64, help="chunks embedded (an upload's worth)")
    p.add_argument("--rerank", action="store_true", help="load the reranker too, and rerank")
    p.add_argument("--child", help=argparse.SUPPRESS)  # the precision, in a fresh interpreter
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.gettempdir())
    args.embedder = Path(args.embed_model) if args.embed_model else tmp / EMBEDDER
    args.reranker = Path(args.rerank_model) if args.rerank_model else tmp / RERANKER
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.random_weights:
        common.random_qwen3(args.embedder)
        common.random_qwen3(args.reranker, reranker=True)
    runs = []
    for precision in _precisions(args):
        command = [sys.executable, __file__, "--child", precision, *_passed(args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if done.returncode:
            runs.append({"precision": precision, "error": done.stderr.strip()[-1500:]})
        else:
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        _print(runs[-1])
    report = {
        "benchmark": "model_memory",
        "model": common.model_label(args.embed_model, args.embedder),
        "reranker": common.model_label(args.rerank_model, args.reranker) if args.rerank else None,
        "random_weights": args.random_weights,
        "runs": runs,
        "environment": common.environment(args.device),
    }
    if args.json:
        print(json.dumps(report))


def _precisions(args: argparse.Namespace) -> list[str]:
    if args.precisions:
        return args.precisions.split(",")
    if args.device.startswith("cuda"):
        return ["bfloat16", "float16"]
    import cpu_dtype

    return ["auto", *cpu_dtype.precisions_here()]


def _passed(args: argparse.Namespace) -> list[str]:
    out = ["--embed-model", str(args.embedder), "--rerank-model", str(args.reranker)]
    out += ["--data", str(args.data), "--device", args.device, "--limit", str(args.limit)]
    return out + (["--rerank"] if args.rerank else [])


def _print(run: dict) -> None:
    if "error" in run:
        print(f"{run['precision']:<10} failed: {run['error'].splitlines()[-1]}", file=sys.stderr)
        return
    load, ingest = run["after_load"], run["during_ingest"]
    said = (
        f"{run['precision']:<10} load {run['load_seconds']:>5.1f} s: RSS {load['rss_mb']:>6.0f} MB "
        f"(load peak {load['peak_rss_mb']:.0f}); ingest peak {ingest['peak_rss_mb']:.0f}, after "
        f"{ingest['rss_mb']:.0f}"
    )
    if "after_rerank" in run:
        said += f"; with the reranker {run['after_rerank']['rss_mb']:.0f} MB"
    if "gpu_allocated_mb" in load:
        said += f"; GPU {load['gpu_allocated_mb']:.0f} MB, ingest peak {ingest['gpu_peak_mb']:.0f}"
    print(said, file=sys.stderr, flush=True)  # stdout is the JSON


if __name__ == "__main__":
    main()
