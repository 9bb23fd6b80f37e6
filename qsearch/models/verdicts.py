"""Start-up checks remembered on disk, so that every process on a machine makes the same choice.

The CPU race behind `--dtype auto` (every precision the CPU can run, against fp32: cpu_race.py) and
the quality check of a model in a lower precision are measured once and kept under HF_HOME
(qsearch/checks), one JSON file per check, keyed by what the answer depends on (the CPU, torch, the
model files). A value is a number, or a mapping of names to numbers (the race's ratios). Why on
disk: a timing taken at each start is noisy, and two processes (the app and the CLI that indexes
for it, or a ZeroGPU worker) that chose differently would embed one collection in two precisions.
The first writer wins: a process that measured after another one had stored its answer takes the
stored one. A file that doesn't parse, or whose key or checksum doesn't match, is removed and
measured again, never trusted. Delete the folder to measure again (after moving the app to a
quieter machine, say).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Value = float | dict[str, float]


def folder() -> Path:
    """Where the verdicts live: under the Hugging Face cache, beside the models."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "qsearch" / "checks"


def _path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder() / f"{key.get('check', 'check')}-{digest}.json"


def _checksum(key: dict[str, Any], value: Value) -> str:
    payload = json.dumps({"key": key, "value": value}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _number_or_numbers(value: Any) -> Value:
    """`value` as stored: a float, or a dict of floats; anything else raises ValueError."""
    if isinstance(value, dict):
        return {str(name): float(number) for name, number in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"a verdict is a number or a mapping of numbers, not {value!r}")


def read(key: dict[str, Any]) -> Value | None:
    """The stored value for `key`, or None when absent, unreadable, stale or tampered with (such a
    file is removed, so the check runs again)."""
    path = _path(key)
    try:
        entry = json.loads(path.read_text())
        # the key is stored as JSON: tuples come back as lists, so compare through JSON too
        same_key = json.dumps(entry["key"], sort_keys=True) == json.dumps(key, sort_keys=True)
        value = _number_or_numbers(entry["value"])
        if same_key and entry["checksum"] == _checksum(entry["key"], value):
            return value
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    path.unlink(missing_ok=True)
    return None


def write(key: dict[str, Any], value: Value) -> Value:
    """Store `value` unless another process stored one first; returns the value that stands.
    The file appears whole or not at all (written aside, then linked); a read-only cache is
    skipped, and then `value` stands for this process only."""
    path = _path(key)
    value = _number_or_numbers(value)  # as read back: ints become floats, so the checksum holds
    stored = json.loads(json.dumps(key))
    entry = {"key": stored, "value": value, "checksum": _checksum(stored, value)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry))
        try:
            os.link(tmp, path)  # fails when the file exists: the first writer wins
        except FileExistsError:
            earlier = read(key)
            if earlier is not None:
                return earlier
            tmp.replace(path)  # the earlier file was bad (read removed it): this one stands
        except OSError:
            tmp.replace(path)  # a file system without hard links: the last writer wins there
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass
    return value


def remembered(key: dict[str, Any], measure: Callable[[], Value]) -> Value:
    """The stored value for `key`, or `measure()` stored (unless another process stored first)."""
    value = read(key)
    return value if value is not None else write(key, measure())
