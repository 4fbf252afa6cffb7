"""Through `opsbot demo`: a runbook is refused on a kind of target it has no steps for, and help
shows examples with the catalog's own services (the shipped runbooks name `checkout`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE_CONFIG, REPO, RUNBOOKS

FLUSH_CACHE = """\
name: flush-cache
description: Flush the service's cache and restart it.
usage: flush-cache {service} [in {env}]
parameters:
  service: {type: service}
  env: {type: env}
steps:
  - action: opsbot.note
    args: {text: flushing}
  - action: opsbot.wait
    args: {seconds: 1}
  - action: kubernetes.restart
  - action: kubernetes.wait_rollout
"""

SCRIPT = """\
/ops help deploy
/ops flush-cache billing in production
/ops history
"""


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("reach")
    config = directory / "opsbot.yaml"
    # A team whose checkout service is called storefront.
    config.write_text(EXAMPLE_CONFIG.read_text().replace("checkout", "storefront"))
    runbooks = directory / "runbooks"
    shutil.copytree(RUNBOOKS, runbooks)
    (runbooks / "flush-cache.yaml").write_text(FLUSH_CACHE)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "demo", "--config", str(config), "--runbooks", str(runbooks), "--tick-seconds", "0.05"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_runbook_without_steps_for_ecs_is_refused_before_planning(transcript: str) -> None:
    refusal = "`flush-cache` has no step for ECS targets (ECS service billing in cluster prod (eu-west-1)); it runs on: kubernetes."
    assert refusal in transcript
    assert "succeeded" not in transcript and "#1" not in transcript


def test_help_examples_use_the_catalogs_own_services(transcript: str) -> None:
    help_text = transcript.split("Examples:", 1)[1].split("flush-cache", 1)[0]
    assert "/ops deploy storefront 1.4.2 to production" in help_text
    assert "checkout" not in help_text
