"""Insights drawn for people and tools: a chat message, a terminal table with sparklines, JSON and CSV.

Pure functions of an ``InsightsReport``; names come from the catalog, never from what a user typed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.messages import Message, escape
from bot.watch.insights import Figures, InsightsReport, TargetInsights, change, percentile

SPARKS = "▁▂▃▄▅▆▇█"
MAX_TARGETS_LISTED = 15
"""A message lists at most this many targets (busiest first), well inside Slack's 3,000-character section; the terminal table lists all."""


def insights_message(report: InsightsReport) -> Message:
    """The reply to ``/ops insights``: overall figures with the change against the previous window, then each target."""
    overall = report.overall
    sections = [f"*{escape(overall.label)}*\n" + "\n".join(_summary_lines(overall))]
    busy = sorted(report.targets, key=lambda item: (-item.current.changes, item.label))
    active = [item for item in busy if item.current.changes or item.previous.changes]
    lines = [_target_line(item) for item in active[:MAX_TARGETS_LISTED]]
    if len(active) > MAX_TARGETS_LISTED:
        lines.append(f"…and {len(active) - MAX_TARGETS_LISTED} more (`opsbot insights` lists every target)")
    if len(report.targets) > 1 and lines:
        sections.append("*By target*\n" + "\n".join(lines))
    context = [_window_text(report)]
    if report.lead_time_note:
        context.append(escape(report.lead_time_note))
    return Message(
        text=f"Delivery insights for {overall.label}: {_deploys_text(overall)}",
        title=f"Delivery insights · {overall.label} · last {report.window.days} days",
        sections=tuple(sections),
        context=tuple(context),
    )


def weekly_section(report: InsightsReport) -> str:
    """The digest's weekly section: the overall figures of the last 7 days against the 7 before."""
    return f"*Delivery, last {report.window.days} days ({escape(report.overall.label)})*\n" + "\n".join(_summary_lines(report.overall))


