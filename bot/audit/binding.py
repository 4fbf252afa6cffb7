"""Hashes that bind an approval to exactly what was shown: the parameters and the plan.

Approve buttons carry both; a run re-plans and compares, so a target that changed after the
approval is refused rather than changed in a way nobody approved.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bot.audit.chain import canonical_json


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(params).encode("utf-8")).hexdigest()


def plan_hash(plan: list[dict[str, Any]]) -> str:
    return hashlib.sha256(canonical_json(plan).encode("utf-8")).hexdigest()
