"""What every long-lived opsbot process does once it has started (HTTP workers and executors alike)."""

from __future__ import annotations

import gc


def settle_garbage_collector() -> None:
    """Move everything built at startup out of the garbage collector's reach.

    After start a process holds a large heap of long-lived objects (Bolt, pydantic models, the
    Kubernetes client, SQLAlchemy), and each full collection walked all of it, with the event
    loop stopped, every few seconds under load: most of opsbot's p99 ack latency (measured with
    benchmarks/ack.py, see docs/benchmarks.md). ``gc.freeze`` parks those objects in a permanent
    generation that collections skip.
    """
    gc.collect()
    gc.freeze()
