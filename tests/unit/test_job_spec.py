"""The pure parts of ``kubernetes.job`` and ``github.workflow_dispatch``: the Job opsbot sends, and how outcomes are read."""

from __future__ import annotations

from typing import Any

import pytest

from bot.backends.gitops.workflow_dispatch import WorkflowDispatchArgs, run_outcome
from bot.backends.kubernetes.job_actions import JobArgs
from bot.backends.kubernetes.job_spec import (
    JobOverrides,
    apply_overrides,
    inline_template,
    job_manifest,
    job_name,
    job_outcome,
    shown_command,
)


def template(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"restartPolicy": "Never", "containers": list(containers)}}


def test_overrides_replace_args_and_merge_env_by_name() -> None:
    base = template(
        {"name": "migrate", "image": "m:1", "args": ["up"], "env": [{"name": "DB", "value": "a"}, {"name": "MODE", "value": "x"}]}
    )

    changed = apply_overrides(base, JobOverrides(args=("up", "--to", "42"), env=(("MODE", "y"), ("TARGET", "42"))))

    [container] = changed["spec"]["containers"]
    assert container["args"] == ["up", "--to", "42"]
    assert container["env"] == [{"name": "DB", "value": "a"}, {"name": "MODE", "value": "y"}, {"name": "TARGET", "value": "42"}]
    assert base["spec"]["containers"][0]["args"] == ["up"], "the CronJob's template is not changed"


def test_a_template_with_several_containers_needs_the_container_named() -> None:
    base = template({"name": "migrate", "image": "m:1"}, {"name": "proxy", "image": "p:1"})

    with pytest.raises(ValueError, match=r"several containers \(migrate, proxy\)"):
        apply_overrides(base, JobOverrides(args=("x",), env=()))
    chosen = apply_overrides(base, JobOverrides(args=("x",), env=(), container="migrate"))

    assert chosen["spec"]["containers"][0]["args"] == ["x"]


def test_the_manifest_carries_the_ttl_the_labels_and_a_deadline_just_past_the_runs() -> None:
    spec = {"template": inline_template(image="tools:2", command=["run"], overrides=JobOverrides(args=None, env=()))}

    job = job_manifest(
        name="batch-7-ab12", generate=False, job_spec=spec, labels={"opsbot.dev/request": "7"}, annotations={},
        ttl_seconds=3600, backoff_limit=0, active_deadline=299.2,
    )  # fmt: skip

    assert job["metadata"]["name"] == "batch-7-ab12"
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600 and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 300 + 60
    assert job["spec"]["template"]["metadata"]["labels"] == {"opsbot.dev/request": "7"}


def test_job_names_fit_in_a_label_value() -> None:
    name = job_name("a-very-long-cronjob-name-that-goes-on-and-on-and-on-and-on-forever", 123456, "beef")

    assert len(name) <= 63 and name.endswith("-123456-beef") and not name.startswith("-")


def test_the_command_is_shown_as_a_shell_would_quote_it() -> None:
    assert shown_command({"command": ["migrate"], "args": ["up", "--note", "it's here"]}) == "migrate up --note 'it'\"'\"'s here'"
    assert shown_command({"args": ["--once"]}) == "(image entrypoint) --once"


@pytest.mark.parametrize(
    ("conditions", "done", "succeeded"),
    [
        ([], False, False),
        ([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}], True, True),
        (
            [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
            True,
            False,
        ),
        ([{"type": "Complete", "status": "False"}], False, False),
    ],
)
def test_a_jobs_outcome_follows_its_conditions(conditions: list[dict[str, str]], done: bool, succeeded: bool) -> None:
    outcome = job_outcome({"status": {"conditions": conditions}})

    assert (outcome.done, outcome.succeeded) == (done, succeeded)


def test_job_arguments_keep_parameters_as_strings_and_refuse_bad_env_names() -> None:
    args = JobArgs.model_validate({"image": "tools:2", "args": ["--to", 42], "env": {"TARGET": 42}})

    assert args.overrides() == JobOverrides(args=("--to", "42"), env=(("TARGET", "42"),))
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        JobArgs.model_validate({"image": "tools:2", "env": {"1BAD": "x"}})


def test_only_success_passes_a_workflow_run() -> None:
    assert run_outcome({"status": "completed", "conclusion": "success"}).passed
    for conclusion in ("failure", "cancelled", "timed_out", "action_required", None):
        assert not run_outcome({"status": "completed", "conclusion": conclusion}).passed


def test_workflow_inputs_go_to_github_as_strings_and_refs_must_be_git_names() -> None:
    args = WorkflowDispatchArgs.model_validate({"repo": "shop/app", "workflow": "release.yml", "inputs": {"dry_run": True, "n": 3}})

    assert args.input_strings() == {"dry_run": "true", "n": "3"}
    with pytest.raises(ValueError, match="not a git branch or tag name"):
        WorkflowDispatchArgs.model_validate({"repo": "shop/app", "workflow": "release.yml", "ref": "main..evil"})