def insights_table(report: InsightsReport) -> list[str]:
    """A fixed-width table for the terminal, one row per target plus the overall row, with a deploys sparkline."""
    header = ("TARGET", "DEPLOYS", "/WEEK", "vs prev", "CFR", "vs prev", "TTR p50", "APPROVAL p50/p90", "RUN p50/p90", "DEPLOYS PER DAY")
    unique = [_table_row(item) for item in _all_targets(report)]
    widths = [max(len(header[index]), *(len(row[index]) for row in unique)) for index in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=False)) + "  " + header[-1]]
    lines.extend("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in unique)
    lines.append("")
    lines.append(_window_text(report).replace("*", ""))
    if report.lead_time_note:
        lines.append(report.lead_time_note.replace("`", ""))
    return lines


def insights_json(report: InsightsReport) -> str:
    """Every figure of every target, current and previous window, for other tools."""
    document = {
        "window": _window_dict(report.window),
        "previous_window": _window_dict(report.previous),
        "lead_time_note": report.lead_time_note,
        "targets": [_target_dict(item) for item in _all_targets(report)],
    }
    return json.dumps(document, indent=2, sort_keys=False)


def insights_csv(report: InsightsReport) -> str:
    """One row per target and window (``current`` / ``previous``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(_figures_dict(report.overall.current))
    columns.remove("daily_deploys")
    columns.remove("daily_failures")
    writer.writerow(["service", "env", "window", "start", "end", *columns])
    for item in _all_targets(report):
        for name, figures, window in (("current", item.current, report.window), ("previous", item.previous, report.previous)):
            values = _figures_dict(figures)
            row = [item.service, item.env, name, window.start.isoformat(), window.end.isoformat()]
            writer.writerow(row + ["" if values[column] is None else values[column] for column in columns])
    return buffer.getvalue()


def sparkline(values: Sequence[int]) -> str:
    """``▁▃█·`` — one character per day, scaled to the busiest day; ``·`` for a day without any."""
    top = max(values, default=0)
    if top <= 0:
        return "·" * len(values)
    return "".join("·" if value <= 0 else SPARKS[min(len(SPARKS) - 1, (value * len(SPARKS) - 1) // top)] for value in values)


def human_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 d``; ``—`` when there is nothing to show."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def trend(current: float | None, previous: float | None) -> str:
    """``▲ 25 %``, ``▼ 10 %``, ``= 0 %``, ``new`` (nothing before) or ``—`` (nothing now or before)."""
    if current is None:
        return "—"
    if previous is None or (previous == 0 and current != 0):
        return "new" if current else "—"
    relative = change(current, previous)
    if relative is None:
        return "= 0 %"
    arrow = "▲" if relative > 0 else ("▼" if relative < 0 else "=")
    return f"{arrow} {abs(relative) * 100:.0f} %"


# -- helpers ---------------------------------------------------------------------------------


def _summary_lines(item: TargetInsights) -> list[str]:
    now, before = item.current, item.previous
    return [
        f"Deploys: {_deploys_text(item)} ({trend(now.deploys, before.deploys)} vs the previous {now.days} days, {before.deploys} then)",
        f"Change failure rate: {_rate(now.change_failure_rate)} of {now.changes} changes (was {_rate(before.change_failure_rate)})",
        f"Time to restore: {human_duration(now.time_to_restore)} median over {len(now.restore_seconds)} restores"
        + (f", {now.unrestored} not restored yet" if now.unrestored else "")
        + f" (was {human_duration(before.time_to_restore)})",
        f"Approval wait: p50 {human_duration(percentile(now.approval_waits, 50))}, p90 {human_duration(percentile(now.approval_waits, 90))}"
        f" (was p50 {human_duration(percentile(before.approval_waits, 50))})",
        f"Run duration: p50 {human_duration(percentile(now.run_durations, 50))}, p90 {human_duration(percentile(now.run_durations, 90))}"
        f" (was p50 {human_duration(percentile(before.run_durations, 50))})",
    ] + ([f"Lead time for changes: {human_duration(now.lead_time)} median"] if now.lead_times else [])


def _target_line(item: TargetInsights) -> str:
    now = item.current
    return (
        f"`{escape(item.label)}` {now.deploys} deploys {sparkline(now.daily_deploys)} · "
        f"CFR {_rate(now.change_failure_rate)} · restore {human_duration(now.time_to_restore)}"
    )


def _deploys_text(item: TargetInsights) -> str:
    now = item.current
    return f"{now.deploys} in {now.days} days ({now.deploys_per_week:.1f}/week)"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def _table_row(item: TargetInsights) -> tuple[str, ...]:
    now, before = item.current, item.previous
    return (
        item.label,
        str(now.deploys),
        f"{now.deploys_per_week:.1f}",
        trend(now.deploys, before.deploys),
        _rate(now.change_failure_rate),
        trend(now.change_failure_rate, before.change_failure_rate),
        human_duration(now.time_to_restore),
        f"{human_duration(percentile(now.approval_waits, 50))}/{human_duration(percentile(now.approval_waits, 90))}",
        f"{human_duration(percentile(now.run_durations, 50))}/{human_duration(percentile(now.run_durations, 90))}",
        sparkline(now.daily_deploys),
    )


def _window_text(report: InsightsReport) -> str:
    zone = ZoneInfo(report.window.zone)
    start = report.window.start.astimezone(zone).strftime("%a %d %b")
    end = report.window.end.astimezone(zone).strftime("%a %d %b %H:%M")
    before = report.previous.start.astimezone(zone).strftime("%d %b")
    return f"{start} – {end} ({escape(report.window.zone)}), compared with the {report.previous.days} days from {before}"


def _all_targets(report: InsightsReport) -> list[TargetInsights]:
    return [report.overall, *(item for item in report.targets if item is not report.overall)]


def _window_dict(window: Any) -> dict[str, Any]:
    return {"start": window.start.isoformat(), "end": window.end.isoformat(), "days": window.days, "timezone": window.zone}


def _target_dict(item: TargetInsights) -> dict[str, Any]:
    return {"service": item.service, "env": item.env, "current": _figures_dict(item.current), "previous": _figures_dict(item.previous)}


def _figures_dict(figures: Figures) -> dict[str, Any]:
    return {
        "deploys": figures.deploys,
        "deploys_per_day": round(figures.deploys_per_day, 4),
        "changes": figures.changes,
        "failed_changes": figures.failed_changes,
        "change_failure_rate": None if figures.change_failure_rate is None else round(figures.change_failure_rate, 4),
        "restores": len(figures.restore_seconds),
        "not_restored": figures.unrestored,
        "time_to_restore_p50_seconds": figures.time_to_restore,
        "lead_time_p50_seconds": figures.lead_time,
        "approval_wait_p50_seconds": percentile(figures.approval_waits, 50),
        "approval_wait_p90_seconds": percentile(figures.approval_waits, 90),
        "run_duration_p50_seconds": percentile(figures.run_durations, 50),
        "run_duration_p90_seconds": percentile(figures.run_durations, 90),
        "daily_deploys": list(figures.daily_deploys),
        "daily_failures": list(figures.daily_failures),
    }
