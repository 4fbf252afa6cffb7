"""Ack benchmark: signed /ops slash commands over real HTTP, opsbot vs a bare Bolt app.

Run: .venv/bin/python benchmarks/ack.py [--seconds 10] [--workers 2] [--postgres URL] [--servers bare,bolt-reply,ack-only,opsbot,opsbot-1p]

Both servers run under uvicorn (uvloop, httptools) with the same number of worker processes
and ``process_before_response=True``; the load comes from ``wrk`` (Debian package ``wrk``) in
another process, replaying pre-signed, unique requests (unique, because opsbot drops replays).
Commands measured: ``help`` (the reply goes out after the ack, through response_url) and a
misspelt command (answered in the ack, audited in the database after it); then the form
payloads: a ``view_submission`` of the deploy form (checked and parsed in the ack, a request
after it), a ``block_suggestion`` for its version (options answered in the ack) and the
``run_runbook`` shortcut (the picker opened after the ack). Prints req/s, p50,
p99 and errors per concurrency for both servers and the opsbot/bare ratio. Not a test.

A third server, ``ack-only``, separates the ack path from the work after it: opsbot's own HTTP
workers (the same ``bot.serve.asgi:create_app``, signature check, parse, handoff), with a sink that
reads and drops the jobs in place of the executor processes. ``opsbot`` minus ``ack-only`` is
what the post-ack work (executors, the fake Slack they reply to) costs the acks by sharing
the machine's cores. The fake Slack runs in its own niced process: Slack's servers are not
on opsbot's machine.

A fourth server, ``bolt-reply``, is bare Bolt doing the same job as opsbot for ``help``: it acks
with the same text and then sends the same reply through response_url (a lazy listener, see
benchmarks/bare_bolt.py; the reply's JSON is taken from opsbot's own answer to one ``help`` at
the start of the run). ``opsbot`` is the multi-process model (``--workers`` HTTP workers and as
many executors); ``opsbot-1p`` is ``opsbot serve`` with default settings, one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fake_services import SECRET  # noqa: E402
from tests.integration.slack_support import signed_headers  # noqa: E402

USER, CHANNEL = "U0ALICE", "C0OPS"
LUA = """
local requests = {}
local index = 0
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
end
init = function(args)
  local path = args[1] .. "." .. id
  for line in io.lines(path) do
    local signature, stamp, body = line:match("^(%S+) (%S+) (.*)$")
    requests[#requests + 1] = wrk.format("POST", "/slack/events", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Slack-Signature"] = signature,
      ["X-Slack-Request-Timestamp"] = stamp,
    }, body)
  end
end
request = function()
  index = index % #requests + 1
  return requests[index]
end
"""


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RemoteSlack:
    """The fake Slack Web API in its own niced process (benchmarks/fake_services.py --slack-only).

    Slack's servers are not on opsbot's machine: in this process, the fake's threads took CPU
    from the servers under test and added their replies' cost to opsbot's ack latency.
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(REPO / "benchmarks" / "fake_services.py"), "--slack-only"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._commands, self._answers = self._process.stdin, self._process.stdout
        endpoints = json.loads(self._answers.readline())
        self.api_url: str = endpoints["slack_api_url"]
        self.token: str = endpoints["token"]

    def response_urls(self, channel: str, user: str, count: int) -> list[str]:
        self._commands.write(f"urls {channel} {user} {count}\n")
        self._commands.flush()
        return [self._answers.readline().strip() for _ in range(count)]

    def last_reply(self) -> dict[str, object] | None:
        self._commands.write("last-reply\n")
        self._commands.flush()
        answer: dict[str, object] | None = json.loads(self._answers.readline())
        return answer

    def call_count(self) -> int:
        self._commands.write("calls\n")
        self._commands.flush()
        return int(self._answers.readline())

    def close(self) -> None:
        self._commands.close()
        self._process.wait(timeout=30)


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:  # an HTTP error still means the server is up
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def write_requests(slack: RemoteSlack, directory: Path, text: str, count: int, threads: int) -> Path:
    """``count`` unique signed bodies, split into one file per wrk thread.

    ``text`` is the ``/ops`` text, or one of ``PAYLOADS`` (an interactivity payload: a form
    submitted, a version suggestion asked, a global shortcut), acked within the same bounds.
    """
    base = directory / f"requests-{uuid.uuid4().hex[:6]}"
    stamp = int(time.time())
    per_thread = count // threads + 1
    for thread in range(1, threads + 1):
        with open(f"{base}.{thread}", "w", encoding="utf-8") as handle:
            for response_url in slack.response_urls(CHANNEL, USER, per_thread):
                body = PAYLOADS[text](response_url) if text in PAYLOADS else command_body(text, response_url)
                headers = signed_headers(SECRET, body, timestamp=stamp)
                handle.write(f"{headers['X-Slack-Signature']} {headers['X-Slack-Request-Timestamp']} {body.decode()}\n")
    return base


