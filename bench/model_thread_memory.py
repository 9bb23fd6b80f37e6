"""What the server's model costs in memory when many request threads use it: qsearch's one
model thread (ModelService runs every local model call there) against the request threads
calling the model themselves, in turn under one lock, as the server did before.

Each variant runs in a fresh interpreter: the bundled all-MiniLM-L6-v2 embeds one batch of
chunk-sized texts and one query per call, for `--threads` request threads, `--rounds` times
over; the result is the process's resident memory (RSS) before and after, and its OS threads.

    python bench/model_thread_memory.py --threads 40 --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH = ["Paragraph of a harbour log: the master records the " + "tides " * 150] * 32


def run_variant(variant: str, threads: int, rounds: int) -> dict[str, float]:
    """In this (fresh) interpreter: RSS (MB) after warm-up and after the request threads."""
    from concurrent.futures import ThreadPoolExecutor

    import psutil

    from qsearch.config import Settings
    from qsearch.models.loading import bundled_small_model
    from qsearch.web.model_service import ModelService

    def rss_mb() -> float:
        return psutil.Process().memory_info().rss / 2**20

    service = ModelService.load(Settings(embed_model=str(bundled_small_model())))
    model, lock = service.embedder, threading.Lock()
    if variant == "request-threads":  # the model itself, called from each request thread
        from qsearch.web.gpu_boundary import _MODELS

        model = _MODELS[service.key, "embedder"]

    def request(_: int) -> None:
        with lock:
            model.encode(BATCH)
            model.encode(["which tides does the master record?"], is_query=True)

    request(0)
    warm = rss_mb()
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            list(pool.map(request, range(threads)))
        after, os_threads = rss_mb(), psutil.Process().num_threads()
    service.close()
    return {"rss_warm_mb": warm, "rss_after_mb": after, "os_threads": os_threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=40, help="request threads (gradio's default)")
    p.add_argument("--rounds", type=int, default=2, help="calls per request thread")
    p.add_argument("--json", action="store_true")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: one measurement
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.threads, args.rounds)))
        return
    result: dict = {}
    sizes = ["--threads", str(args.threads), "--rounds", str(args.rounds)]
    for variant in ("request-threads", "one-model-thread"):
        out = subprocess.run(
            [sys.executable, __file__, "--variant", variant, *sizes],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        result[variant] = json.loads(out.stdout.splitlines()[-1])
    result["threads"], result["rounds"] = args.threads, args.rounds
    result["environment"] = environment("cpu")
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
