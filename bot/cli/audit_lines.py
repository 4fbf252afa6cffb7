"""``opsbot audit tail`` lines: columns with a header, the runbook, a reason, and outcomes in words.

The audit log keeps machine words (``TemporaryActionError``) for exports and hashes; the
terminal shows what a person on call reads: "temporary error", and why.
"""

from __future__ import annotations

import json
import re
from typing import Any

TAIL_HEADER = (
    f"{'SEQ':>8} {'TIME (UTC)':<19} {'EVENT':<20} {'REQUEST':<7} {'RUNBOOK':<10} {'TARGET':<24} {'WHO':<12} {'OUTCOME':<18} REASON"
)

OUTCOME_WORDS = {
    "TemporaryActionError": "temporary error",
    "ActionFailed": "failed",
    "StepTimeout": "timed out",
    "ActionCancelled": "cancelled",
    "no_approval_needed": "no approval needed",
}


def tail_line(row: Any) -> str:
    """One event as a row under ``TAIL_HEADER``."""
    target = f"{row.service}/{row.env}" if row.service else "-"
    request = f"#{row.request_id}" if row.request_id is not None else "-"
    who = row.actor_name or row.actor_id or "-"
    return (
        f"{row.seq:>8} {row.at.strftime('%Y-%m-%d %H:%M:%S')} {row.event:<20} {request:<7} {row.runbook or '-':<10} {target:<24} "
        f"{who:<12} {readable_outcome(row.outcome):<18} {_reason(row.details)}"
    ).rstrip()


def readable_outcome(outcome: str) -> str:
    """``TemporaryActionError`` → ``temporary error``; other outcomes with their underscores as spaces."""
    if outcome in OUTCOME_WORDS:
        return OUTCOME_WORDS[outcome]
    if re.fullmatch(r"(?:[A-Z][a-z]+)+", outcome):
        words = re.findall(r"[A-Z][a-z]+", outcome)
        return " ".join(word.lower() for word in words if word not in ("Error", "Exception")) or outcome
    return outcome.replace("_", " ")


def _reason(details: str) -> str:
    try:
        loaded = json.loads(details or "{}")
    except ValueError:
        return ""
    if not isinstance(loaded, dict):
        return ""
    for key in ("reason", "error", "summary", "message"):
        value = loaded.get(key)
        if value:
            text = " ".join(str(value).split())
            return text if len(text) <= 80 else text[:77] + "…"
    return ""