def command_body(text: str, response_url: str) -> bytes:
    return urlencode(
        {
            "token": "x", "team_id": "T0FAKE", "team_domain": "fake", "channel_id": CHANNEL, "channel_name": "ops",
            "user_id": USER, "user_name": "alice", "command": "/ops", "text": text, "api_app_id": "A0FAKE",
            "response_url": response_url, "trigger_id": uuid.uuid4().hex,
        }
    ).encode()  # fmt: skip


def _interaction(payload: dict[str, object]) -> bytes:
    user = {"id": USER, "username": "alice", "name": "alice", "team_id": "T0FAKE"}
    common = {"team": {"id": "T0FAKE", "domain": "fake"}, "user": user, "api_app_id": "A0FAKE", "trigger_id": uuid.uuid4().hex}
    return urlencode({"payload": json.dumps({**common, **payload})}).encode()


def _deploy_view(version: str) -> dict[str, object]:
    values = {
        "service": {"opsbot_form:service": {"type": "static_select", "selected_option": {"value": "checkout"}}},
        "version~checkout": {"opsbot_form:version": {"type": "external_select", "selected_option": {"value": version}}},
        "env~checkout": {"opsbot_form:env": {"type": "static_select", "selected_option": {"value": "staging"}}},
        "channel": {"opsbot_form:channel": {"type": "conversations_select", "selected_conversation": CHANNEL}},
    }
    metadata = json.dumps({"runbook": "deploy", "channel": CHANNEL, "versions": [f"1.4.{n}" for n in range(30)]})
    return {
        "id": "V0BENCH",
        "hash": "1.a",
        "type": "modal",
        "callback_id": "opsbot_form",
        "private_metadata": metadata,
        "state": {"values": values},
    }


PAYLOADS: dict[str, Callable[[str], bytes]] = {
    "view_submission": lambda url: _interaction(
        {"type": "view_submission", "view": _deploy_view("1.4.2"), "response_urls": [{"channel_id": CHANNEL, "response_url": url}]}
    ),
    "block_suggestion": lambda _url: _interaction(
        {
            "type": "block_suggestion",
            "action_id": "opsbot_form:version",
            "block_id": "version~checkout",
            "value": "1.4",
            "view": _deploy_view(""),
        }
    ),
    "shortcut": lambda _url: _interaction({"type": "shortcut", "callback_id": "run_runbook"}),
}
"""Interactivity payloads measured like commands: the form checked and parsed in the ack, options answered in it, a picker handed over."""


