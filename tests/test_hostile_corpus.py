"""Hostile files of every type qsearch reads (tests/hostile.py) through the command line, as a
user runs it: `qsearch chunk` and `qsearch index` as subprocesses. Each file is answered within
MAX_SECONDS on 2 cores, with no traceback, and nothing they started is left running.

Before (main at 596e87d): a 100,000-deep page held `index`'s reader until its 120 s deadline, and
`chunk` read it in its own process with no deadline at all (over 6 minutes); docs/reliability.md
has the figures, bench/hostile_files.py measures them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from hostile import write_corpus

from qsearch.documents.formats import LOADERS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
MAX_SECONDS = 10.0
WARM_UP = ROOT / "tests" / "data" / "formats" / "testCSV.csv"  # first: its time holds the start


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("hostile")
    return [folder / name for name in write_corpus(folder)]


def _run(args: list[str], on_line=None) -> tuple[int, str, str, set[int]]:  # noqa: ANN001
    """(exit code, stdout, stderr, the pids of every process it started) of `qsearch ARGS`;
    `on_line(line)` is called as each line of its output comes."""
    errors = tempfile.TemporaryFile("w+")  # a file: progress bars can't fill a pipe and block
    process = subprocess.Popen(
        [sys.executable, "-m", "qsearch", *args],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    started: set[int] = set()
    watched = psutil.Process(process.pid)
    lines = []
    for line in process.stdout:
        lines.append(line)
        try:
            started |= {p.pid for p in watched.children(recursive=True)}
        except psutil.NoSuchProcess:  # it has just ended
            pass
        if on_line is not None:
            on_line(line)
    code = process.wait(timeout=60)
    process.stdout.close()
    errors.seek(0)
    stderr = errors.read()
    errors.close()
    return code, "".join(lines), stderr, started


def _left_running(pids: set[int]) -> list[int]:
    """Those of `pids` still running after a few seconds (a reader polls for its parent each s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def test_the_corpus_holds_every_type_qsearch_reads(corpus):
    suffixes = {path.suffix for path in corpus}
    assert suffixes >= set(LOADERS), set(LOADERS) - suffixes
    assert len(corpus) > 200


def test_chunk_answers_each_hostile_file_within_seconds(corpus, qwen3_embedder_dir):
    """Each file's time is the gap between its JSON line and the one before."""
    stamps: list[float] = []
    started = time.monotonic()
    code, out, err, pids = _run(
        [
            "chunk",
            "--json",
            "--embed-model",
            str(qwen3_embedder_dir),
            str(WARM_UP),
            *map(str, corpus),
        ],
        on_line=lambda line: stamps.append(time.monotonic()),
    )
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(answers) == len(corpus) + 1, (code, err[-2000:])
    assert [a["path"] for a in answers[1:]] == list(map(str, corpus))
    seconds = {Path(a["path"]).name: t - s for a, s, t in zip(answers[1:], stamps, stamps[1:])}
    slow = {name: round(s, 1) for name, s in seconds.items() if s > MAX_SECONDS}
    assert not slow, slow
    assert "Traceback" not in out + err
    for a in answers[1:]:
        assert ("error" in a) != ("chunks" in a), a
        if "error" in a:
            assert a["error"] and "\n" not in a["error"] and "unexpected error" not in a["error"]
            assert not re.match(r"^\w+(Error|Exception)\b", a["error"]), a["error"]
    assert not _left_running(pids), "a reader outlived the command"
    slowest = max(seconds, key=seconds.get)
    print(
        f"\n{len(corpus)} hostile files through `chunk` in {time.monotonic() - started:.0f} s; "
        f"slowest {slowest}: {seconds[slowest]:.2f} s"
    )


def test_index_answers_each_hostile_file_within_seconds(corpus, qwen3_embedder_dir, tmp_path):
    """`index` prints a file's time after its line when it took a second or more."""
    code, out, err, pids = _run(
        ["index", "--index", str(tmp_path / "index"), "--embed-model", str(qwen3_embedder_dir)]
        + [str(p) for p in corpus]
    )
    assert code == 0, (code, err[-2000:])
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(lines) == len(corpus), out[-2000:]
    took = {
        Path(line.split(":", 1)[0].split()[-1]).name: float(match.group(1))
        for line in lines
        if (match := re.search(r" \((\d+\.\d) s\)$", line))
    }
    slow = {name: s for name, s in took.items() if s > MAX_SECONDS}
    assert not slow, slow
    assert "Traceback" not in out + err and "unexpected error" not in out
    assert not _left_running(pids), "a reader outlived the command"
    print(f"\n{len(corpus)} hostile files through `index`; over 1 s: {took}")
