"""What each option gives on the CPU forward pass of Qwen3-Embedding-0.6B, interleaved on the
same chunks.

Variants: the token budget per batch, the attention implementation, and torch.compile of parts
of the model (module.compile, dynamic shapes). Each runs qsearch's embedder on the same chunks,
in rounds (a, b, c, then b, c, a, ...) after a warm-up that also pays any compilation, which is
reported apart. Prints a table, and with --json a last line holding one JSON object.

    python bench/cpu_forward.py --limit 64 --rounds 4 --json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import common
import numpy as np

VARIANTS = [
    "budget-1024",
    "budget-4096",
    "budget-8192",
    "eager-attention",
    "compile-norms",
    "compile-norms-mlp",
    "compile-attention-mlp",
    "compile-layers",
]
COMPILED = {  # variant: the module classes it compiles (each with Module.compile, dynamic shapes)
    "compile-norms": ("Qwen3RMSNorm",),
    "compile-norms-mlp": ("Qwen3RMSNorm", "Qwen3MLP"),
    "compile-attention-mlp": (
        "Qwen3Attention",
        "Qwen3MLP",
        "Qwen3RMSNorm",
    ),  # norms outside attention too
    "compile-layers": ("Qwen3DecoderLayer",),
}


def build(variant: str, eager, default):  # noqa: ANN001, ANN201 - embedders
    """A copy of the embedder changed as `variant` says: budgets on qsearch's default model, the
    rest on the uncompiled one."""
    embedder = copy.copy(default if variant.startswith("budget-") else eager)
    if variant.startswith("budget-"):
        embedder.max_batch_tokens = int(variant.split("-")[1])
    elif variant == "eager-attention":
        embedder.model = copy.deepcopy(eager.model)
        embedder.model.set_attn_implementation("eager")
    elif variant in COMPILED:
        embedder.model = copy.deepcopy(eager.model)
        compiled: set[int] = set()
        for module in embedder.model.modules():
            inside = any(id(parent) in compiled for parent in _parents(embedder.model, module))
            if type(module).__name__ in COMPILED[variant] and not inside:
                module.compile(dynamic=True)
                compiled.add(id(module))
    elif variant != "eager":
        raise SystemExit(f"unknown variant {variant!r}; valid: eager, {', '.join(VARIANTS)}")
    return embedder


def _parents(root, module) -> list:  # noqa: ANN001
    """The modules that contain `module` (so a compiled block's children are not compiled again)."""
    names = {id(m): n for n, m in root.named_modules()}
    path = names[id(module)].split(".")
    return [root.get_submodule(".".join(path[:i])) for i in range(1, len(path))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=common.SHARED / "scifact-dev")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from qsearch.models.embedder import load_embedder

    folder = common.random_qwen3(
        Path(tempfile.gettempdir()) / "qsearch-bench-qwen3-embedding-0.6b-random"
    )
    started = time.perf_counter()
    base = load_embedder(
        str(folder), device="cpu", dtype=args.dtype
    )  # what qsearch loads, compiled or not
    default_load_s = time.perf_counter() - started
    eager = load_embedder(str(folder), device="cpu", dtype=args.dtype, compile=False)
    texts = common.chunk_texts(args.data, base.tokenizer, limit=args.limit)
    tokens = sum(len(s) for s in base.prepare(texts))
    names = ["qsearch-default", "eager", *args.variants.split(",")]
    embedders, warmup, vectors = {}, {}, {}
    for name in names:
        started = time.perf_counter()
        embedders[name] = base if name == "qsearch-default" else build(name, eager, base)
        embedders[name].encode(texts[:1])  # batch of one: compiled code specialises on it
        vectors[name] = embedders[name].encode(texts)
        warmup[name] = time.perf_counter() - started
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            vectors[name] = embedders[name].encode(texts)
            seconds[name].append(time.perf_counter() - started)
    reference = vectors["qsearch-default"]
    results = {
        name: {
            "tokens_per_s": tokens / statistics.median(seconds[name]),
            "seconds_all": seconds[name],
            "warmup_s": warmup[name],
            "max_batch_tokens": embedders[name].max_batch_tokens,
            "min_cosine_vs_default": float((vectors[name] * reference).sum(1).min()),
        }
        for name in names
    }
    results["qsearch-default"]["warmup_s"] += default_load_s  # its compile ran inside load_embedder
    print(
        f"{len(texts)} chunks, {tokens} tokens, {args.dtype}, "
        f"default budget {base.max_batch_tokens}, "
        f"default compiled: {base.compiled}"
    )
    print(f"{'variant':<20} {'tokens/s':>9} {'vs default':>10} {'warm-up s':>10} {'min cos':>8}")
    for name, r in results.items():
        ratio = r["tokens_per_s"] / results[names[0]]["tokens_per_s"]
        print(
            f"{name:<20} {r['tokens_per_s']:>9.0f} {ratio:>9.2f}x "
            f"{r['warmup_s']:>10.1f} {r['min_cosine_vs_default']:>8.5f}"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "cpu_forward",
                    "model": "Qwen3-Embedding-0.6B architecture, random weights",
                    "dtype": args.dtype,
                    "default_compiled": base.compiled,
                    "chunks": len(texts),
                    "tokens": tokens,
                    "rounds": args.rounds,
                    "variants": results,
                    "peak_rss_mb": common.peak_rss_mb(),
                    "environment": common.environment("cpu"),
                }
            )
        )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
