"""Parse a big API answer (a page of a list) without the garbage collector walking it as it grows.

Parsing a 700 kB page of Pods builds ~100,000 dicts and lists; each batch of new containers sets
off a collection, and the older generations are walked again and again while the page is still
being built: three quarters of the parse time of a 10,000-Deployment digest (docs/benchmarks.md,
digest cost). What ``json.loads`` returns has no reference cycles, so nothing it builds could be
freed by a collection: pausing the collector for the parse changes no memory, only time.

The collector is process-wide and opsbot parses from several threads, so the pause is counted:
the first parse in pauses it (if it was running), the last one out resumes it.
"""

from __future__ import annotations

import gc
import json
import threading
from typing import Any


class _CollectorPause:
    """Counts the parses under way: the first one in pauses the collector, the last one out resumes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsing = 0
        self._resume = False

    def enter(self) -> None:
        with self._lock:
            if self._parsing == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._parsing += 1

    def leave(self) -> None:
        with self._lock:
            self._parsing -= 1
            if self._parsing == 0 and self._resume:
                gc.enable()


_pause = _CollectorPause()


def loads_paused(data: bytes | str) -> Any:
    """``json.loads(data)`` with the garbage collector paused for the duration (see the module docstring)."""
    _pause.enter()
    try:
        return json.loads(data)
    finally:
        _pause.leave()
