"""The cyclic garbage collector paused while a thread builds many small acyclic objects.

Deciding a 45,000-tensor model, or drawing its report, builds hundreds of thousands of
objects (names, decisions, tree nodes) that hold no cycle; each batch of them would
otherwise set off full collections over everything the process holds (the whole model),
most of the time spent. It lives here, in the lowest part that needs it, and ``engine``
shares it: one count for the process, so the first thread in pauses the collector (if
it ran) and the last one out restarts it."""

from __future__ import annotations

import contextlib
import gc
import threading


class _Pause(contextlib.ContextDecorator):
    """``with gc_paused:`` or ``@gc_paused``: reentrant, shared between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._restart = False

    def __enter__(self) -> None:
        with self._lock:
            if not self._inside:
                self._restart = gc.isenabled()
                gc.disable()
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if not self._inside and self._restart:
                gc.enable()


gc_paused = _Pause()
