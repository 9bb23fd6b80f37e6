"""A stand-in for the `spaces` package on ZeroGPU hardware: its process model, for tests.

What it reproduces, read from `spaces/zero/wrappers.py` in the PyPI wheel spaces 0.51.3
(`regular_function_wrapper`):
- a call of a `@spaces.GPU` function runs in a worker process forked from the main process;
  each decorated function has its own workers, and a live idle worker is reused by the next
  call of the same function (so it sees the main process as it was when it was forked, and
  what a call changes in its memory stays there, never in the main process);
- arguments go to the worker by pickle, and the result comes back by pickle; arguments that
  can't be pickled raise the PicklingError in the caller; a result that can't be is an error;
- an exception in the task reaches the caller as `gr.Error(<exception class name>,
  title="ZeroGPU worker error")` (its traceback printed), except a `gr.Error`, which passes
  as it is; a worker that dies is `gr.Error("GPU task aborted", title="ZeroGPU worker
  error")` (`spaces.zero.gradio.error` builds them, with print_exception=False);
- a GPU function called inside a worker runs directly (`forked`);
- `duration` (default 60 s) may be a function of the call's arguments.
Modelled, not read: ZeroGPU's scheduler ends a task that runs past its duration; here the
worker is killed at the duration and the caller gets "GPU task aborted", as a dead worker.
It also refuses a CUDA tensor in the result (the worker's CUDA memory is not the caller's).
What it cannot reproduce: GPU scheduling and queueing, quotas, the real CUDA devices.

Installed as `sys.modules["spaces"]` before the app is imported (see zerogpu_app.py).
"""

from __future__ import annotations

import functools
import multiprocessing
import pickle
import traceback
from collections.abc import Callable
from typing import Any

import gradio as gr

CALLS: list[str] = []  # names of the GPU functions called in the main process, in order
_WORKERS: dict[int, list[Any]] = {}  # id(task) -> idle live workers (the real: one per GPU)
_context = multiprocessing.get_context("fork")
forked = False  # True in a worker


def error(title: str, message: str) -> gr.Error:
    """`spaces.zero.gradio.error`: the gr.Error every ZeroGPU failure is raised as."""
    return gr.Error(message, title=title, print_exception=False)


def GPU(  # noqa: N802 - the real name
    task: Callable | None = None,
    *,
    duration: float | Callable[..., float] | None = 60,
    size: str | None = None,
) -> Any:
    """`@spaces.GPU`, `@spaces.GPU(duration=...)` and `spaces.GPU(fn, duration=...)`."""
    if task is None:
        return lambda fn: GPU(fn, duration=duration, size=size)

    @functools.wraps(task)
    def gradio_handler(*args: Any, **kwargs: Any) -> Any:
        if forked:
            return task(*args, **kwargs)
        seconds = duration(*args, **kwargs) if callable(duration) else duration
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise error("ZeroGPU illegal duration", f"{task.__name__}: duration {seconds!r}")
        payload = pickle.dumps((args, kwargs))  # a PicklingError reaches the caller as is
        CALLS.append(task.__name__)
        idle, worker = _WORKERS.setdefault(id(task), []), None
        while idle and worker is None:  # a live idle worker of this function serves the call
            worker = idle.pop()
            worker = worker if worker.alive() else None
        worker = worker or Worker(task)
        reply = worker.call(payload, seconds)
        if reply is None:
            worker.kill()
            raise error("ZeroGPU worker error", "GPU task aborted")
        status, value, trace = reply
        if status == "ok":
            idle.append(worker)  # reused only after a success, as spaces does
            return value
        worker.kill()  # spaces drops it (unused from then on); here it is ended
        if isinstance(value, gr.Error):
            raise value
        print(trace)
        raise error("ZeroGPU worker error", value)

    return gradio_handler


class Worker:
    """One forked worker process of one GPU function: it serves calls until it dies."""

    def __init__(self, task: Callable):
        self.conn, child = _context.Pipe()
        self.process = _context.Process(target=_serve, args=(task, child, self.conn), daemon=True)
        self.process.start()
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def call(self, payload: bytes, seconds: float) -> tuple[str, Any, str] | None:
        """(status, value, traceback), or None when the worker died or ran past `seconds`."""
        try:
            self.conn.send_bytes(payload)
            if not self.conn.poll(seconds):
                return None
            return pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


def shutdown() -> None:
    """Kill every idle worker (between tests; the real ones end with the Space)."""
    for workers in _WORKERS.values():
        while workers:
            workers.pop().kill()


def _serve(task: Callable, conn: Any, parent_end: Any) -> None:
    """In the worker: run calls as they come; send back ("ok", result, "") or
    ("error", gr.Error or the exception's class name, traceback). The copy of the parent's end
    that fork gave it is closed, so the worker sees end-of-file, and exits, when the app dies."""
    global forked
    forked = True
    parent_end.close()
    while True:
        try:
            args, kwargs = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            result = task(*args, **kwargs)
            _refuse_cuda(result, task.__name__)
            message = pickle.dumps(("ok", result, ""))
        except Exception as e:  # noqa: BLE001 - sent to the caller, as the real worker does
            trace = traceback.format_exc()
            kind = e if isinstance(e, gr.Error) else type(e).__name__
            message = pickle.dumps(("error", kind, trace))
        conn.send_bytes(message)


def _refuse_cuda(value: Any, name: str) -> None:
    items = value.values() if isinstance(value, dict) else value
    for item in items if isinstance(items, (list, tuple)) else [value]:
        if getattr(item, "is_cuda", False):
            raise RuntimeError(f"{name}: returned a CUDA tensor, which does not survive the worker")