def wait_drained(slack: RemoteSlack, database_url: str, quiet_seconds: float = 2.0, limit: float = 300.0) -> None:
    """Until neither Slack calls nor audit rows have grown for ``quiet_seconds``: post-ack work is done."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    last, stable_since, deadline = (-1, -1), time.monotonic(), time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                seq = int(connection.execute(text("SELECT seq FROM audit_head")).scalar_one())
            now = (slack.call_count(), seq)
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet_seconds:
                return
            time.sleep(0.5)
    finally:
        engine.dispose()


def run_wrk(url: str, requests_file: Path, concurrency: int, seconds: int, lua: Path) -> Figures:
    threads = min(2, concurrency)
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(lua), url, "--", str(requests_file)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        found = re.search(pattern, output)
        if found:
            errors += sum(int(group) for group in found.groups())
    return Figures(rps, _percentile(output, "50%"), _percentile(output, "99%"), errors)


def _percentile(output: str, label: str) -> float:
    value, unit = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def opsbot_environment(slack: RemoteSlack, database_url: str, metrics_dir: Path, **extra: str) -> dict[str, str]:
    """The environment both opsbot servers run with: example catalog, fake Slack, scheduler off, quiet logs."""
    metrics_dir.mkdir(exist_ok=True)
    return {
        **os.environ, "SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
        "OPSBOT_CONFIG": str(REPO / "opsbot.example.yaml"), "OPSBOT_RUNBOOKS_DIR": str(REPO / "runbooks"),
        "OPSBOT_DATABASE_URL": database_url, "OPSBOT_SCHEDULER": "0", "OPSBOT_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # One simulated user stands for a whole workspace here: the per-person rate limit would refuse most acks.
        "OPSBOT_RATE_BURST": "1000000", "OPSBOT_RATE_PER_MINUTE": "1000000", **extra,
    }  # fmt: skip


def launch(command: list[str], env: dict[str, str], log: Path, ready_url: str) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (so ``stop`` reaches its workers), stderr to ``log``; wait until it answers."""
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - the child keeps it; closed when the run ends
        start_new_session=True,
    )
    wait_ready(ready_url)
    return process


