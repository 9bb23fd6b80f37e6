"""What the reader processes cost: qsearch's (a fresh interpreter per reader, started with
subprocess; killable with its process group) against the fork pool it replaced (a
ProcessPoolExecutor forked from the server after importing the parsing libraries).

Each variant runs in its own fresh interpreter, rounds alternating; for each: the first file's
time (the readers' start included, and for the fork pool the parent's import of the parsing
libraries), then the median time per small file once running.

    python bench/reader_start.py --rounds 3 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILES = 20


def run_variant(variant: str) -> dict[str, float]:
    """In this (fresh) interpreter: first-file and per-file seconds of `variant`."""
    from qsearch.documents.read import parse
    from qsearch.types import Limits, ReadOptions

    args = [
        (f"f{i}.txt", f"File {i} about tides.".encode(), Limits(), ReadOptions())
        for i in range(FILES + 1)
    ]
    started = time.perf_counter()
    if variant == "fork-pool":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import bs4  # noqa: F401 - as the old pool did, before forking
        import docx  # noqa: F401
        import pypdf  # noqa: F401

        readers = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
        ask = lambda a: readers.submit(parse, *a).result()  # noqa: E731
    else:
        from qsearch.documents.pool import Readers

        readers = Readers()
        ask = lambda a: readers.parse(*a)  # noqa: E731
    ask(args[0])
    first = time.perf_counter() - started
    each = []
    for a in args[1:]:
        t = time.perf_counter()
        ask(a)
        each.append(time.perf_counter() - t)
    (readers.shutdown if variant == "fork-pool" else readers.close)()
    return {"first_file_s": first, "per_file_ms": statistics.median(each) * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: one measurement
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant)))
        return
    runs: dict[str, list[dict]] = {"fork-pool": [], "subprocess-readers": []}
    for _ in range(args.rounds):
        for variant in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            runs[variant].append(json.loads(out.stdout.splitlines()[-1]))
    result = {
        variant: {
            key: {"median": statistics.median(r[key] for r in rs), "best": min(r[key] for r in rs)}
            for key in ("first_file_s", "per_file_ms")
        }
        for variant, rs in runs.items()
    }
    result["environment"] = environment("cpu")
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
