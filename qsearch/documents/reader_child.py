"""A reader process: reads requests (source, bytes, limits, options) from stdin, answers with the
parsed Document or the exception, one pickle each, until stdin closes.

Started by `pool.Readers` as `python -m qsearch.documents.reader_child [MODULE ...]`: a fresh
interpreter, so it inherits no thread, lock or listening socket of the server; each MODULE is
imported first (a plugin adding a loader to `formats.LOADERS`, or a test's stuck loader).

While it reads a file the reader caps its own address space at that file's
`Limits.max_reader_mb` (RLIMIT_AS, where the platform has it; set here, not in a `preexec_fn`,
which is unsafe in the threaded server; per file, as settings may differ between calls): a file
whose parsed form would take more (a .docx of 25 million empty paragraphs: 3.3 GB) meets a
MemoryError (or its XML parser's "no memory"), answered as a MemoryError, and the pool replaces
the reader. Between files the cap is lifted to the hard limit, so the next request is read whole.
"""

from __future__ import annotations

import importlib
import os
import pickle
import pyexpat
import signal
import sys
import threading
import time
from typing import BinaryIO
from xml.etree import ElementTree

import charset_normalizer  # noqa: F401 - the parsing libraries, imported once at start, not per file
import docx  # noqa: F401
import lxml.html  # noqa: F401
import pypdf  # noqa: F401
import trafilatura  # noqa: F401
from lxml import etree

from .containers import short
from .read import IngestError, parse
from .readers import OUT_OF_MEMORY

try:
    import resource
except ImportError:  # Windows: no address-space limit to set
    resource = None  # type: ignore[assignment]


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Say "ready", then answer requests until the parent closes its end of the pipe."""
    answers.write(pickle.dumps("ready"))
    answers.flush()
    while True:
        try:
            source, data, limits, options = pickle.load(requests)
        except EOFError:
            return
        cap_memory(limits.max_reader_mb)  # while it reads this file
        try:
            answer = pickle.dumps(
                ("ok", parse(source, data, limits, options)), pickle.HIGHEST_PROTOCOL
            )
        except Exception as e:  # noqa: BLE001 - sent back to the caller, who reports it for the file
            answer = _error(MemoryError() if out_of_memory(e) else e, source)
        cap_memory(None)  # the next request is read whole, whatever this file's cap
        answers.write(answer)
        answers.flush()


def cap_memory(mb: int | None) -> None:
    """Limit this process's address space to `mb` MB (None: to its hard limit, as it started)
    where the platform allows it. Only the soft limit is set, so that it can be raised again."""
    if resource is None or not hasattr(resource, "RLIMIT_AS"):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = hard if mb is None else mb * 2**20
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
        except (ValueError, OSError):  # a platform that has the name but refuses the limit
            pass


def out_of_memory(error: BaseException) -> bool:
    """Whether `error`, or an exception it was raised from or while handling, is a MemoryError
    or an XML parser's "no memory" (libxml2's and expat's own codes: lxml and ElementTree raise
    a syntax error for it). Loaders turn a library's exceptions into IngestError ("not a
    readable .docx"); the exception inside stays in its context."""
    seen: set[int] = set()
    chain: list[BaseException | None] = [error]
    while chain:
        e = chain.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, MemoryError) or _xml_no_memory(e):
            return True
        seen.add(id(e))
        chain += [e.__cause__, e.__context__]
    return False


def _xml_no_memory(error: BaseException) -> bool:
    code = getattr(error, "code", None)
    if isinstance(error, etree.ParseError):
        return code == etree.ErrorTypes.ERR_NO_MEMORY
    if isinstance(error, ElementTree.ParseError | pyexpat.ExpatError):
        return code == pyexpat.errors.codes[pyexpat.errors.XML_ERROR_NO_MEMORY]
    return False


def _error(e: Exception, source: str) -> bytes:
    try:
        return pickle.dumps(("error", e), pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that can't be pickled goes back in words
        reason = f"could not be read: {short(e)}"
        error = IngestError(source, reason, detail=f"{type(e).__name__}: {e}")
        return pickle.dumps(("error", error), pickle.HIGHEST_PROTOCOL)


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
    try:
        serve(sys.stdin.buffer, answers)
    except MemoryError:  # e.g. while reading a request or sending an answer: say so, and go
        os._exit(OUT_OF_MEMORY)


if __name__ == "__main__":
    main(sys.argv[1:])
