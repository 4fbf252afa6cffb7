"""Audit log benchmark: appends/s with the hash chain, verify time at 1 M events, tail latency.

Run: .venv/bin/python benchmarks/audit.py [--rows 1000000] [--postgres URL] [--skip-postgres]
Prints one line per figure. Not a test: it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bot.audit.events import AuditEvent, EventType
from bot.store import audit as audit_store
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.store.migrate import upgrade

SERVICES = [f"service-{index:03d}" for index in range(200)]


def event(index: int) -> AuditEvent:
    return AuditEvent(
        event=EventType.STEP_FINISHED, actor_id="U0ALICE", actor_name="alice", channel="C0OPS", request_id=index,
        runbook="deploy", service=SERVICES[index % len(SERVICES)], env="production", params={"version": f"1.{index}"},
        outcome="ok", details={"step": "Wait for the rollout", "summary": "rolled out: 6/6 updated"},
    )  # fmt: skip


def run_threads(work: Callable[[int], None], *, threads: int, per_thread: int) -> float:
    """Run ``work(offset)`` in ``threads`` threads at once; the seconds until all are done."""
    workers = [threading.Thread(target=work, args=(n * per_thread,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def appends_per_second(database: Database, *, threads: int, per_thread: int) -> float:
    """Each append is its own transaction, as in production (state change + event commit together)."""

    def work(offset: int) -> None:
        for index in range(per_thread):
            with database.transaction() as session:
                audit_store.append_events(session, [event(offset + index)], datetime.now(UTC))

    return threads * per_thread / run_threads(work, threads=threads, per_thread=per_thread)


def group_committed_per_second(database: Database, *, threads: int, per_thread: int) -> float:
    """The path step events, progress lines and refusals take: callers block until durable,
    and the events of every caller waiting at that moment share one transaction."""
    writer = AuditWriter(database, lambda: datetime.now(UTC))

    def work(offset: int) -> None:
        for index in range(per_thread):
            writer.append(event(offset + index))

    elapsed = run_threads(work, threads=threads, per_thread=per_thread)
    writer.close()
    return threads * per_thread / elapsed


def fill(database: Database, rows: int, batch: int = 5_000) -> None:
    """Bulk-load a valid chain through the same append function, many events per transaction."""
    done = audit_store.verify(database).rows
    while done < rows:
        size = min(batch, rows - done)
        with database.transaction() as session:
            audit_store.append_events(session, [event(done + index) for index in range(size)], datetime.now(UTC))
        done += size


def verify_seconds(database: Database) -> tuple[float, int]:
    started = time.perf_counter()
    report = audit_store.verify(database)
    assert report.broken is None, report.broken
    return time.perf_counter() - started, report.rows


def tail_latency_ms(database: Database, samples: int = 50) -> tuple[float, float]:
    timings = []
    for index in range(samples):
        service = SERVICES[(index * 7) % len(SERVICES)]
        started = time.perf_counter()
        with database.reading() as session:
            rows = audit_store.tail(session, limit=20, service=service)
        timings.append((time.perf_counter() - started) * 1000)
        assert rows
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]


def run(name: str, url: str, rows: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    database = Database(url)
    upgrade(database)
    for threads in (1, 8):
        rate = appends_per_second(database, threads=threads, per_thread=2_000 // threads)
        figures[f"appends_per_second_{threads}_threads"] = round(rate)
        print(f"{name}: {rate:,.0f} appends/s ({threads} thread{'s' if threads > 1 else ''}, one transaction per append: a state change)")
    for threads in (8, 32):
        rate = group_committed_per_second(database, threads=threads, per_thread=8_000 // threads)
        figures[f"group_commit_per_second_{threads}_threads"] = round(rate)
        print(f"{name}: {rate:,.0f} appends/s ({threads} threads, group commit: step events, progress, refusals)")
    started = time.perf_counter()
    fill(database, rows)
    print(f"{name}: loaded a {rows:,}-event chain in {time.perf_counter() - started:.1f}s (5,000 events per transaction)")
    seconds, checked = verify_seconds(database)
    figures["verify_seconds"], figures["verified_rows"] = round(seconds, 2), checked
    print(f"{name}: audit verify of {checked:,} events: {seconds:.2f}s ({checked / seconds:,.0f} events/s)")
    median, p95 = tail_latency_ms(database)
    figures["tail_median_ms"], figures["tail_p95_ms"] = round(median, 2), round(p95, 2)
    print(f"{name}: audit tail --service (20 rows of 1 of 200 services) at {checked:,} rows: median {median:.2f} ms, p95 {p95:.2f} ms")
    database.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        results["sqlite"] = run("sqlite", f"sqlite:///{Path(directory) / 'bench.db'}", args.rows)
    if not args.skip_postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
            results["postgresql"] = run("postgresql", url, args.rows)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
