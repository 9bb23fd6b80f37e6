"""Start-up checks kept on disk (qsearch.models.verdicts): every process on a machine makes the
same choice, however its own timing came out; a bad file is measured again, never trusted."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from qsearch.models import cpu, cpu_race, verdicts

KEY = {"check": "int8-speedup", "cpu": ["AVX2"], "torch": "2.13.0"}


@pytest.fixture
def checks(monkeypatch, tmp_path) -> Path:
    monkeypatch.setattr(verdicts, "folder", lambda: tmp_path / "checks")
    return tmp_path / "checks"


def test_a_check_is_measured_once_then_read(checks):
    measured = []
    first = verdicts.remembered(KEY, lambda: measured.append(1) or 1.8)
    again = verdicts.remembered(KEY, lambda: measured.append(1) or 1.1)
    assert first == again == 1.8 and len(measured) == 1
    another_cpu = {**KEY, "cpu": ["AVX2", "VNNI"]}
    assert verdicts.remembered(another_cpu, lambda: 1.1) == 1.1, "another machine: measured"
    assert sorted(p.name.split("-")[0] for p in checks.iterdir()) == ["int8", "int8"]


def test_the_first_writer_wins(checks):
    assert verdicts.write(KEY, 1.8) == 1.8
    assert verdicts.write(KEY, 1.1) == 1.8, "a later measurement takes the stored one"
    (path,) = checks.iterdir()
    path.write_text("{")  # a broken file is replaced by the next writer
    assert verdicts.write(KEY, 1.1) == 1.1 and verdicts.read(KEY) == 1.1
    assert not list(checks.glob("*.tmp")), "no file left aside"


def test_a_read_only_cache_still_answers(checks, monkeypatch):
    monkeypatch.setattr(verdicts, "folder", lambda: Path("/proc/no-such-folder"))
    assert verdicts.remembered(KEY, lambda: 1.7) == 1.7


def _choose(folder: str, int8: float, start: multiprocessing.synchronize.Barrier) -> str:
    """A process's `--dtype auto` on an AVX2 CPU, its own race timing int8 at `int8` x fp32."""
    verdicts.folder = lambda: Path(folder)
    cpu.cpu_features = lambda: ["AVX2"]
    cpu_race.measure = lambda: {"float32": 1.0, "int8/fbgemm": int8, "seconds": 2.0}
    start.wait()
    return cpu_race.choices()[0].precision


def test_the_machine_key_leaves_out_the_thread_count():
    """A ZeroGPU worker runs on one thread (gpu_boundary._after_fork): it must read the app's."""
    import torch

    threads = torch.get_num_threads()
    try:
        before = cpu.machine_key("precision-race")
        torch.set_num_threads(1)
        assert cpu.machine_key("precision-race") == before
    finally:
        torch.set_num_threads(threads)


def test_a_mapping_of_numbers_is_kept_too(checks):
    """The race stores every candidate's ratio under one key."""
    ratios = {"float32": 1, "bfloat16": 4.1, "int8+bf16/onednn": 3.2}
    assert verdicts.remembered(KEY, lambda: ratios) == {**ratios, "float32": 1.0}
    assert verdicts.read(KEY) == {**ratios, "float32": 1.0}
    (path,) = checks.iterdir()
    entry = json.loads(path.read_text())
    entry["value"] = ["not", "numbers"]
    path.write_text(json.dumps(entry))
    assert verdicts.read(KEY) is None and not path.exists(), "neither a number nor numbers"


def test_processes_that_time_differently_choose_alike(tmp_path):
    """The app and a ZeroGPU worker (or the CLI indexing for the app) start together; one's race
    times int8 at 1.4x fp32, the other's at 1.1x. Without the stored verdict one would run int8
    and the other fp32, embedding one collection in two precisions (CI saw the reranker scores
    differ)."""
    context = multiprocessing.get_context("spawn")  # fresh processes, as on every platform
    start = context.Manager().Barrier(2)
    speedups = [cpu_race.MIN_SPEEDUP + 0.2, cpu_race.MIN_SPEEDUP - 0.1]
    with context.Pool(2) as pool:
        chosen = pool.starmap(_choose, [(str(tmp_path), s, start) for s in speedups])
    assert chosen[0] == chosen[1] and chosen[0] in ("int8", "float32")
    (path,) = tmp_path.glob("precision-race-*.json")
    assert json.loads(path.read_text())["value"]["int8/fbgemm"] in speedups
