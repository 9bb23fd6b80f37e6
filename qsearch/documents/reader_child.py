"""A reader process: reads requests (source, bytes, limits, options) from stdin, answers with the
parsed Document or the exception, one pickle each, until stdin closes.

Started by `pool.Readers` as `python -m qsearch.documents.reader_child [MODULE ...]`: a fresh
interpreter, so it inherits no thread, lock or listening socket of the server; each MODULE is
imported first (a plugin adding a loader to `formats.LOADERS`, or a test's stuck loader).
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys
import threading
import time
from typing import BinaryIO

import bs4  # noqa: F401 - the parsing libraries, imported once at start rather than per file
import charset_normalizer  # noqa: F401
import docx  # noqa: F401
import pypdf  # noqa: F401

from .read import parse


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Say "ready", then answer requests until the parent closes its end of the pipe."""
    answers.write(pickle.dumps("ready"))
    answers.flush()
    while True:
        try:
            source, data, limits, options = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = pickle.dumps(
                ("ok", parse(source, data, limits, options)), pickle.HIGHEST_PROTOCOL
            )
        except Exception as e:  # noqa: BLE001 - sent back to the caller, who reports it for the file
            answer = _error(e)
        answers.write(answer)
        answers.flush()


def _error(e: Exception) -> bytes:
    try:
        return pickle.dumps(("error", e), pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that can't be pickled goes back as text
        return pickle.dumps(("error", RuntimeError(f"{type(e).__name__}: {e}")))


def _exit_with_parent(parent: int) -> None:
    """Exit when the parent is gone, even while stuck inside a page (the parent's stdin EOF
    is only seen between files)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    for module in argv:
        importlib.import_module(module)
    answers = os.fdopen(os.dup(1), "wb")  # the answers' own descriptor; stray prints go to stderr
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main(sys.argv[1:])
