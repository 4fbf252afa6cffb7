"""Action plugins: an installed package adds an action through the ``opsbot.actions`` entry point.

The example plugin (examples/opsbot-flags, installed by ./scripts/test like any third-party
package) goes through the whole way of a runbook step; broken plugins are problems that name
their package, at ``opsbot validate`` and at startup, never tracebacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit.events import Actor
from bot.catalog.catalog import load_catalog
from bot.catalog.registry import build_registry
from bot.errors import ConfigError
from bot.messages import ButtonAction, MessageRef
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Click, Invocation
from bot.requests.views import button_value
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store import audit as audit_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from tests.doubles import FakeClock, RecordingNotifier, RecordingReplier, touch_config

REPO = Path(__file__).resolve().parents[2]
REQUESTER = Actor("U0REQ", "requester")
APPROVER = Actor("U0A00", "approver0")
FLAG_RUNBOOK = """\
name: flag
description: Turn a feature flag on or off.
usage: flag {service} {flag} {state} [in {env}]
parameters:
  service: {type: service}
  env: {type: env}
  flag: {type: string, pattern: "[a-z][a-z0-9-]{0,62}"}
  state: {type: choice, choices: ["on", "off"]}
steps:
  - name: Set the flag
    action: flags.set
    args: {file: "FLAGS", flag: "{flag}", enabled: "{state}"}
"""


def write_catalog(directory: Path, runbook: str) -> None:
    (directory / "runbooks").mkdir(exist_ok=True)
    (directory / "runbooks" / "flag.yaml").write_text(runbook)
    (directory / "opsbot.yaml").write_text(touch_config().replace("runbooks: [touch, lock, unlock]", "runbooks: [flag]"))


@pytest.fixture
def flag_app(tmp_path: Path, database_url: str) -> Iterator[tuple[OpsbotCore, Path]]:
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps({"old-checkout": True}))
    write_catalog(tmp_path, FLAG_RUNBOOK.replace("FLAGS", str(flags)))
    catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)
    settings = Settings(OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="plugin-test")
    app = build_core(settings, notifier=RecordingNotifier(), catalog=catalog, clock=FakeClock())
    upgrade(app.database)
    yield app, flags
    app.close()


def test_the_example_plugin_is_found_through_its_entry_point_and_named_by_its_package() -> None:
    registry = build_registry()

    assert registry.problems == []
    assert registry.get("flags.set") is not None
    origin = registry.origin("flags.set")
    assert origin is not None and origin.package == "opsbot-flags"
    assert registry.origin("kubernetes.set_image") is not None


def test_a_runbook_using_the_plugin_is_planned_approved_run_and_audited(flag_app: tuple[OpsbotCore, Path]) -> None:
    app, flags = flag_app
    asked = RecordingReplier()
    app.front_door.handle_command(Invocation(REQUESTER, "C0OPS", "flag svc new-checkout on"), asked)
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow)).one()
    assert row.state == RequestState.PENDING_APPROVAL, asked.messages
    assert row.plan == [{"field": "flag new-checkout", "before": "(unset)", "after": "on"}]
    assert json.loads(flags.read_text()) == {"old-checkout": True}, "nothing changes before the approval"

    on_its_message = MessageRef.from_dict(row.message_ref)
    app.front_door.handle_click(Click(APPROVER, "C0OPS", ButtonAction.APPROVE, button_value(row), on_its_message), RecordingReplier())
    assert app.wait_idle(timeout=30)

    assert json.loads(flags.read_text()) == {"new-checkout": True, "old-checkout": True}
    with app.database.reading() as session:
        done = session.get(RequestRow, row.id)
        events = [event.event for event in session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == row.id))]
    assert done is not None and done.state == RequestState.SUCCEEDED and done.result == "flag new-checkout is on"
    assert events[:4] == ["command_received", "approval_requested", "approval_given", "approved"]
    assert {"started", "step_started", "step_finished", "succeeded"} <= set(events)
    assert audit_store.verify(app.database).broken is None


def test_a_plugins_bad_argument_is_a_file_and_line_problem(tmp_path: Path) -> None:
    write_catalog(tmp_path, FLAG_RUNBOOK.replace('flag: "{flag}"', "flag: Not_A_Flag").replace("FLAGS", "/tmp/flags.json"))

    with pytest.raises(ConfigError) as refused:
        load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)

    [problem] = refused.value.problems
    assert problem.startswith(f"{tmp_path / 'runbooks' / 'flag.yaml'}:12: steps[0].args.flag: flags.set: ")
    assert "pattern" in problem or "[a-z]" in problem, "the message says what a flag name may look like"


def fake_distribution(site: Path, name: str, entry_points: str, module: str = "", source: str = "") -> None:
    """An installed distribution as importlib.metadata finds it: a .dist-info with entry points (and its module)."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[opsbot.actions]\n{entry_points}\n")
    if module:
        (site / f"{module}.py").write_text(source)


def validate_with(site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [
        sys.executable,
        "-m",
        "bot.cli.main",
        "validate",
        "--config",
        str(REPO / "opsbot.example.yaml"),
        "--runbooks",
        str(REPO / "runbooks"),
    ]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_a_plugin_that_fails_to_import_is_a_problem_naming_its_package(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path, "opsbot-broken", "broken = opsbot_broken_actions", "opsbot_broken_actions", "import not_installed_anywhere\n"
    )

    result = validate_with(tmp_path)

    assert result.returncode == 1
    assert "plugin opsbot-broken (entry point broken = opsbot_broken_actions) cannot be loaded: ModuleNotFoundError" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plugin_action_whose_name_is_taken_is_refused_naming_both_sides(tmp_path: Path) -> None:
    source = (
        "from typing import ClassVar\n"
        "from bot.catalog.actions import Action, ActionArgs, StepResult\n"
        "class Args(ActionArgs):\n    pass\n"
        "class Impostor(Action[Args]):\n"
        "    name: ClassVar[str] = 'kubernetes.set_image'\n    target_kind = None\n    args_model = Args\n"
        "    mutating = True\n    summary = 'pretends to be the built-in'\n"
        "    def run(self, ctx, args):\n        return StepResult(summary='nothing')\n"
        "ACTIONS = [Impostor]\n"
    )
    fake_distribution(tmp_path, "opsbot-impostor", "impostor = opsbot_impostor_actions", "opsbot_impostor_actions", source)

    result = validate_with(tmp_path)

    assert result.returncode == 1
    assert "action 'kubernetes.set_image' from plugin opsbot-impostor" in result.stderr
    assert "clashes with the action of the same name from opsbot (built in)" in result.stderr
