"""CPU per acked request, opsbot's ack path vs bare Bolt: counted in-process, so a loaded machine does not move it.

Run: .venv/bin/python benchmarks/ack_cpu.py [--requests 4000] [--repeats 3] [--apps bare,ack-only] [--profile APP]

``benchmarks/ack.py`` measures req/s over real HTTP, which on a shared two-core machine moves
with everyone else's load. This script drives the same two ASGI apps as its ``bare`` and
``ack-only`` servers (``benchmarks.bare_bolt:create_app``; ``bot.serve.asgi:create_app`` with
the handoff pointed at a sink process that drops the jobs) with raw ASGI calls on a uvloop
event loop: the same unique, signed ``/ops help`` bodies, one after the other, each app in a
fresh interpreter. It reports the CPU time (``time.process_time``) per request, the minimum of
``--repeats`` runs (noise only ever adds CPU time), and their ratio, which bounds the req/s
ratio ``benchmarks/ack.py`` can reach when the servers are CPU-bound: the HTTP server (uvicorn,
httptools) in front costs both the same. ``--profile APP`` prints the top of a cProfile of
that app's requests instead (where the difference goes). Not a test.

``--instructions``: each app under ``valgrind --tool=callgrind`` twice, with ``--requests`` and
with none; the difference over the count is instructions per request, repeatable to a fraction
of a percent on a loaded machine (slow: about a minute per app per 1,000 requests).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APPS = {"bare": "benchmarks.bare_bolt:create_app", "ack-only": "bot.serve.asgi:create_app"}
WARMUP = 300
SINK = """
import socket, sys, threading
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen()
print("ready", flush=True)
def drain(connection):
    with connection:
        while connection.recv(1 << 16):
            pass
while True:
    connection, _ = server.accept()
    threading.Thread(target=drain, args=(connection,), daemon=True).start()
"""
"""Stands in for the executor processes (as ``benchmarks.ack.JobSink`` does), in its own process: its CPU is not counted."""

Message = MutableMapping[str, Any]
Asgi = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--apps", default="bare,ack-only")
    parser.add_argument("--text", default="help", help="the /ops text every request carries")
    parser.add_argument("--profile", default=None, help="print a cProfile of this app's requests instead")
    parser.add_argument("--instructions", action="store_true", help="callgrind instructions per request (slow)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child: measure one app
    parser.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio_run(measure_one(args.one, args.requests, args.text, args.warmup, profile=args.profile is not None))))
        return
    if args.profile:
        _child(args.profile, args.requests, args.text, profile=True, show=True)
        return
    names = args.apps.split(",")
    results: dict[str, float] = {}
    print(f"ack CPU: {args.requests} signed `/ops {args.text}` requests per run, load average {os.getloadavg()[0]:.1f}")
    for name in names:
        if args.instructions:
            results[name] = _instructions(name, args.requests, args.text)
            print(f"{name:<10} {results[name]:>12,.0f} instructions per request")
        else:
            runs = [_child(name, args.requests, args.text)["cpu_us"] for _ in range(args.repeats)]
            results[name] = min(runs)
            print(f"{name:<10} {min(runs):>8.1f} µs CPU per request (runs: {', '.join(f'{run:.1f}' for run in runs)})")
    if "bare" in results:
        for name in names:
            if name != "bare":
                print(f"bare / {name}: {results['bare'] / results[name]:.2f} (the req/s ratio a CPU-bound server can reach)")
    unit = "instructions" if args.instructions else "cpu_us"
    print("RESULT " + json.dumps({unit: results, "load_average_end": round(os.getloadavg()[0], 1)}))


def _child(name: str, requests: int, text: str, *, profile: bool = False, show: bool = False, warmup: int = WARMUP) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", name, "--requests", str(requests), "--text", text, "--warmup", str(warmup)]
    if profile:
        command += ["--profile", name]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if completed.returncode != 0:
        sys.exit(f"{name} failed:\n{completed.stderr[-4000:]}")
    if show:
        print(completed.stderr)
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _instructions(name: str, requests: int, text: str) -> float:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    counts = []
    for count in (requests, 0):
        with tempfile.TemporaryDirectory() as directory:
            out = Path(directory) / "callgrind.out"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__]
            command += ["--one", name, "--requests", str(count), "--text", text, "--warmup", str(WARMUP)]
            subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
            summary = re.search(r"^(?:summary|totals):\s+(\d+)", out.read_text(errors="replace"), re.M)
            assert summary is not None, "no callgrind summary"
            counts.append(int(summary.group(1)))
    return (counts[0] - counts[1]) / requests


def asyncio_run(coroutine: Awaitable[dict[str, float]]) -> dict[str, float]:
    import uvloop

    return uvloop.run(coroutine)  # type: ignore[arg-type]


async def measure_one(name: str, requests: int, text: str, warmup: int, *, profile: bool) -> dict[str, float]:
    """In this (fresh) interpreter: build ``name``'s app as uvicorn would, run its lifespan, time ``requests`` acks."""
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        sink = _start_sink(workdir)
        try:
            _environment(workdir, sink_path=str(workdir / "sink.sock"))
            module_name, factory = APPS[name].split(":")
            module = __import__(module_name, fromlist=[factory])
            app: Asgi = getattr(module, factory)()
            bodies = [_signed(text) for _ in range(warmup + requests)]
            async with Lifespan(app):
                for request in bodies[:warmup]:
                    await _post(app, *request)
                profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall: a loaded machine adds no time
                if profiler is not None:
                    profiler.enable()
                started = time.process_time()
                for request in bodies[warmup:]:
                    await _post(app, *request)
                spent = time.process_time() - started
                if profiler is not None:
                    profiler.disable()
                    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(45)
                    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(60)
        finally:
            sink.kill()
            sink.wait()
    return {"cpu_us": spent / max(1, requests) * 1e6}


