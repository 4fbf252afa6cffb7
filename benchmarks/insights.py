"""Delivery insights benchmark: the figures over a 1,000,000-event audit log, and what a chart costs in memory.

Run: .venv/bin/python benchmarks/insights.py [--rows 1000000] [--postgres URL] [--skip-postgres]

The log is about 13 months of realistic runs on 200 services × 2 environments, loaded through the real
chained append (so it is a valid chain): each run writes ``command_received`` and
``approval_requested``, then ``approved``, ``started``, four step events and one progress line,
then its end (deploys fail 1 in 12, half of those roll back automatically; a rollback run follows
1 in 20 deploys), plus an incident every 150 runs: ~11 events per run, of which the figures read 4.
Then it times ``Insights.report`` (default 28-day window against the previous 28 days) for all
services and for one target, and renders a PNG chart for each of the 200 services, reading the
process's resident memory (VmRSS) before and after. Prints one line per figure; the last line is
``RESULT {json}``. Not a test: it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, update

from bot.audit.chain import GENESIS_HASH, canonical_json, chain_hash, format_time
from bot.audit.events import AuditEvent, EventType
from bot.catalog.catalog import Catalog, load_catalog
from bot.catalog.config import Environment, KubernetesTarget, Service
from bot.redaction import redact
from bot.requests.builtins import BUILTIN_SPECS
from bot.store import audit as audit_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, AuditHeadRow
from bot.watch.insights_chart import deploys_chart
from bot.watch.insights_service import Insights

REPO = Path(__file__).resolve().parent.parent
SERVICES = [f"service-{index:03d}" for index in range(200)]
ENVS = ("production", "staging")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=365)


def catalog() -> Catalog:
    """The example catalog's runbooks and policy with 200 services in two environments."""
    example = load_catalog(REPO / "opsbot.example.yaml", REPO / "runbooks", builtins=BUILTIN_SPECS)
    services = {
        name: Service(
            environments={env: Environment(kubernetes=KubernetesTarget(context=env, namespace="shop", deployment=name)) for env in ENVS}
        )
        for name in SERVICES
    }
    return dataclasses.replace(example, config=example.config.model_copy(update={"services": services}))


