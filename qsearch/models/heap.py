"""Memory the process freed, given back to the system.

glibc's malloc keeps freed blocks of its heaps for reuse, and torch's CPU tensors come from it:
after a model is converted in place (a float layer freed as its int8 copy appears) or a batch's
activations are freed, the process's RSS stays where its peak was until `malloc_trim` returns the
free pages (measured on Qwen3-0.6B in int8: bench/model_memory.py). Elsewhere (macOS, musl,
Windows) this does nothing: those allocators return large blocks themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _trim():  # noqa: ANN202 - a ctypes function, or None
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only; musl has none: AttributeError
    except (OSError, AttributeError):
        return None


def release() -> bool:
    """Give the heap's free pages back to the system; whether it could (glibc: `malloc_trim`)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
