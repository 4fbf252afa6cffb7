"""docs/walkthrough.md shows `opsbot demo < docs/walkthrough.txt` as it really prints, and stays true.

Clock times, dates, durations, the audit event count and the fake cluster's progress lines
(``> 1/3 pods updated``, whose number depends on timing) are normalized on both sides;
everything else must match line for line, and nothing may reach stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO

DOC = REPO / "docs" / "walkthrough.md"
SCRIPT = REPO / "docs" / "walkthrough.txt"


def normalized(transcript: str) -> list[str]:
    lines: list[str] = []
    for raw in transcript.splitlines():
        if raw.startswith("    > "):
            continue
        line = _steady(raw)
        if lines and _update_header(lines[-1]) and (_update_header(line) or "@#" in line):
            lines.pop()  # an update whose only changed line was a progress line
        lines.append(line)
    return lines


def _steady(line: str) -> str:
    """The line without what depends on the clock."""
    for pattern, replacement in (
        (r"\d{4}-\d\d-\d\d", "DATE"),
        (r"\b\d\d:\d\d(:\d\d)?\b", "TIME"),
        (r"took \d+\.\d+s", "took Ns"),
        (r"Audit log: \d+ events", "Audit log: N events"),
    ):
        line = re.sub(pattern, replacement, line)
    return line


def _update_header(line: str) -> bool:
    return line.startswith("[#") and " updated] " in line


def documented() -> tuple[str, str]:
    text = DOC.read_text()
    blocks = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, "the walkthrough has a script block and a transcript block"
    return blocks[0], blocks[1]


def test_walkthrough_script_is_the_one_in_the_docs() -> None:
    script, _ = documented()
    assert script == SCRIPT.read_text()


def test_walkthrough_transcript_is_what_the_demo_prints() -> None:
    _, transcript = documented()
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "demo", "--tick-seconds", "0.05"],
        input=SCRIPT.read_text(),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "log lines must not reach the person's terminal"
    assert normalized(result.stdout) == normalized(transcript)
