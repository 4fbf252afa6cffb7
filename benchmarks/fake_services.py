"""The fakes the benchmarks talk to, in their own niced process.

Run by benchmarks/load.py: a fake Slack Web API and a fake Kubernetes API server seeded with
the example services, so that the load generator's own process does nothing but send requests
(in one process, the fakes' threads starved the generator and it measured itself).
Prints one JSON line (URLs, token, kubeconfig) when ready; exits when stdin closes.

Run by benchmarks/ack.py with ``--slack-only``: only the fake Slack, answering one command per
stdin line: ``urls CHANNEL USER N`` prints N fresh response_urls, ``calls`` prints how many
requests the fake has received (so the benchmark can wait for opsbot's post-ack work to drain).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fakes.kubernetes import FakeKubernetesServer  # noqa: E402
from fakes.slack import FakeSlackApi  # noqa: E402

TOKEN = "xoxb-bench"
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave"}


def main() -> None:
    # The fakes stand in for Slack and Kubernetes, which run on other machines: on this shared
    # 2-core box their hundreds of handler threads must not starve opsbot's ack workers.
    os.nice(10)
    if sys.argv[1] == "--slack-only":
        serve_slack_only()
        return
    workdir = Path(sys.argv[1])
    config = yaml.safe_load((REPO / "opsbot.example.yaml").read_text())
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
        sys.stdin.read()  # until the parent closes our stdin
        counts = {"slack_calls": len(slack.calls), "kubernetes_requests": len(kube.requests)}
        print(json.dumps(counts), flush=True)
    kube.stop()


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


if __name__ == "__main__":
    main()
