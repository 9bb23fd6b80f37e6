"""A stand-in for the `spaces` package on ZeroGPU hardware: its process model, for tests.

What it reproduces, from `spaces/zero/wrappers.py` in the PyPI `spaces` wheel:
- each call of a `@spaces.GPU` function runs in a forked worker process;
- the arguments are sent to the worker by pickle, and the return value (or the exception)
  comes back by pickle; something that can't be pickled fails the call, clearly;
- whatever the function changes in memory stays in the worker and is lost;
- `duration` bounds a call (default 60 s) and may be a function of the call's arguments.
It also refuses a CUDA tensor in the result: the real worker's CUDA memory is gone with it.
What it cannot reproduce: GPU scheduling and queueing, quotas, the real CUDA devices.

Installed as `sys.modules["spaces"]` before the app is imported (see zerogpu_app.py).
"""

from __future__ import annotations

import functools
import multiprocessing
import pickle
from collections.abc import Callable
from typing import Any

CALLS: list[
    str
] = []  # names of the functions called, in the main process: tests check the boundary was used


class ZeroGPUError(RuntimeError):
    """A call that ZeroGPU's process model refuses or that failed in the worker."""


def GPU(task: Callable | None = None, *, duration: float | Callable[..., float] = 60) -> Any:  # noqa: N802
    """`@spaces.GPU`, `@spaces.GPU(duration=...)` and `spaces.GPU(fn, duration=...)`."""
    if task is None:
        return lambda fn: GPU(fn, duration=duration)

    @functools.wraps(task)
    def call(*args: Any, **kwargs: Any) -> Any:
        seconds = duration(*args, **kwargs) if callable(duration) else duration
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ZeroGPUError(
                f"{task.__name__}: duration must be a positive number of seconds, got {seconds!r}"
            )
        try:
            payload = pickle.dumps((args, kwargs))
        except Exception as e:  # noqa: BLE001 - whatever pickle refuses
            raise ZeroGPUError(
                f"{task.__name__}: its arguments can't be sent to the GPU worker ({e})"
            ) from None
        CALLS.append(task.__name__)
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=_work, args=(task, payload, send), daemon=True)
        worker.start()
        send.close()
        if not receive.poll(seconds):
            worker.kill()
            raise ZeroGPUError(
                f"{task.__name__}: GPU task aborted after its duration of {seconds:g} s"
            )
        status, value = pickle.loads(receive.recv_bytes())
        worker.join()
        if status == "error":
            raise value
        return value

    return call


def _work(task: Callable, payload: bytes, send: Any) -> None:
    """In the forked worker: run the task, send back its pickled result or exception."""
    try:
        args, kwargs = pickle.loads(payload)
        result = task(*args, **kwargs)
        _refuse_cuda(result, task.__name__)
        message = pickle.dumps(("ok", result))
    except Exception as e:  # noqa: BLE001 - sent to the caller, as the real worker does
        try:
            message = pickle.dumps(("error", e))
        except Exception:  # noqa: BLE001 - an exception that can't be pickled
            message = pickle.dumps(
                ("error", ZeroGPUError(f"{task.__name__}: {type(e).__name__}: {e}"))
            )
    send.send_bytes(message)
    send.close()


def _refuse_cuda(value: Any, name: str) -> None:
    items = (
        value.values()
        if isinstance(value, dict)
        else value
        if isinstance(value, (list, tuple))
        else [value]
    )
    for item in items:
        if getattr(item, "is_cuda", False):
            raise ZeroGPUError(
                f"{name}: returned a CUDA tensor, which does not survive the worker; return numpy"
            )
