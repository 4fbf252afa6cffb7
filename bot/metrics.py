"""Prometheus metrics, all in one place, with small ``record_*`` functions the code calls.

Why functions and not the metric objects at call sites: label names and their allowed
values live here, so a typo cannot create a new series and a label can never carry user
text (unbounded label values would take Prometheus down). Every ``record_*`` swallows
its own errors: a metric must never break the operation it measures.

Several uvicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory
*before* the process starts (``opsbot serve`` creates it and clears a previous run's files
before anything imports this module). prometheus-client
then writes each worker's samples to files there and ``/metrics``, served by any worker,
aggregates them all. Without it, each worker would report only its own counters and a
scrape would see whichever worker answered.
"""

from __future__ import annotations

import contextlib
import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads this variable itself, at import time; we only look at it to aggregate."""

COMMANDS = Counter(
    "opsbot_commands_total",
    "Slash commands received, by command and what the ack path did with them.",
    ["command", "outcome"],
)
APPROVALS = Counter(
    "opsbot_approvals_total",
    "Approve/reject/cancel decisions, by decision and outcome (accepted, refused reason).",
    ["decision", "outcome"],
)
RUN_DURATION = Histogram(
    "opsbot_run_duration_seconds",
    "Wall-clock time of a runbook run, from start to its final state.",
    ["runbook", "result"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1_200, 1_800, 3_600),
)
ACK_SECONDS = Histogram(
    "opsbot_ack_seconds",
    "Time to answer Slack's HTTP request (verify, parse, ack); Slack gives up after 3 s.",
    buckets=(0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
)
SLACK_API_ERRORS = Counter(
    "opsbot_slack_api_errors_total",
    "Slack Web API calls that failed for good (ok: false, HTTP errors, exhausted retries).",
    ["method", "error"],
)
SLACK_RATELIMITED = Counter(
    "opsbot_slack_ratelimited_total",
    "HTTP 429 answers from Slack, each one retried after Retry-After or counted as an error.",
    ["method"],
)
SCHEDULER_JOB_RUNS = Counter(
    "opsbot_scheduler_job_runs_total",
    "Scheduled jobs (digests, health checks) run on this replica, by job and outcome.",
    ["job", "outcome"],
)
# Delivery insights (docs/insights.md), refreshed by each executor every ``insights.metrics_every``.
# ``mostrecent``: with several processes, a scrape shows the latest refresh, not a sum of copies.
# Labels are catalog names (or ``*`` for all) and fixed quantile names: never user text.
INSIGHTS_DEPLOYS = Gauge(
    "opsbot_insights_deploys",
    "Successful deploys in the insights window (default 28 days); service/env '*' is every target.",
    ["service", "env"],
    multiprocess_mode="mostrecent",
)
INSIGHTS_CHANGE_FAILURE = Gauge(
    "opsbot_insights_change_failure_ratio",
    "Failed changes / changes in the insights window (failed, rolled back, or rolled back by a rollback soon after).",
    ["service", "env"],
    multiprocess_mode="mostrecent",
)
INSIGHTS_TIME_TO_RESTORE = Gauge(
    "opsbot_insights_time_to_restore_seconds",
    "Median time to restore in the insights window (incident or failed deploy → healthy or a successful deploy/rollback).",
    ["service", "env"],
    multiprocess_mode="mostrecent",
)
INSIGHTS_APPROVAL_WAIT = Gauge(
    "opsbot_insights_approval_wait_seconds",
    "Approval wait (approval_requested → approved) in the insights window, by quantile (0.5, 0.9).",
    ["service", "env", "quantile"],
    multiprocess_mode="mostrecent",
)
INSIGHTS_RUN_DURATION = Gauge(
    "opsbot_insights_run_duration_seconds",
    "Run duration (started → its end) in the insights window, by quantile (0.5, 0.9).",
    ["service", "env", "quantile"],
    multiprocess_mode="mostrecent",
)

MAX_LABEL_CHARS = 64


def record_command(command: str, outcome: str) -> None:
    """A slash command left the ack path: ``accepted``, ``usage_error``, ``bad_payload``, ``unavailable``."""
    _inc(COMMANDS, command, outcome)


def record_approval(decision: str, outcome: str) -> None:
    """An approve/reject/cancel click was decided (``decision``) with ``outcome`` (``ok`` or a refusal code)."""
    _inc(APPROVALS, decision, outcome)


def record_run(runbook: str, result: str, seconds: float) -> None:
    """A run reached its final state (``succeeded``, ``failed``, ``rolled_back``…) after ``seconds``."""
    try:
        RUN_DURATION.labels(_label(runbook), _label(result)).observe(max(0.0, seconds))
    except Exception:
        logger.warning("could not record run duration", exc_info=True)


def record_ack(seconds: float) -> None:
    """One Slack request was answered after ``seconds``."""
    try:
        ACK_SECONDS.observe(max(0.0, seconds))
    except Exception:
        logger.warning("could not record ack latency", exc_info=True)


def record_slack_error(method: str, error: str) -> None:
    """A Slack Web API call failed for good; ``error`` is Slack's error code (bounded by Slack)."""
    _inc(SLACK_API_ERRORS, method, error)


def record_slack_ratelimited(method: str) -> None:
    """Slack answered HTTP 429 to ``method``."""
    _inc(SLACK_RATELIMITED, method)


def record_scheduler_job(job: str, outcome: str) -> None:
    """A scheduled job ran here: ``ok``, ``failed`` or ``skipped`` (another replica had the slot)."""
    _inc(SCHEDULER_JOB_RUNS, job, outcome)


def record_insights(
    service: str,
    env: str,
    *,
    deploys: int,
    change_failure_ratio: float | None,
    time_to_restore: float | None,
    approval_wait: tuple[float | None, float | None],
    run_duration: tuple[float | None, float | None],
) -> None:
    """One target's insights figures (``*`` for all); a figure with nothing to measure is left out, not zero."""
    try:
        names = (_label(service), _label(env))
        INSIGHTS_DEPLOYS.labels(*names).set(deploys)
        _set_or_remove(INSIGHTS_CHANGE_FAILURE, names, change_failure_ratio)
        _set_or_remove(INSIGHTS_TIME_TO_RESTORE, names, time_to_restore)
        for quantile, value in zip(("0.5", "0.9"), approval_wait, strict=True):
            _set_or_remove(INSIGHTS_APPROVAL_WAIT, (*names, quantile), value)
        for quantile, value in zip(("0.5", "0.9"), run_duration, strict=True):
            _set_or_remove(INSIGHTS_RUN_DURATION, (*names, quantile), value)
    except Exception:
        logger.warning("could not record insights gauges", exc_info=True)


def exposition() -> tuple[bytes, str]:
    """The text format for ``GET /metrics`` and its content type, aggregated across workers if multiprocess."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _inc(counter: Counter, *labels: str) -> None:
    try:
        counter.labels(*(_label(value) for value in labels)).inc()
    except Exception:
        logger.warning("could not record metric %s", counter._name, exc_info=True)


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is not None:
        gauge.labels(*labels).set(value)
        return
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def _label(value: str) -> str:
    return (value or "none")[:MAX_LABEL_CHARS]
