"""A deploy form's version field, end to end: the core reads the Deployment's history, Slack asks the options endpoint."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.catalog.catalog import Catalog
from bot.messages import Notifier
from bot.requests.groups import ExternalGroupResolver
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi
from fakes.slack.views import View
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS
from tests.integration.slack_support import (
    BOT_TOKEN,
    FAST_TIMING,
    RunningServer,
    command_form,
    form_payload,
    migrated,
    serve_opsbot,
    slack_settings,
)

ALICE = "U0ALICE"


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    with FakeKubernetesServer(tick_seconds=0.05) as server:
        server.add_deployment(
            cluster="demo-production", namespace="shop", name="checkout", image="shop/checkout:1.4.1", container="checkout"
        )
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=BOT_TOKEN, users={ALICE: "alice"}, channels={"C0OPS": "ops", "C0INCIDENT": "incident"}) as fake:
        yield fake


@pytest.fixture
def server(
    tmp_path: Path, kube: FakeKubernetesServer, slack: FakeSlackApi, example_catalog: Catalog, sqlite_url: str
) -> Iterator[RunningServer]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["demo-staging", "demo-production"])
    access = example_catalog.config.kubernetes.model_copy(update={"kubeconfig": str(kubeconfig)})
    catalog = dataclasses.replace(example_catalog, config=example_catalog.config.model_copy(update={"kubernetes": access}))

    def factory(settings: Settings, notifier: Notifier, groups: ExternalGroupResolver) -> OpsbotCore:
        return build_core(
            settings, notifier=notifier, catalog=catalog, external_groups=groups, timing=FAST_TIMING, maintenance_interval=60.0
        )

    settings = slack_settings(slack, database_url=migrated(sqlite_url), config_path=EXAMPLE_CONFIG, runbooks_dir=RUNBOOKS)
    with serve_opsbot(settings, core_factory=factory) as running:
        yield running


def test_the_version_field_offers_what_the_deployment_ran_and_what_was_typed(server: RunningServer, slack: FakeSlackApi) -> None:
    fields = {**command_form(slack, ALICE, "C0OPS", "deploy checkout to production"), "trigger_id": slack.trigger_id(ALICE)}
    assert server.post_signed(urlencode(fields).encode()).status_code == 200

    def with_versions() -> View | None:
        stack = slack.open_modals(ALICE)
        return stack[-1] if stack and json.loads(stack[-1].private_metadata or "{}").get("versions") else None

    form = slack.wait_for(with_versions, 20, what="the deploy form redrawn with the Deployment's versions")
    view = slack.submission(form.id, ALICE, {})["view"]
    asked = {
        "type": "block_suggestion", "team": {"id": "T0FAKE"}, "user": {"id": ALICE, "username": "alice", "team_id": "T0FAKE"},
        "api_app_id": "A0FAKEAPP", "action_id": "opsbot_form:version", "block_id": "version~checkout", "value": "1.4", "view": view,
    }  # fmt: skip

    response = server.post_signed(form_payload(asked))

    assert response.status_code == 200
    options = [(option["text"]["text"], option["value"]) for option in response.json()["options"]]
    assert options == [("1.4 (as typed)", "1.4"), ("1.4.1", "1.4.1")]
