"""After Ctrl-C the app ends within a bound, even when a thread would hold the interpreter's
shutdown (web/exiting.py): Python joins non-daemon threads before atexit."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A process whose main thread returns while a non-daemon thread still sleeps, as a closed
# server's idle worker thread does.
SCRIPT = """
import sys, threading, time
from qsearch.web.exiting import end_process_soon

threading.Thread(target=time.sleep, args=(60,)).start()
print("ready", flush=True)
if sys.argv[1] == "bounded":
    end_process_soon(grace=0.5)
"""


def run(mode: str) -> float:
    """Seconds from the main thread's last line to the end of the process (at most 8)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "ready\n"  # after the imports, which take seconds
        started = time.monotonic()
        process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    finally:
        process.stdout.close()
    return time.monotonic() - started


def test_a_lingering_thread_no_longer_holds_the_exit():
    assert run("bounded") < 5, "end_process_soon ends the process after its grace"
    assert run("unbounded") >= 8, "without it, the sleeping thread holds the exit (the stand-in)"
