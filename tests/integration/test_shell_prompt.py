"""At a terminal, a run's updates arrive while the person sits at the prompt: the prompt is redrawn after them."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

from tests.conftest import REPO


def test_prompt_is_redrawn_after_asynchronous_updates() -> None:
    controller, terminal = pty.openpty()  # stdin is a terminal, as when a person types
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "demo", "--tick-seconds", "0.05"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    os.close(terminal)
    try:
        os.write(controller, b"/ops deploy checkout 1.4.2 in staging\n")
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        output = b""
        deadline = time.monotonic() + 180
        while b"State: succeeded" not in output or not output.endswith(b"alice@#C0OPS> "):
            assert time.monotonic() < deadline, output.decode(errors="replace")[-2000:]
            chunk = process.stdout.read()
            if chunk:
                output += chunk
            else:
                time.sleep(0.05)
        os.write(controller, b"/quit\n")
        process.wait(timeout=60)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode()
    after_run = text.split("State: succeeded", 1)[1]
    assert after_run.endswith("\x1b[Kalice@#C0OPS> ") or after_run.endswith("\nalice@#C0OPS> ")
    # stdout is a pipe here, so the terminal's echo of the typed line is not in it: look at the updates only.
    assert "alice@#C0OPS> [#C0OPS updated]" not in text.replace("\r\x1b[K", "\n")
