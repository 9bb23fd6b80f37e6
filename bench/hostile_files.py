"""How long each hostile file (tests/hostile.py: every type qsearch reads) takes through
`qsearch chunk --json`, for this checkout and, side by side in the same run, for another tree of
qsearch's code (`--base DIR`, e.g. main's: `git archive main | tar -x -C DIR`).

A file's time is the gap between its JSON line and the one before (a small real file goes first,
so no file's time holds the command's start). A watchdog stops a command that has been on one
file for `--timeout` seconds (the `chunk` of old code had no deadline), records the file as
stopped, and starts the command again on the files after it.

    python bench/hostile_files.py --base /tmp/main-code --timeout 150 --json
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.common import environment  # noqa: E402

WARM_UP = ROOT / "tests" / "data" / "formats" / "testCSV.csv"


def chunk_times(code: Path, files: list[Path], model: str, timeout: float) -> dict[str, dict]:
    """{file name: {"seconds", "outcome"}} for `files` through `code`'s `qsearch chunk`."""
    results: dict[str, dict] = {}
    left = list(files)
    while left:
        command = [sys.executable, "-m", "qsearch", "chunk", "--json", "--embed-model", model]
        process = subprocess.Popen(
            [*command, str(WARM_UP), *map(str, left)],
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        waiting = selectors.DefaultSelector()
        waiting.register(process.stdout, selectors.EVENT_READ)
        expected = [WARM_UP, *left]
        last = None
        while expected:
            ready = waiting.select(timeout if last is not None else 300)
            line = process.stdout.readline() if ready else b""
            now = time.monotonic()
            if not line:  # stopped by the watchdog, or the command ended early
                os.killpg(process.pid, signal.SIGKILL)
                stuck = expected[0]
                if stuck != WARM_UP:
                    seconds = now - last if last is not None else None
                    outcome = "stopped" if ready == [] else "the command ended"
                    results[stuck.name] = {"seconds": seconds, "outcome": outcome}
                break
            answer = json.loads(line)
            done = expected.pop(0)
            if done != WARM_UP:
                results[done.name] = {
                    "seconds": now - last,
                    "outcome": answer.get("error") or f"{answer['chunks']} chunks",
                }
                print(f"{now - last:7.2f} s  {done.name}", file=sys.stderr, flush=True)
            last = now
        process.wait()
        process.stdout.close()
        left = [f for f in files if f.name not in results]
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, help="another tree of qsearch's code, run side by side")
    p.add_argument("--timeout", type=float, default=150.0, help="seconds on one file")
    p.add_argument("--only", help="only the files whose names contain this")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from hostile import write_corpus

    from qsearch.models.loading import bundled_small_model

    model = str(bundled_small_model())
    with tempfile.TemporaryDirectory() as folder:
        names = [n for n in write_corpus(Path(folder)) if not args.only or args.only in n]
        files = [Path(folder) / n for n in names]
        trees = {"this checkout": ROOT, **({"base": args.base.resolve()} if args.base else {})}
        runs = {
            label: chunk_times(code, files, model, args.timeout) for label, code in trees.items()
        }
    result: dict = {}
    for label, times in runs.items():
        timed = [(t["seconds"] or 0.0, name) for name, t in times.items()]
        slowest = sorted(timed, reverse=True)[:10]
        result[label] = {
            "files": len(times),
            "total_s": round(sum(s for s, _ in timed), 1),
            "over_10_s": sum(s > 10 for s, _ in timed),
            "stopped": sorted(n for n, t in times.items() if t["outcome"] == "stopped"),
            "slowest": [
                {"file": n, "seconds": round(s, 2), "outcome": times[n]["outcome"][:120]}
                for s, n in slowest
            ],
        }
    result["per_file_s"] = {
        name: {label: round(runs[label][name]["seconds"] or 0.0, 2) for label in runs}
        for name in names
    }
    result["environment"] = environment("cpu")
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