def _environment(workdir: Path, *, sink_path: str) -> None:
    """As ``benchmarks/ack.py`` runs ack-only: example catalog, executor socket, quiet logs, multi-process metrics."""
    (workdir / "prometheus").mkdir()
    os.environ.update(
        {
            "SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "OPSBOT_CONFIG": str(REPO / "opsbot.example.yaml"), "OPSBOT_RUNBOOKS_DIR": str(REPO / "runbooks"),
            "OPSBOT_DATABASE_URL": f"sqlite:///{workdir / 'opsbot.db'}", "OPSBOT_SCHEDULER": "0", "OPSBOT_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"), "OPSBOT_EXECUTOR_SOCKET": sink_path,
            "OPSBOT_RATE_BURST": "1000000", "OPSBOT_RATE_PER_MINUTE": "1000000",
        }
    )  # fmt: skip


def _start_sink(workdir: Path) -> subprocess.Popen[str]:
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(workdir / "sink.sock")], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    sink.stdout.readline()
    return sink


def _signed(text: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    from tests.integration.slack_support import signed_headers

    body = urlencode(
        {
            "token": "x", "team_id": "T0FAKE", "team_domain": "fake", "channel_id": "C0OPS", "channel_name": "ops",
            "user_id": "U0ALICE", "user_name": "alice", "command": "/ops", "text": text, "api_app_id": "A0FAKE",
            "response_url": f"https://hooks.slack.com/commands/T0FAKE/{uuid.uuid4().hex}", "trigger_id": uuid.uuid4().hex,
        }
    ).encode()  # fmt: skip
    headers = {**signed_headers(SECRET, body), "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}
    return body, [(key.lower().encode(), value.encode()) for key, value in headers.items()]


async def _post(app: Asgi, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """One request as uvicorn hands it over; fails loudly if the app did not answer 200."""
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/slack/events", "raw_path": b"/slack/events", "root_path": "", "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 3000), "state": {},
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    await asyncio.sleep(0)  # one loop iteration, as between uvicorn's requests: callbacks the app scheduled (the handoff's flush) run
    status = sent[0].get("status")
    if status != 200:
        raise RuntimeError(f"answered {status}: {sent[1:]}")


class Lifespan:
    """The ASGI lifespan as uvicorn drives it: startup before the first request, shutdown after the last."""

    def __init__(self, app: Asgi) -> None:
        self._app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.ensure_future(self._app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._from_app.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {answer}")

    async def __aexit__(self, *_exc: object) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        assert self._task is not None
        await self._task


if __name__ == "__main__":
    main()
