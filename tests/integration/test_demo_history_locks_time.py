"""Through `opsbot demo`: history names who did the last thing, `show` reads as events, locks have
a maximum and handle any duration, free text stays plain, and every time is in the config's zone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG, REPO, RUNBOOKS

REASON = "*bold* `code` ~strike~ _it_ https://evil.example/x \u202egnp.exe"
SCRIPT = f"""\
/ops deploy checkout 1.4.2 to production
/as bob
/click 2
/ops history checkout
/ops deploy payments 2.0.0 in staging
/ops show 2
/ops lock search in production for 99999999999999999d
/ops lock search in production for 30d
/ops lock search in production for 2d --reason "{REASON}"
/as alice
/ops lock search in production for 1h
"""


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("berlin")
    config = directory / "opsbot.yaml"
    config.write_text("timezone: Europe/Berlin\n" + EXAMPLE_CONFIG.read_text())
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "demo", "--config", str(config), "--runbooks", str(RUNBOOKS), "--tick-seconds", "0.05"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def after(transcript: str, command: str) -> str:
    return transcript.split(f"> {command}\n", 1)[1].split("@#C0OPS> ", 1)[0]


def test_history_names_who_rejected(transcript: str) -> None:
    history = after(transcript, "/ops history checkout")
    assert "🚫 #1 deploy checkout 1.4.2 in production — rejected; asked by @alice, rejected by @bob, " in history
    assert re.search(r"rejected by @bob, \d{4}-\d\d-\d\d \d\d:\d\d CET", history)


def test_show_prints_step_names_and_readable_events(transcript: str) -> None:
    shown = after(transcript, "/ops show 2")
    assert "@bob asked for it" in shown
    assert "approved: no approval needed" in shown
    assert "step “Set the new image” started" in shown
    assert "step “Wait for the rollout” done: rolled out" in shown
    assert "step_started" not in shown and "opsbot started" not in shown


def test_any_duration_the_grammar_accepts_is_handled(transcript: str) -> None:
    answer = after(transcript, "/ops lock search in production for 99999999999999999d")
    assert "is longer than any duration opsbot accepts (3650d)" in answer
    assert "error id" not in answer.lower()


def test_locks_have_a_maximum_duration(transcript: str) -> None:
    answer = after(transcript, "/ops lock search in production for 30d")
    assert "A lock lasts at most 7d (locks.max_duration in the config); you asked for 30d." in answer


def test_lock_reason_is_plain_text_and_times_name_the_zone(transcript: str) -> None:
    posted = after(transcript, f'/ops lock search in production for 2d --reason "{REASON}"')
    assert "🔒 search/production is locked by @bob for 2d (until " in posted
    assert re.search(r"until \w{3} \d{1,2} \w{3} \d\d:\d\d CET\)", posted), posted
    for marked_up in ("*bold*", "`code`", "~strike~", "_it_", "https://", "\u202e"):
        assert marked_up not in posted
    assert "bold" in posted and "evil.example/x" in posted


def test_refusal_shows_the_date_when_the_lock_ends_another_day(transcript: str) -> None:
    refusal = after(transcript, "/ops lock search in production for 1h")
    assert re.search(r"search/production is locked by @bob \(.*, until \w{3} \d{1,2} \w{3} \d\d:\d\d CET\)", refusal), refusal


def test_request_expiry_is_in_the_config_zone(transcript: str) -> None:
    assert re.search(r"Expires: in 30 min \(\d\d:\d\d CET\)", transcript)


def test_audit_tail_has_a_header_runbook_and_reason_columns(tmp_path: Path) -> None:
    from tests.integration.serve_support import run_cli

    env = {key: value for key, value in os.environ.items() if not key.startswith("OPSBOT_")}
    env["OPSBOT_DATABASE_URL"] = f"sqlite:///{tmp_path}/opsbot.db"
    assert run_cli(env, "db", "upgrade").returncode == 0
    result = run_cli(env, "audit", "tail")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header[:3] == ["SEQ", "TIME", "(UTC)"] and "RUNBOOK" in header and header[-1] == "REASON"
