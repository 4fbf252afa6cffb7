"""The fakes the benchmarks talk to, in their own niced process.

Run by benchmarks/load.py: a fake Slack Web API and a fake Kubernetes API server seeded with
the example services, so that the load generator's own process does nothing but send requests
(in one process, the fakes' threads starved the generator and it measured itself).
Prints one JSON line (URLs, token, kubeconfig) when ready; exits when stdin closes.

Run by benchmarks/ack.py with ``--slack-only``: only the fake Slack, answering one command per
stdin line: ``urls CHANNEL USER N`` prints N fresh response_urls, ``calls`` prints how many
requests the fake has received (so the benchmark can wait for opsbot's post-ack work to drain),
``last-reply`` prints the JSON body of the last response_url POST (so the replying bare Bolt app
sends exactly opsbot's ``help`` reply).

Imported by the benchmarks that run a whole pod (load, footprint, click latency):
``postgres_schema`` and ``opsbot_pod`` set up what they share, a fresh schema, the fakes, the
config pointing at them, the environment, the migrations, so each benchmark only says what it
does differently.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fakes.kubernetes import FakeKubernetesServer  # noqa: E402
from fakes.slack import FakeSlackApi  # noqa: E402

TOKEN = "xoxb-bench"
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave"}
SECRET = "bench-signing-secret"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
CATALOG_FILE = "catalog.yaml"
"""A benchmark's own catalog (example config plus its services), seeded in the fakes too; else opsbot.example.yaml."""


@contextlib.contextmanager
def postgres_schema(admin_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh schema for one run, dropped afterwards: (schema name, SQLAlchemy URL that uses it)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    base = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield schema, f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@dataclass
class Pod:
    """What a benchmark needs to start ``opsbot serve`` against the fakes: its environment, and the fakes' process."""

    env: dict[str, str]
    fakes: subprocess.Popen[str]
    workdir: Path

    def serve(self, port: int, *extra_args: str) -> subprocess.Popen[bytes]:
        """``opsbot serve`` on ``port`` in its own process group (``benchmarks.ack.stop`` reaches all of it), log to workdir."""
        with (self.workdir / "opsbot.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args],
                env=self.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )  # fmt: skip

    def timings(self) -> dict[str, list[list[Any]]]:
        """What the fakes stamped: real PATCHes ``[at, path, body]`` and ``chat.update`` calls ``[at, ts]`` (wall clock)."""
        assert self.fakes.stdin is not None and self.fakes.stdout is not None
        self.fakes.stdin.write("timings\n")
        self.fakes.stdin.flush()
        answer: dict[str, list[list[Any]]] = json.loads(self.fakes.stdout.readline())
        return answer

    def trace(self) -> list[list[Any]]:
        """Every request both fakes received, ``[at, what]``, oldest first."""
        assert self.fakes.stdin is not None and self.fakes.stdout is not None
        self.fakes.stdin.write("trace\n")
        self.fakes.stdin.flush()
        answer: list[list[Any]] = json.loads(self.fakes.stdout.readline())
        return answer

    def fakes_counts(self) -> str:
        """Close the fakes' stdin (they stop) and return their last line: how many requests they answered."""
        assert self.fakes.stdin is not None and self.fakes.stdout is not None
        self.fakes.stdin.close()
        counts = self.fakes.stdout.readline().strip()
        self.fakes.wait(timeout=30)
        return counts


@contextlib.contextmanager
def opsbot_pod(
    workdir: Path, database_url: str, *, catalog: dict[str, Any] | None = None, settings: dict[str, str] | None = None
) -> Iterator[Pod]:
    """The fakes in their own niced process, the example config pointed at them, a migrated database.

    The environment holds nothing of the caller's own OPSBOT_/SLACK_/PROMETHEUS_ variables: only
    the settings a benchmark passes, so "default settings" means the defaults. ``catalog``
    replaces the example config (its Kubernetes targets are seeded in the fake cluster).
    """
    if catalog is not None:
        (workdir / CATALOG_FILE).write_text(yaml.safe_dump(catalog))
    command = [sys.executable, str(REPO / "benchmarks" / "fake_services.py"), str(workdir)]
    fakes = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert fakes.stdout is not None
        endpoints = json.loads(fakes.stdout.readline())
        config = catalog or yaml.safe_load((REPO / "opsbot.example.yaml").read_text())
        config["kubernetes"]["kubeconfig"] = endpoints["kubeconfig"]
        (workdir / "opsbot.yaml").write_text(yaml.safe_dump(config))
        env = {
            **{key: value for key, value in os.environ.items() if not key.upper().startswith(("OPSBOT_", "SLACK_", "PROMETHEUS_"))},
            "SLACK_BOT_TOKEN": endpoints["token"], "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": endpoints["slack_api_url"],
            "OPSBOT_CONFIG": str(workdir / "opsbot.yaml"), "OPSBOT_RUNBOOKS_DIR": str(REPO / "runbooks"),
            "OPSBOT_DATABASE_URL": database_url, "OPSBOT_SCHEDULER": "0", "OPSBOT_LOG_LEVEL": "WARNING",
            # The benchmarks' few users stand for a whole workspace: the per-person rate limit would refuse most commands.
            "OPSBOT_RATE_BURST": "1000000", "OPSBOT_RATE_PER_MINUTE": "1000000",
            **(settings or {}),
        }  # fmt: skip
        subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=REPO)
        yield Pod(env, fakes, workdir)
    finally:
        if fakes.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert fakes.stdin is not None
                fakes.stdin.close()
            fakes.wait(timeout=30)