def start_opsbot(port: int, workers: int, database_url: str, slack: RemoteSlack, workdir: Path) -> subprocess.Popen[bytes]:
    """The multi-process model: ``workers`` HTTP workers and as many executors."""
    env = opsbot_environment(slack, database_url, workdir / "prometheus", OPSBOT_EXECUTORS=str(workers))
    subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=REPO)
    command = [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return launch(command, env, workdir / "opsbot.log", f"http://127.0.0.1:{port}/healthz")


def start_opsbot_one_process(port: int, database_url: str, slack: RemoteSlack, workdir: Path) -> subprocess.Popen[bytes]:
    """``opsbot serve`` with default process settings: HTTP and the core in one process."""
    env = {
        key: value
        for key, value in opsbot_environment(slack, database_url, workdir / "unused").items()
        if key != "PROMETHEUS_MULTIPROC_DIR"
    }
    subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=REPO)
    command = [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return launch(command, env, workdir / "opsbot-1p.log", f"http://127.0.0.1:{port}/healthz")


def opsbot_help_reply(slack: RemoteSlack, port: int, workdir: Path) -> Path:
    """Ask opsbot for ``help`` once and keep the reply it sent to response_url: bolt-reply sends the same."""
    base = write_requests(slack, workdir, "help", 1, 1)
    signature, stamp, body = Path(f"{base}.1").read_text().split("\n")[0].split(" ", 2)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events", data=body.encode(), method="POST",
        headers={"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": stamp, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=10).close()
    deadline = time.monotonic() + 60
    while (reply := slack.last_reply()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("opsbot sent no help reply within 60 s")
        time.sleep(0.1)
    path = workdir / "help-reply.json"
    path.write_text(json.dumps(reply))
    return path


def start_bolt_reply(port: int, workers: int, workdir: Path, reply: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SLACK_SIGNING_SECRET": SECRET, "BARE_REPLY_FILE": str(reply)}
    command = uvicorn_command("benchmarks.bare_bolt:create_replying_app", port, workers)
    return launch(command, env, workdir / "bolt-reply.log", f"http://127.0.0.1:{port}/slack/events")


def uvicorn_command(factory: str, port: int, workers: int) -> list[str]:
    """uvicorn as ``opsbot serve`` runs it (uvloop, httptools, no access log)."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning", "--no-server-header",
    ]  # fmt: skip


def start_bare(port: int, workers: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SLACK_SIGNING_SECRET": SECRET}
    command = uvicorn_command("benchmarks.bare_bolt:create_app", port, workers)
    return launch(command, env, workdir / "bare.log", f"http://127.0.0.1:{port}/slack/events")  # no /healthz: any answer will do


class JobSink:
    """Stands in for the executor processes: accepts the HTTP workers' job frames and drops them."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "sink.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            connection, _ = self._server.accept()
            threading.Thread(target=self._drain, args=(connection,), daemon=True).start()

    @staticmethod
    def _drain(connection: socket.socket) -> None:
        with connection:
            while connection.recv(1 << 16):
                pass


def start_ack_only(port: int, workers: int, database_url: str, slack: RemoteSlack, workdir: Path, sink: JobSink) -> subprocess.Popen[bytes]:
    """opsbot's HTTP workers exactly as ``opsbot serve`` runs them, handing jobs to ``sink``."""
    command = uvicorn_command("bot.serve.asgi:create_app", port, workers)
    env = opsbot_environment(slack, database_url, workdir / "prometheus-ack-only", OPSBOT_EXECUTOR_SOCKET=sink.path)
    # Its own schema when it runs without the opsbot servers (``--servers bare,ack-only``): wait_drained reads it.
    subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=REPO)
    return launch(command, env, workdir / "ack-only.log", f"http://127.0.0.1:{port}/healthz")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group (workers, executors), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers still draining after their supervisor left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--postgres", default=None, help="SQLAlchemy URL of an empty PostgreSQL schema (default: SQLite file)")
    parser.add_argument("--servers", default="bare,bolt-reply,ack-only,opsbot,opsbot-1p", help="which servers, in this order")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    levels = [int(level) for level in args.concurrency.split(",")]
    slack = RemoteSlack()
    with tempfile.TemporaryDirectory() as directory, contextlib.closing(slack):
        workdir = Path(directory)
        (workdir / "prometheus").mkdir()
        lua = workdir / "signed.lua"
        lua.write_text(LUA)
        database_url = args.postgres or f"sqlite:///{workdir / 'opsbot.db'}"
        ports = {name: free_port() for name in args.servers.split(",")}
        servers: list[subprocess.Popen[bytes]] = []
        try:
            if "opsbot" in ports or "bolt-reply" in ports:
                opsbot_port = ports.get("opsbot") or free_port()
                servers.append(start_opsbot(opsbot_port, args.workers, database_url, slack, workdir))
                reply = opsbot_help_reply(slack, opsbot_port, workdir)
            if "opsbot-1p" in ports:
                servers.append(start_opsbot_one_process(ports["opsbot-1p"], database_url, slack, workdir))
            if "bare" in ports:
                servers.append(start_bare(ports["bare"], args.workers, workdir))
            if "bolt-reply" in ports:
                servers.append(start_bolt_reply(ports["bolt-reply"], args.workers, workdir, reply))
            if "ack-only" in ports:
                servers.append(start_ack_only(ports["ack-only"], args.workers, database_url, slack, workdir, JobSink(workdir)))
            print(
                f"ack benchmark: {os.cpu_count()} cores, {args.workers} server workers each, {args.seconds}s per run, wrk, signed requests"
            )
            print(
                f"ack benchmark: load average {os.getloadavg()[0]:.1f} at the start"
                f"{' (opsbot-1p: one process, no executors)' if 'opsbot-1p' in ports else ''}"
            )
            print(f"{'command':<16} {'c':>3} {'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}   p50 / bare p50")
            summary: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
            rows = [("help", "help"), ("typo", "deploi checkout 1.4.2"), *((kind, kind) for kind in PAYLOADS)]
            for label, text in rows:
                for concurrency in levels:
                    results = {}
                    for name, port in ports.items():
                        count = int(8_000 * args.seconds * (1 if concurrency > 1 else 0.3))
                        requests_file = write_requests(slack, workdir, text, count, min(2, concurrency))
                        results[name] = run_wrk(f"http://127.0.0.1:{port}", requests_file, concurrency, args.seconds, lua)
                        wait_drained(slack, database_url)  # each run starts with opsbot's post-ack queue empty
                    summary.setdefault(label, {})[str(concurrency)] = {
                        name: {"rps": round(figures.rps), "p50_ms": figures.p50_ms, "p99_ms": figures.p99_ms, "errors": figures.errors}
                        for name, figures in results.items()
                    }
                    for name, figures in results.items():
                        ratio = f"{figures.p50_ms / results['bare'].p50_ms:.2f}" if name != "bare" and "bare" in results else ""
                        print(
                            f"{label:<16} {concurrency:>3} {name:<10} {figures.rps:>9,.0f} {figures.p50_ms:>8.2f} {figures.p99_ms:>8.2f} "
                            f"{figures.errors:>7}   {ratio}"
                        )
        finally:
            for server in servers:
                stop(server)
    print("RESULT " + json.dumps({**summary, "load_average_end": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
