"""The world of the inbound-API tests: clients with real credentials, a config naming them, and calls as CI would make them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi, Message
from tests.integration.serve_support import CHANNEL, INCIDENT_CHANNEL, write_config
from tests.integration.slack_support import click_payload, form_payload

TOKENS = {name: f"opsbot-test-token-{name}-{uuid.uuid4().hex}" for name in ("ci-release", "ci-other", "alerts", "ci-slow")}
SIGNING_KEY = b"k" * 16 + uuid.uuid4().hex.encode()
SIGNED_CLIENT = "ci-signed"


def write_api_config(directory: Path, kube: FakeKubernetesServer) -> Path:
    """serve_support's opsbot.yaml, plus API clients; the staging and production rules name ci-release and ci-signed."""
    path = write_config(directory, kube)
    config: dict[str, Any] = json.loads(path.read_text())
    key_file = directory / "ci-signed.key"
    key_file.write_bytes(SIGNING_KEY)
    clients: dict[str, Any] = {name: {"token_sha256": hashlib.sha256(token.encode()).hexdigest()} for name, token in TOKENS.items()}
    clients["alerts"]["endpoints"] = ["alertmanager"]
    clients["ci-slow"].update(rate_per_minute=1, rate_burst=2)
    clients["ci-release"].update(rate_per_minute=6000, rate_burst=100)  # it polls GET while it waits
    clients[SIGNED_CLIENT] = {"hmac_key_file": str(key_file)}
    config["api"] = {"clients": clients, "max_body_bytes": 4096}
    for rule in config["policy"]["rules"]:
        if rule["name"] in ("staging", "production"):
            rule["allow"]["clients"] = ["ci-release", SIGNED_CLIENT, "ci-slow"]
    path.write_text(json.dumps(config, indent=2))
    return path


def bearer(name: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {TOKENS[name]}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def signed(body: bytes, *, timestamp: int | None = None, key: bytes = SIGNING_KEY) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(key, f"v1:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Opsbot-Client": SIGNED_CLIENT,
        "X-Opsbot-Timestamp": str(stamp),
        "X-Opsbot-Signature": f"v1={mac}",
        "Content-Type": "application/json",
    }


def ask(http: httpx.Client, client: str, payload: dict[str, Any], *, key: str | None = None) -> httpx.Response:
    """``POST /api/v1/requests`` as a bearer client, with a fresh Idempotency-Key unless one is given."""
    return http.post("/api/v1/requests", content=json.dumps(payload), headers=bearer(client, key or uuid.uuid4().hex))


def deploy(version: str, env: str = "production") -> dict[str, Any]:
    return {"runbook": "deploy", "args": {"service": "checkout", "version": version, "env": env}, "channel": CHANNEL}


def alert_notification(status: str, *, fingerprint: str, alertname: str = "HighErrorRate", env: str = "production") -> bytes:
    """An Alertmanager webhook body (version 4) with one alert for checkout."""
    labels = {"alertname": alertname, "service": "checkout", "env": env, "severity": "page"}
    alert = {
        "status": status, "labels": labels, "annotations": {"summary": "5xx above 5% for 10 minutes"},
        "startsAt": "2026-12-05T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-05T08:20:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint,
    }  # fmt: skip
    body = {
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0, "status": status, "receiver": "opsbot",
        "groupLabels": {"alertname": alertname}, "commonLabels": labels, "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093", "alerts": [alert],
    }  # fmt: skip
    return json.dumps(body).encode()


def incident_click(slack: FakeSlackApi, user_id: str, message: Message, action: str, *, click: int) -> bytes:
    """A press of an incident button, in the incident channel."""
    payload = click_payload(slack, user_id, INCIDENT_CHANNEL, message, action)
    payload["actions"][0]["action_ts"] = f"{1_700_100_000 + click}.000100"
    return form_payload(payload)


def poll(http: httpx.Client, client: str, api_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    """``GET /api/v1/requests/{id}`` until its state is one of ``states`` (a database state: nothing can wake us)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/api/v1/requests/{api_id}", headers=bearer(client))
        if answer.status_code == 429:  # as a well-behaved client does
            time.sleep(float(answer.headers["retry-after"]))
            continue
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"request {api_id} is {body['state']!r}, not {states}, after {timeout} s: {body}")
        time.sleep(0.05)
