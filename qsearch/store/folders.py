"""Versioned folders with an atomic switch: how an index is saved so that a crash never breaks it.

A save writes every file of a new version into a temporary folder, fsyncs it, renames it
to `v-…`, then replaces the `CURRENT` pointer with one atomic rename (the commit point).
A crash at any moment leaves the previous version current; the next save cleans up.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

POINTER = "CURRENT"


def write_version(folder: str | Path, files: dict[str, bytes | str]) -> Path:
    """Write `files` (relative path -> content) as a new version of `folder` and make it current."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    for name, data in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        _write(tmp / name, data)
    _fsync_dir(tmp)
    version = folder / f"v-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    os.rename(tmp, version)
    _write(folder / f".{POINTER}.tmp", version.name)
    os.replace(folder / f".{POINTER}.tmp", folder / POINTER)  # the commit point
    _fsync_dir(folder)
    _clean(folder, keep=version.name)
    return version


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace the file `path` by `data` in one atomic rename: a crash leaves the old or the new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    _write(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def current_version(folder: str | Path) -> Path | None:
    """The folder of the current version, or None when `folder` holds none."""
    pointer = Path(folder) / POINTER
    return Path(folder) / pointer.read_text().strip() if pointer.is_file() else None


def _write(path: Path, data: str | bytes) -> None:
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean(folder: Path, keep: str) -> None:
    """Remove older versions and temporary folders left by an interrupted save."""
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name != keep and entry.name.startswith(("v-", ".tmp-")):
            shutil.rmtree(entry, ignore_errors=True)
