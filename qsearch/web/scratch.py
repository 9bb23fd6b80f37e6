"""Files the server hands to a browser (exported results, collection downloads), and their end.

Gradio copies a file a handler returns into its own cache (which the page's `delete_cache`
empties), so the server's copy is needed only until then. Each one is written in a folder of its
own under one folder per server process; a folder older than KEEP_SECONDS is deleted whenever a
new one is made, and the whole lot at exit. A process that died without cleaning up (SIGKILL)
left a folder named by its pid: the next server to start removes it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

KEEP_SECONDS = 600.0
PREFIX = "qsearch-files-"
_OWNER = re.compile(rf"{PREFIX}(\d+)-")


class Scratch:
    """This process's folder of handed-out files."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, parent: str | None = None):
        self.keep_seconds = keep_seconds
        self.parent = Path(parent or tempfile.gettempdir())
        remove_orphans(self.parent)
        self.root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.parent))
        self._lock = threading.Lock()
        atexit.register(self.close)

    def folder(self, prefix: str) -> Path:
        """A new empty folder for one download; old ones are swept first."""
        self.sweep()
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    def sweep(self, now: float | None = None) -> int:
        """Delete the folders made over keep_seconds ago; returns how many went."""
        now = time.time() if now is None else now
        gone = 0
        with self._lock:
            for folder in self.root.glob("*") if self.root.is_dir() else []:
                with contextlib.suppress(FileNotFoundError):
                    if now - folder.stat().st_mtime > self.keep_seconds:
                        shutil.rmtree(folder, ignore_errors=True)
                        gone += 1
        return gone

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def remove_orphans(parent: Path) -> None:
    """Remove the scratch folders of server processes that no longer run."""
    for folder in parent.glob(f"{PREFIX}*"):
        owner = _OWNER.match(folder.name)
        if owner and not psutil.pid_exists(int(owner.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
