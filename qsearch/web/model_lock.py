"""The one lock of all model work in a server process, fair to short calls and to every upload.

Short calls (a query, a rerank) go first: a window of an indexing run waits while one waits, for
up to MAX_DEFER seconds, so a search during someone's upload waits one window at most. Windows
take turns in the order they asked, so two long uploads and a short one share the model window
by window, and the short one is not stuck behind the others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

MAX_DEFER = 2.0  # seconds a window waits for short calls before it goes anyway


class ModelLock:
    """Short calls first, windows in turn (module docstring). `last_urgent` says when a short call
    last came: the model service shrinks its windows while people search."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._turn = threading.Condition()
        self._busy, self._urgent = False, 0
        self._queue: deque[object] = deque()  # the windows waiting, in the order they asked
        self._clock = clock
        self.last_urgent = -float("inf")

    @contextmanager
    def hold(self, urgent: bool) -> Iterator[None]:
        me, asked = object(), self._clock()
        with self._turn:
            if urgent:
                self._urgent += 1
                self.last_urgent = asked
                self._turn.wait_for(lambda: not self._busy)
                self._urgent -= 1
            else:
                self._queue.append(me)
                while not (self._queue[0] is me and not self._busy and self._may_go(asked)):
                    self._turn.wait(timeout=0.05)
                self._queue.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._turn:
                self._busy = False
                self._turn.notify_all()

    def _may_go(self, asked: float) -> bool:
        """(Under the condition.) A window goes when no short call waits, or it waited long."""
        return self._urgent == 0 or self._clock() - asked > MAX_DEFER
