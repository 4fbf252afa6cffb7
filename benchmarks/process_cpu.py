"""CPU seconds of process trees, read from /proc: who used the cores during a benchmark.

A throughput figure on a 2-core machine where the load generator and the fakes run beside
opsbot says little until it is known how the cores were shared. Reading the tree's
``utime + stime`` before and after a run tells each part's share, whatever the load average.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields start after its ")".
    return text[text.rindex(")") + 2 :].split()


def _children(parents: set[int]) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) in parents:
                found.add(int(entry.name))
    return found


def tree(pid: int) -> set[int]:
    """``pid`` and every live descendant of it."""
    members, frontier = {pid}, {pid}
    while frontier:
        frontier = _children(frontier) - members
        members |= frontier
    return members


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of the live processes ``pids``, with what their reaped children used."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:  # utime, stime, cutime, cstime are fields 14-17 of /proc/<pid>/stat
            total += sum(int(value) for value in fields[11:15])
    return total / TICKS_PER_SECOND


class CpuMeter:
    """CPU used by named process trees between ``start()`` and ``stop()``.

    ``alone`` names processes counted without their descendants: the benchmark's own process,
    whose children are the server and the fakes, counted under their own names.
    """

    def __init__(self, roots: dict[str, int], *, alone: Iterable[str] = ()) -> None:
        self._roots = roots
        self._alone = set(alone)
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds({pid} if name in self._alone else tree(pid)) for name, pid in self._roots.items()}

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, float]:
        after = self._now()
        self.used = {name: round(after[name] - self._before.get(name, 0.0), 2) for name in after}
        return self.used
