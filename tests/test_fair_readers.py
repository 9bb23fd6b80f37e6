"""Fair readers on a shared server: a visitor whose files hold readers (a page stuck until its
deadline, as a 100,000-deep page was before, tests/test_hostile_corpus.py) holds at most half
of them, so another visitor's file is read at once.

tests/stuck_loader.py stands in for such a file: a .txt whose text starts with STUCK makes its
reader hang inside it until the reader is killed; other .txt files read as usual."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from qsearch.documents import pool
from qsearch.types import Limits, ReadOptions

STUCK_SECONDS = 60.0  # the stuck files' deadline: far longer than any test waits
QUICK = 10.0  # another visitor's 1 KB file is read within this


@pytest.fixture
def readers(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where stuck_loader is
    readers = pool.Readers(size=2, modules=["stuck_loader"])
    monkeypatch.setattr(pool, "_READERS", readers)
    yield readers
    readers.close()


def _stuck(readers: pool.Readers, visitor: str | None, tmp_path: Path, n: int) -> list:
    """Start `n` stuck files of `visitor`, each in its own thread; their outcomes come later."""
    outcomes: list = []

    def read(i: int) -> None:
        with pool.reading_for(visitor):
            try:
                data = f"STUCK {tmp_path / f'child-{visitor}-{i}.pid'}".encode()
                readers.parse(
                    f"stuck-{i}.txt", data, Limits(max_seconds=STUCK_SECONDS), ReadOptions()
                )
            except Exception as e:  # noqa: BLE001 - the reader is killed when the test ends
                outcomes.append(e)

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads


def _seconds_to_read(readers: pool.Readers, visitor: str | None) -> float:
    started = time.monotonic()
    with pool.reading_for(visitor):
        doc = readers.parse("note.txt", b"A note about tides. " * 50, Limits(), ReadOptions())
    assert "tides" in doc.text
    return time.monotonic() - started


def _wait_until_held(readers: pool.Readers, n: int) -> None:
    deadline = time.monotonic() + 120  # the readers' start (imports), under load
    while len(readers.pids()) < n or readers._busy < n:
        assert time.monotonic() < deadline, "the stuck files never started"
        time.sleep(0.1)


def test_a_visitor_with_stuck_files_holds_half_the_readers(readers, tmp_path):
    """Before: both readers went to the first visitor's two stuck files, and the other visitor
    waited out their deadline (here 60 s; 120 s by default)."""
    assert readers.share == 1
    _stuck(readers, "client 203.0.113.5", tmp_path, 4)
    _wait_until_held(readers, 1)
    time.sleep(1.0)  # its other files wait for its one reader, not for another's
    assert readers._busy == 1, "one visitor holds at most half the readers"
    seconds = _seconds_to_read(readers, "client 198.51.100.9")
    assert seconds < QUICK, seconds


def test_without_a_visitor_every_reader_is_used(readers, tmp_path):
    """The command line and the library read for no visitor: nothing is kept back."""
    _stuck(readers, None, tmp_path, 2)
    _wait_until_held(readers, 2)
    assert readers._busy == 2


def test_two_visitors_with_stuck_files_hold_one_reader_each(readers, tmp_path):
    """Their other files wait for their own visitor's reader: none takes a second one."""
    _stuck(readers, "client A", tmp_path, 3)
    _stuck(readers, "client B", tmp_path, 3)
    _wait_until_held(readers, 2)
    holding = dict(readers._holding)
    assert holding == {"client A": 1, "client B": 1}, holding
    assert len(readers._waiting) == 4 and readers._next() is None
