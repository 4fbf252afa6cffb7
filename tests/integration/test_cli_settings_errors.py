"""A setting that does not validate ends any ``opsbot`` command with its name and the rule, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def opsbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "OPSBOT_CONFIG": "opsbot.example.yaml", **env}, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [("OPSBOT_EXECUTORS", "-1", "greater than or equal to 0"), ("OPSBOT_PORT", "eighty", "valid integer")],
)
def test_a_bad_setting_is_named_with_its_value_and_rule(variable: str, value: str, rule: str) -> None:
    done = opsbot("validate", env={variable: value})
    assert done.returncode == 2
    assert f"error: setting {variable}={value!r}: " in done.stderr and rule in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
