"""AWS as the requester: AssumeRole carries SourceIdentity and session tags, and the audit log records them.

moto (5.x) accepts ``SourceIdentity``, ``Tags`` and ``TransitiveTagKeys`` on AssumeRole but
neither enforces ``sts:SetSourceIdentity``/``sts:TagSession`` nor returns them (no
``SourceIdentity`` in the answer, no CloudTrail). So the moto server here sits behind a small
WSGI recorder: the test asserts on the AssumeRole request exactly as moto received it on the
wire, and on the audit rows opsbot wrote.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from bot.audit.events import Actor
from bot.catalog.catalog import Catalog
from bot.catalog.config import AwsAccess
from bot.catalog.identity import AwsIdentity, IdentityConfig, UserOverride
from bot.requests.invocation import Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store.migrate import upgrade
from tests.doubles import RecordingNotifier, RecordingReplier

REGION = "eu-west-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/opsbot-billing"
BOB = Actor("U0BOB", "bob")


class RecordingMoto:
    """moto's server app behind a recorder of each request's form body (STS speaks form-encoded)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, list[str]]] = []
        app = DomainDispatcherApplication(create_backend_app)

        def recording(environ: dict[str, Any], start_response: Any) -> Any:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            self.bodies.append(parse_qs(body.decode("utf-8", "replace")))
            environ["wsgi.input"] = io.BytesIO(body)
            return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, recording, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def assume_role_calls(self) -> list[dict[str, list[str]]]:
        return [body for body in self.bodies if body.get("Action") == ["AssumeRole"]]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingMoto]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true", "MOTO_ECS_SERVICE_RUNNING": "2",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = RecordingMoto()
    ecs = boto3.client("ecs", endpoint_url=server.url, region_name=REGION)
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(
        family="billing", containerDefinitions=[{"name": "billing", "image": "registry.example.com/billing:1.4.1", "memory": 512}]
    )
    ecs.create_service(cluster="prod", serviceName="billing", taskDefinition="billing:1", desiredCount=2)
    yield server
    server.stop()


@pytest.fixture
def core(moto: RecordingMoto, example_catalog: Catalog, sqlite_url: str, tmp_path: Path) -> Iterator[OpsbotCore]:
    config = example_catalog.config
    billing = config.services["billing"]
    production = billing.environments["production"]
    assert production.ecs is not None
    environments = {"production": production.model_copy(update={"ecs": production.ecs.model_copy(update={"role_arn": ROLE_ARN})})}
    services = {**config.services, "billing": billing.model_copy(update={"environments": environments})}
    identity = IdentityConfig(aws=AwsIdentity(source_identity="email"), overrides={"U0BOB": UserOverride(email="bob@example.com")})
    config = config.model_copy(update={"services": services, "aws": AwsAccess(endpoint_url=moto.url, max_attempts=2), "identity": identity})
    settings = Settings(OPSBOT_DATABASE_URL=sqlite_url, OPSBOT_INSTANCE_ID="aws-identity-test")
    built = build_core(
        settings,
        notifier=RecordingNotifier(),
        catalog=dataclasses.replace(example_catalog, config=config),
        timing=RunnerTiming(heartbeat_seconds=0.05),
    )
    upgrade(built.database)
    yield built
    built.close()


def test_assume_role_carries_source_identity_and_transitive_session_tags_and_the_audit_log_records_them(
    core: OpsbotCore, moto: RecordingMoto
) -> None:
    reply = RecordingReplier()
    core.front_door.handle_command(Invocation(BOB, "C0OPS", "status billing in production"), reply)
    assert core.wait_idle(timeout=60)

    calls = moto.assume_role_calls()
    assert calls, "opsbot assumed the target's role"
    run_call = calls[-1]
    assert run_call["RoleArn"] == [ROLE_ARN]
    assert run_call["SourceIdentity"] == ["bob@example.com"]
    tags = {run_call[f"Tags.member.{n}.Key"][0]: run_call[f"Tags.member.{n}.Value"][0] for n in (1, 2, 3)}
    assert tags["opsbot-user"] == "U0BOB" and tags["opsbot-runbook"] == "status"
    # `status` only reads, so it is answered at once and spends no request number (issue 14): the
    # session says so instead of naming a request.
    assert tags["opsbot-request"] == "planning"
    transitive = sorted(value[0] for key, value in run_call.items() if key.startswith("TransitiveTagKeys.member."))
    assert transitive == ["opsbot-request", "opsbot-runbook", "opsbot-user"]
