"""`opsbot validate` on a directory holding every broken case of issue 14 (items 1–6), in one run.

Each problem is ``file:line: field: message`` in opsbot's words: no pydantic or PyYAML text,
no traceback, no follow-on error, and one file's syntax error hides nothing in the others.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CASES = Path(__file__).resolve().parent.parent / "validate_cases"
CONFIG = CASES / "opsbot.yaml"
RUNBOOKS = CASES / "runbooks"


@pytest.fixture(scope="module")
def report() -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "validate", "--config", str(CONFIG), "--runbooks", str(RUNBOOKS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.splitlines()


def at(path: Path, needle: str) -> str:
    """``path:line`` of the first line containing ``needle``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return f"{path}:{number}"
    raise AssertionError(needle)


def test_every_problem_of_every_file_in_one_run(report: tuple[int, list[str]]) -> None:
    code, lines = report
    assert code == 1
    assert lines[-1] == "17 problem(s) and 2 warning(s) found."
    assert all(line.startswith(str(CASES)) for line in lines[:-1]), lines


def test_misspelt_limit_names_the_parameter_it_meant(report: tuple[int, list[str]]) -> None:
    expected = (
        f"{at(CONFIG, 'replica: {min')}: policy.rules[1].limits.replica: "
        "no runbook matched by this rule has a parameter 'replica'; did you mean 'replicas'?"
    )
    assert expected in report[1]


def test_a_bound_must_fit_the_parameter_type(report: tuple[int, list[str]]) -> None:
    expected = (
        f"{at(CONFIG, 'version: {min')}: policy.rules[2].limits.version: "
        "min and max bound whole numbers, but 'version' is a string parameter; use allowed: [...] to list the values"
    )
    assert expected in report[1]


def test_policy_reaching_a_kind_the_steps_do_not_cover_is_a_warning(report: tuple[int, list[str]]) -> None:
    flush = RUNBOOKS / "flush-cache.yaml"
    expected = (
        f"{at(flush, 'steps:')}: steps: warning: steps run only on kubernetes targets, but the policy lets flush-cache "
        "reach billing/prod (ECS) by cache flushes anywhere in prod; opsbot refuses it there. "
        "Narrow the rule's services or add steps for that kind."
    )
    assert expected in report[1]


def test_examples_are_parsed_against_the_runbooks_own_usage(report: tuple[int, list[str]]) -> None:
    deploy, scale = RUNBOOKS / "deploy.yaml", RUNBOOKS / "scale.yaml"
    assert (
        f"{at(deploy, 'too production')}: examples[1]: 'deploy checkout 1.4.2 too production' does not match the usage "
        "`deploy {service} {version} [to {env}]`: Did not understand 'too' here; expected 'to' or the end of the command."
    ) in report[1]
    assert (
        f"{at(scale, 'six')}: examples[0]: 'scale checkout six in staging' does not match the usage "
        "`scale {service} {replicas} [in {env}]`: replicas must be a whole number 0–100; got 'six'."
    ) in report[1]
    # Examples name the example catalog's services: that is not a problem (help shows the catalog's own).
    assert not any("deploy checkout 1.4.2 to production" in line for line in report[1])


def test_a_runbook_with_many_problems_shows_them_all_in_opsbots_words(report: tuple[int, list[str]]) -> None:
    four = RUNBOOKS / "four-problems.yaml"
    shown = [line for line in report[1] if line.startswith(str(four))]
    assert shown == [
        f"{at(four, 'name:')}: name: 'Purge_Queue' is not allowed here; "
        "use lower-case letters, digits and '-', starting with a letter (at most 31); did you mean purge-queue?",
        f"{at(four, 'name:')}: description: missing; this key is required here",
        f"{at(four, 'descripton')}: descripton: unknown key 'descripton'; did you mean description? "
        "Allowed keys: approval, description, examples, name, on_failure, parameters, steps, timeout, usage",
        f"{at(four, 'strng')}: parameters.queue.type: 'strng' is not allowed; "
        "use one of: service, env, string, int, duration, choice, version",
        f"{at(four, 'restrat')}: steps[0].action: unknown action 'kubernetes.restrat'; did you mean kubernetes.restart?",
        f"{at(four, 'Kubernetes.Wait')}: steps[1].action: 'Kubernetes.Wait' is not allowed here; "
        "use backend.action in lower case, like kubernetes.set_image; did you mean kubernetes.wait_rollout?",
        f"{at(four, 'rollbak')}: on_failure: 'rollbak' is not allowed; use one of: rollback, none",
        f"{at(four, 'soon')}: timeout: 'soon' is not a duration; use forms like 90s, 30m, 2h, 1h30m, 1d",
    ]
    # No follow-on: {queue} is declared (its type is the problem), and the usage's name follows from the name's fix.
    assert not any("{queue}" in line or "usage must start" in line for line in shown)


def test_yaml_syntax_error_and_deep_nesting_are_file_line_problems(report: tuple[int, list[str]]) -> None:
    syntax, deep = RUNBOOKS / "syntax.yaml", RUNBOOKS / "deep.yaml"
    assert (
        f"{at(syntax, 'timeout: 5m')}: YAML syntax error: this line is not indented like the lines above it; "
        "keys of one mapping start in the same column"
    ) in report[1]
    assert f"{at(deep, '[[[')}: nested more than 50 levels deep; a config or runbook never needs that" in report[1]
    assert not any("expected <block end>" in line or "Input should" in line or "Field required" in line for line in report[1])


def test_shipped_runbook_with_other_env_and_group_names_says_which_file_to_edit(report: tuple[int, list[str]]) -> None:
    deploy = RUNBOOKS / "deploy.yaml"
    assert (
        f"{at(deploy, 'production:')}: approval.production: unknown env 'production'; opsbot.yaml has envs: prod, staging; "
        "edit this runbook (deploy.yaml) to use the names in opsbot.yaml"
    ) in report[1]
    assert (
        f"{at(deploy, 'platform-oncall')}: approval.production.approvers[0]: group 'platform-oncall' is not declared under groups; "
        "declared groups: developers, oncall; edit this runbook (deploy.yaml) to use the names in opsbot.yaml"
    ) in report[1]


def test_unknown_config_key_lists_the_allowed_keys_and_other_checks_still_run(report: tuple[int, list[str]]) -> None:
    assert (
        f"{at(CONFIG, 'aprovals')}: policy.rules[3].aprovals: unknown key 'aprovals'; did you mean approvals? "
        "Allowed keys: allow, approvals, envs, limits, name, require_checks, runbooks, services"
    ) in report[1]
