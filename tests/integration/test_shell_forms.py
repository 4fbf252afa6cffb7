"""`opsbot demo` asks for what a command left out, as the Slack modal does: fields in order, choices numbered, errors re-asked."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

from tests.conftest import REPO


def run_demo(script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "demo", "--tick-seconds", "0.05"],
        input=script, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_deploy_missing_its_version_is_asked_for_it_and_becomes_the_typed_request() -> None:
    transcript = run_demo("/ops deploy checkout\nnot a version!\n1.4.2\n/ops show 1\n")

    assert "Missing version" not in transcript
    assert "Version (the image tag to roll out, like 1.4.2):\n  1) 1.4.1\n" in transcript, "suggested from the Deployment's history"
    assert "version 'not a version!' is not valid" in transcript, "a wrong answer is said, then asked again"
    assert "#1 deploy checkout 1.4.2 in staging" in transcript
    assert "State: succeeded" in transcript


def test_ops_alone_numbers_the_runbooks_then_their_fields() -> None:
    transcript = run_demo("/ops\n5\n1\n500\n4\n")

    assert "Which runbook?\n  1) deploy" in transcript and "  5) scale" in transcript
    assert "Service:\n  1) checkout" in transcript
    assert "replicas 500 is out of range; allowed 0–100." in transcript
    assert "#1 scale checkout 4 in staging" in transcript


def test_ctrl_d_in_a_form_requests_nothing() -> None:
    transcript = run_demo("/ops deploy checkout\n")

    assert "Form cancelled; nothing was requested." in transcript
    assert "#1 " not in transcript


def test_at_a_terminal_the_form_prompts_wait_for_answers() -> None:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "demo", "--tick-seconds", "0.05"],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    os.close(terminal)
    try:
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        output = b""

        def read_until(wanted: bytes) -> None:
            nonlocal output
            deadline = time.monotonic() + 180
            while wanted not in output:
                assert time.monotonic() < deadline, output.decode(errors="replace")[-2000:]
                chunk = process.stdout.read() if process.stdout is not None else b""
                if chunk:
                    output += chunk
                else:
                    time.sleep(0.05)

        os.write(controller, b"/ops deploy checkout\n")
        read_until(b"version> ")
        os.write(controller, b"1.4.2\n")
        read_until(b"State: succeeded")
        os.write(controller, b"/quit\n")
        process.wait(timeout=60)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert b"#1 deploy checkout 1.4.2 in staging" in output
