"""Imported into a reader process (`Readers(modules=["stuck_loader"])`, tests/ on PYTHONPATH): a
.txt file whose text starts with STUCK makes the loader hang inside its one page, as a pathological
page does, after starting a child (as OCR starts Tesseract) and writing that child's pid to the
path that follows STUCK. Other .txt files read as usual."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from qsearch.documents import formats

_read_text = formats.LOADERS[".txt"]


def _stuck_or_text(data, source, deadline, options):  # noqa: ANN001, ANN202 - a loader
    if not data.startswith(b"STUCK "):
        return _read_text(data, source, deadline, options)
    child = subprocess.Popen(["sleep", "600"])
    Path(data[len(b"STUCK ") :].decode()).write_text(str(child.pid))
    threading.Event().wait()  # never returns: no deadline check between pages can see it


formats.LOADERS[".txt"] = _stuck_or_text