def run_events(number: int, rng: random.Random, asked: datetime) -> list[tuple[datetime, list[AuditEvent]]]:
    """One run's events in the three groups opsbot writes them in, with their times."""
    service, env = SERVICES[number % len(SERVICES)], ENVS[(number // len(SERVICES)) % 2]
    roll = rng.random()
    runbook = "deploy" if roll < 0.7 else ("rollback" if roll < 0.75 else rng.choice(["restart", "scale", "status"]))
    approved = asked + timedelta(seconds=rng.randint(5, 1_800))
    ended = approved + timedelta(seconds=rng.randint(30, 900))

    def event(kind: EventType, outcome: str, **details: Any) -> AuditEvent:
        return AuditEvent(
            event=kind, actor_id="U0ALICE", actor_name="alice", channel="C0OPS", request_id=number + 1, runbook=runbook,
            service=service, env=env, params={"service": service, "env": env, "version": f"1.{number}"}, outcome=outcome, details=details,
        )  # fmt: skip

    failed = runbook == "deploy" and rng.random() < 1 / 12
    end = EventType.SUCCEEDED if not failed else rng.choice([EventType.FAILED, EventType.ROLLED_BACK])
    middle = [
        event(EventType.APPROVED, "approved"),
        event(EventType.STARTED, "started"),
        event(EventType.STEP_STARTED, "started", step="Set the new image"),
        event(EventType.STEP_FINISHED, "ok", step="Set the new image"),
        event(EventType.STEP_STARTED, "started", step="Wait for the rollout"),
        event(EventType.STEP_PROGRESS, "progress", line="2/3 updated"),
        event(EventType.STEP_FINISHED, "ok", step="Wait for the rollout"),
    ]
    if end == EventType.ROLLED_BACK:
        middle.append(event(EventType.ROLLBACK_STARTED, "started"))
    groups = [
        (asked, [event(EventType.COMMAND_RECEIVED, "received"), event(EventType.APPROVAL_REQUESTED, "pending")]),
        (approved, middle),
        (ended, [event(end, str(end))]),
    ]
    if number % 150 == 0:
        groups.append((ended, [AuditEvent(EventType.INCIDENT_OPENED, service=service, env=env, outcome="open")]))
        groups.append((ended + timedelta(minutes=rng.randint(5, 90)), [AuditEvent(EventType.INCIDENT_RESOLVED, service=service, env=env)]))
    return groups


def fill(database: Database, rows: int) -> int:
    """Write runs until ``rows`` events as one valid chain, each event at its own time; returns the events written.

    ``append_events`` stamps a whole call with one time, and one call per event group would make
    loading a million events take many minutes; so the rows are built here exactly as
    ``bot.store.audit`` builds them (the same chain functions) and inserted 5,000 at a time.
    """
    rng = random.Random(22)
    spacing = SPAN / max(1, rows // 11)
    seq, prev_hash, number, batch = 0, GENESIS_HASH, 0, []
    while seq < rows:
        for when, events in run_events(number, rng, NOW - SPAN + number * spacing):
            for item in events:
                seq += 1
                row = chained_row(seq, item, when, prev_hash)
                prev_hash = str(row["hash"])
                batch.append(row)
        number += 1
        if len(batch) >= 5_000 or seq >= rows:
            with database.transaction() as session:
                session.execute(insert(AuditEventRow), batch)
                session.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=seq, last_hash=prev_hash))
            batch = []
    return seq


def chained_row(seq: int, item: AuditEvent, when: datetime, prev_hash: str) -> dict[str, object]:
    """The row ``bot.store.audit.append_events`` would write for ``item`` at ``when``."""
    params, details = canonical_json(redact(item.params)), canonical_json(redact(item.details))
    fields = (seq, format_time(when), str(item.event), item.actor_id, item.actor_name, item.channel, item.request_id, item.runbook,
              item.service, item.env, params, item.outcome, details)  # fmt: skip
    return {
        "seq": seq, "at": when, "event": str(item.event), "actor_id": item.actor_id, "actor_name": item.actor_name,
        "channel": item.channel, "request_id": item.request_id, "runbook": item.runbook, "service": item.service, "env": item.env,
        "params": params, "outcome": item.outcome, "details": details, "prev_hash": prev_hash, "hash": chain_hash(fields, prev_hash),
    }  # fmt: skip


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(work: Any, repeat: int = 3) -> tuple[float, float, Any]:
    """The best of ``repeat`` runs: wall seconds, this process's CPU seconds, and the last result.

    CPU time is printed beside wall time because the machine is shared: on SQLite (in-process)
    it is the work itself, where wall time also counts waiting for the cores.
    """
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def run(name: str, url: str, rows: int, figures: dict[str, Any]) -> None:
    database = Database(url)
    upgrade(database)
    started = time.perf_counter()
    with database.reading() as session:
        existing = audit_store.count_events(session)
    written = existing or fill(database, rows)
    report_of_chain = audit_store.verify(database)
    assert report_of_chain.broken is None, report_of_chain.broken
    how = "found" if existing else "loaded"
    print(f"{name}: {how} {written:,} chained audit events in {time.perf_counter() - started:.1f}s (chain verified)")
    insights = Insights(catalog=catalog(), database=database, clock=lambda: NOW)
    everything, everything_cpu, report = timed(insights.report)
    overall = report.overall.current
    print(
        f"{name}: insights for all {len(report.targets)} targets, 28 days vs the previous 28, over {written:,} events: "
        f"{everything:.2f}s wall, {everything_cpu:.2f}s CPU in this process (load average {os.getloadavg()[0]:.1f}) "
        f"({overall.changes:,} changes, {overall.deploys:,} deploys, CFR {overall.change_failure_rate or 0:.1%}, "
        f"{len(overall.restore_seconds)} restores)"
    )
    one, one_cpu, _ = timed(lambda: insights.report(service=SERVICES[7], env="production"))
    print(f"{name}: insights for one target: {one * 1000:.1f} ms wall, {one_cpu * 1000:.1f} ms CPU")
    figures[name] = {
        "events": written,
        "all_targets_seconds": round(everything, 3),
        "all_targets_cpu_seconds": round(everything_cpu, 3),
        "one_target_ms": round(one * 1000, 1),
        "load_average": round(os.getloadavg()[0], 1),
    }
    if "charts" not in figures:
        gc.collect()
        before = rss_kib()
        started = time.perf_counter()
        sizes = [len(deploys_chart(item.current)) for item in report.services]
        elapsed = time.perf_counter() - started
        gc.collect()
        after = rss_kib()
        print(
            f"charts: {len(sizes)} PNGs ({min(sizes):,}–{max(sizes):,} bytes) in {elapsed:.2f}s; "
            f"resident memory {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after ({(after - before) / 1024:+.1f} MiB)"
        )
        figures["charts"] = {"count": len(sizes), "seconds": round(elapsed, 3), "rss_before_kib": before, "rss_after_kib": after}
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--postgres-schema", help="measure an existing schema this benchmark loaded (kept, not dropped) instead of loading a new one"
    )
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        run("sqlite", f"sqlite:///{Path(directory) / 'bench.db'}", args.rows, figures)
    if args.postgres_schema:
        url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{args.postgres_schema}"
        run("postgresql", url, args.rows, figures)
    elif not args.skip_postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
            run("postgresql", url, args.rows, figures)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print("RESULT " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
