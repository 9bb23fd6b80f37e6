"""How the app process ends after Ctrl-C: as Python ends it, within a bound."""

from __future__ import annotations

import os
import sys
import threading
import time

from ..documents import pool

EXIT_GRACE_SECONDS = 3.0


def end_process_soon(grace: float = EXIT_GRACE_SECONDS) -> None:
    """After Ctrl-C: let the interpreter end as usual, but no later than `grace` s from now.

    Why: Python joins every non-daemon thread before it runs atexit, so one thread left busy or
    idle by the closed server (AnyIO lets an idle worker wait 10 s) can hold the exit; CI once
    saw the app still running 10 s after SIGINT. Past `grace`, a daemon thread stops the reader
    processes, flushes the output and ends the process."""

    def end() -> None:
        time.sleep(grace)
        pool.stop_readers()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    threading.Thread(target=end, name="qsearch-exit", daemon=True).start()