def main() -> None:
    # The fakes stand in for Slack and Kubernetes, which run on other machines: on this shared
    # 2-core box their hundreds of handler threads must not starve opsbot's ack workers.
    os.nice(10)
    if sys.argv[1] == "--slack-only":
        serve_slack_only()
        return
    workdir = Path(sys.argv[1])
    catalog = workdir / CATALOG_FILE if (workdir / CATALOG_FILE).exists() else REPO / "opsbot.example.yaml"
    config = yaml.safe_load(catalog.read_text())
    kube = FakeKubernetesServer(tick_seconds=0.1, seconds_per_tick=10.0).start()
    contexts = set()
    for service in config["services"].values():
        for env in service["environments"].values():
            target = env.get("kubernetes")
            if target:
                contexts.add(target["context"])
                kube.add_deployment(
                    cluster=target["context"],
                    namespace=target["namespace"],
                    name=target["deployment"],
                    image=f"registry.example.com/{target['namespace']}/{target['deployment']}:1.0.0",
                    replicas=2,
                    container=target.get("container"),
                    progress_deadline_seconds=60,
                )
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig", contexts=sorted(contexts))
    with FakeSlackApi(token=TOKEN, users=USERS, channels={"C0OPS": "ops", "C0INCIDENT": "incidents"}) as slack:
        print(json.dumps({"slack_api_url": slack.api_url, "token": TOKEN, "kubeconfig": str(kubeconfig)}), flush=True)
        for line in sys.stdin:  # until the parent closes our stdin
            if line.strip() == "timings":
                print(json.dumps(_timings(kube, slack)), flush=True)
            elif line.strip() == "trace":
                print(json.dumps(_trace(kube, slack)), flush=True)
        counts = {"slack_calls": len(slack.calls), "kubernetes_requests": len(kube.requests)}
        print(json.dumps(counts), flush=True)
    kube.stop()


def _timings(kube: FakeKubernetesServer, slack: FakeSlackApi) -> dict[str, list[tuple[Any, ...]]]:
    """Wall-clock arrivals of the real (not dry-run) PATCHes (with their bodies) and of every ``chat.update``, for click_latency.py."""
    patches = [
        (request.received_at, request.path, json.dumps(request.body))
        for request in kube.requests
        if request.method == "PATCH" and "dryRun" not in request.query
    ]
    updates = [(call.received_at, str(call.params.get("ts", ""))) for call in slack.calls if call.method == "chat.update"]
    return {"patches": patches, "updates": updates}


def _trace(kube: FakeKubernetesServer, slack: FakeSlackApi) -> list[tuple[float, str]]:
    """Every request both fakes received, ``[at, what]`` in arrival order (click_latency.py --trace)."""
    seen = [(request.received_at, f"kubernetes {request.method} {request.path} {request.query}") for request in kube.requests]
    seen += [(call.received_at, f"slack {call.method}") for call in slack.calls]
    return sorted(seen)


def serve_slack_only() -> None:
    """The fake Slack for benchmarks/ack.py, driven by line commands on stdin (see the module docstring)."""
    with FakeSlackApi(token=TOKEN, users=USERS, channels={"C0OPS": "ops"}) as slack:
        print(json.dumps({"slack_api_url": slack.api_url, "token": TOKEN}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["urls"]:
                channel, user, count = words[1], words[2], int(words[3])
                print("\n".join(slack.response_url(channel, user) for _ in range(count)), flush=True)
            elif words == ["calls"]:
                print(len(slack.calls), flush=True)
            elif words == ["last-reply"]:
                replies = slack.calls_to("response_url")
                print(json.dumps(replies[-1].params if replies else None), flush=True)


if __name__ == "__main__":
    main()
