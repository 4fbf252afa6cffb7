"""Start-up: how long `opsbot --help`, `opsbot validate` and `opsbot serve` (to /readyz 200) take, as whole processes.

Run: .venv/bin/python benchmarks/startup.py [--runs 10] [--repo PATH]

Each command runs ``--runs`` times after one warm-up run, timed from ``Popen`` to exit (or, for
serve, to the first 200 from /readyz), and reported as min / median / max. The example config
and runbooks; serve on a migrated SQLite file with the fake Slack Web API in this process, its
default process settings (one process). Bytecode caching is on (``PYTHONDONTWRITEBYTECODE``
removed), as in an installed package whose ``.pyc`` files pip wrote: the first, warm-up run
writes them. The load average is printed beside the figures: on a shared machine, wall time
counts waiting for a core, so the CPU time (user + system) of help and validate is measured
too. The last line is ``RESULT {json}``. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ack import free_port, stop  # noqa: E402
from benchmarks.fake_services import SECRET, TOKEN, USERS  # noqa: E402
from fakes.slack import FakeSlackApi  # noqa: E402

OPSBOT = [sys.executable, "-m", "bot.cli.main"]
TARGETS = {"help_seconds": 0.25, "validate_seconds": 0.4, "serve_ready_seconds": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repo", type=Path, default=REPO, help="the opsbot checkout to time (another branch, for a before/after)")
    args = parser.parse_args()
    checkout = args.repo.resolve()
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith(("OPSBOT_", "SLACK_", "PROMETHEUS_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(OPSBOT_CONFIG=str(checkout / "opsbot.example.yaml"), OPSBOT_RUNBOOKS_DIR=str(checkout / "runbooks"))
    figures: dict[str, dict[str, float]] = {}
    figures["help_seconds"] = timed(args.runs, lambda: run_to_exit([*OPSBOT, "--help"], env, checkout))
    figures["help_cpu_seconds"] = timed(args.runs, lambda: cpu_to_exit([*OPSBOT, "--help"], env, checkout))
    figures["validate_seconds"] = timed(args.runs, lambda: run_to_exit([*OPSBOT, "validate"], env, checkout))
    figures["validate_cpu_seconds"] = timed(args.runs, lambda: cpu_to_exit([*OPSBOT, "validate"], env, checkout))
    with tempfile.TemporaryDirectory(prefix="opsbot-startup-") as directory, FakeSlackApi(token=TOKEN, users=USERS) as slack:
        serve_env = {
            **env, "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
            "OPSBOT_DATABASE_URL": f"sqlite:///{directory}/opsbot.db", "OPSBOT_SCHEDULER": "0", "OPSBOT_LOG_LEVEL": "WARNING",
        }  # fmt: skip
        subprocess.run([*OPSBOT, "db", "upgrade"], env=serve_env, cwd=checkout, check=True, capture_output=True)
        figures["serve_ready_seconds"] = timed(args.runs, lambda: serve_until_ready(serve_env, checkout))
    load = round(os.getloadavg()[0], 1)
    print(f"startup: {checkout}, {args.runs} runs each after a warm-up, load average {load} ({os.cpu_count()} cores)")
    for name, figure in figures.items():
        print(
            f"  {name.removesuffix('_seconds'):<14} min {figure['min']:.3f} s  median {figure['median']:.3f} s  "
            f"max {figure['max']:.3f} s   " + (f"target <= {TARGETS[name]} s" if name in TARGETS else "(user + system CPU: survives load)")
        )
    print("RESULT " + json.dumps({"runs": args.runs, "load_average": load, **figures}))


def timed(runs: int, once: Callable[[], float]) -> dict[str, float]:
    once()  # warm-up: writes the bytecode cache, fills the page cache
    samples = sorted(once() for _ in range(runs))
    return {"min": round(samples[0], 3), "median": round(statistics.median(samples), 3), "max": round(samples[-1], 3)}


def run_to_exit(command: list[str], env: dict[str, str], checkout: Path) -> float:
    """Wall seconds of one run; ``-m bot.cli.main`` in ``checkout``, whose ``bot`` package comes first on the path."""
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=checkout, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def cpu_to_exit(command: list[str], env: dict[str, str], checkout: Path) -> float:
    """User + system CPU seconds of one run: what a quiet machine's wall time cannot be below, and barely moved by load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_to_exit(command, env, checkout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def serve_until_ready(env: dict[str, str], checkout: Path) -> float:
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [*OPSBOT, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        while time.perf_counter() - started < 120:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return time.perf_counter() - started
            if server.poll() is not None:
                raise RuntimeError(f"opsbot serve exited with {server.returncode} before it was ready")
            time.sleep(0.01)
        raise RuntimeError("opsbot serve was not ready within 120 s")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
