"""`opsbot validate`: exit 0 on the shipped files, and file:line: field: message for each mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli.main import main
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE_CONFIG, tmp_path / "opsbot.yaml")
    shutil.copytree(RUNBOOKS, tmp_path / "runbooks")
    return tmp_path


def validate(workdir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", "--config", str(workdir / "opsbot.yaml"), "--runbooks", str(workdir / "runbooks")])
    return result.exit_code, result.output


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_shipped_config_and_runbooks_are_valid(workdir: Path) -> None:
    code, output = validate(workdir)
    assert code == 0, output
    assert output.startswith("OK: ") and "6 runbooks" in output


def test_misspelt_step_action_names_file_line_and_field(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "deploy.yaml"
    edit(runbook, "action: kubernetes.set_image", "action: kubernetes.set_imag")
    code, output = validate(workdir)
    assert code == 1
    line = line_of(runbook, "kubernetes.set_imag")
    assert f"{runbook}:{line}: steps[0].action: unknown action 'kubernetes.set_imag'; did you mean kubernetes.set_image?" in output


def test_replicas_max_below_min_is_reported(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "scale.yaml"
    edit(runbook, "max: 100", "max: -1")
    code, output = validate(workdir)
    assert code == 1
    assert f"{runbook}:{line_of(runbook, 'replicas:')}: parameters.replicas: max (-1) is below min (0)" in output


def test_unknown_env_in_policy_is_reported(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    edit(
        config,
        "envs: [staging]\n      allow: {groups: [developers, platform-oncall]}",
        "envs: [stagin]\n      allow: {groups: [developers, platform-oncall]}",
    )
    code, output = validate(workdir)
    assert code == 1
    assert f"{config}:{line_of(config, 'envs: [stagin]')}: policy.rules[2].envs[0]: unknown env 'stagin'; did you mean staging?" in output


def test_unknown_env_in_runbook_approval_is_reported(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "restart.yaml"
    edit(runbook, "approval:\n  production:", "approval:\n  prodution:")
    code, output = validate(workdir)
    assert code == 1
    assert f"{runbook}:{line_of(runbook, 'prodution:')}: approval.prodution: unknown env 'prodution'" in output


def test_yaml_syntax_error_names_the_line(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "status.yaml"
    runbook.write_text(runbook.read_text().replace("usage: status {service} [in {env}]", "usage: [status {service}"))
    code, output = validate(workdir)
    assert code == 1
    assert f"{runbook}:" in output and "YAML syntax error" in output


def test_unknown_top_level_key_is_reported(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    config.write_text(config.read_text() + "\npolicyy:\n  rules: []\n")
    code, output = validate(workdir)
    assert code == 1
    assert f"{config}:{line_of(config, 'policyy:')}: policyy: unknown key" in output


def test_unknown_approver_group_is_reported(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "deploy.yaml"
    edit(runbook, "approvers: [platform-oncall]", "approvers: [platform-on-call]")
    code, output = validate(workdir)
    assert code == 1
    assert (
        "approval.production.approvers[0]: group 'platform-on-call' is not declared under groups; did you mean platform-oncall?" in output
    )


def test_every_problem_is_listed_not_just_the_first(workdir: Path) -> None:
    edit(workdir / "runbooks" / "deploy.yaml", "action: kubernetes.set_image", "action: kubernetes.set_imag")
    edit(workdir / "runbooks" / "scale.yaml", "max: 100", "max: -1")
    code, output = validate(workdir)
    assert code == 1
    assert "2 problem(s) found." in output


def test_yaml_bomb_is_refused_without_expanding(workdir: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for index, name in enumerate("bcdefghij"):
        previous = "abcdefghij"[index]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]")
    bomb = workdir / "runbooks" / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    code, output = validate(workdir)
    assert code == 1
    assert f"{bomb}:1: document expands to more than 100,000 values" in output


def test_huge_runbook_file_is_refused(workdir: Path) -> None:
    huge = workdir / "runbooks" / "huge.yaml"
    huge.write_text("name: huge\ndescription: " + "x" * 1_100_000 + "\n")
    code, output = validate(workdir)
    assert code == 1
    assert f"{huge}: file is {huge.stat().st_size:,} bytes; the limit is 1,000,000 bytes" in output


def test_step_argument_that_does_not_exist_is_reported(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "deploy.yaml"
    edit(runbook, 'tag: "{version}"\n  - name: Wait', 'tga: "{version}"\n  - name: Wait')
    code, output = validate(workdir)
    assert code == 1
    assert "steps[0].args.tga: kubernetes.set_image has no argument 'tga'" in output


def test_template_naming_an_undeclared_parameter_is_reported(workdir: Path) -> None:
    runbook = workdir / "runbooks" / "deploy.yaml"
    edit(runbook, 'tag: "{version}"\n  - name: Wait', 'tag: "{verison}"\n  - name: Wait')
    code, output = validate(workdir)
    assert code == 1
    assert "steps[0].args: {verison} is not a parameter of this runbook" in output


def test_bad_digest_cron_is_reported(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    edit(config, 'cron: "30 8 * * *"', 'cron: "30 8 * * funday"')
    code, output = validate(workdir)
    assert code == 1
    assert f"{config}:{line_of(config, 'funday')}: channels.digests[1].cron: invalid cron expression" in output


GITOPS_SERVICE = """\
  webshop:
    environments:
      production:
        gitops:
          repo: https://github.com/shop/deploy-config.git
          path: apps/webshop/production/kustomization.yaml
          kustomize_image: registry.example.com/shop/webshop
          mode: pull_request
          sync:
            flux: {kind: Kustomization, namespace: flux-system, name: webshop}
"""


def test_a_gitops_target_is_valid(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    edit(config, "services:\n", "services:\n" + GITOPS_SERVICE)
    code, output = validate(workdir)
    assert code == 0, output


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("          kustomize_image: registry.example.com/shop/webshop\n",
         "          kustomize_image: registry.example.com/shop/webshop\n          field: image.tag\n",
         "give exactly one of kustomize_image (a kustomize images: entry) or field (like image.tag)"),
        ("https://github.com/shop/deploy-config.git", "https://x-access-token:ghp_secret@github.com/shop/deploy-config.git",
         "the repo URL must not carry credentials; give the token in OPSBOT_GIT_TOKEN_FILE"),
        ("https://github.com/shop/deploy-config.git", "/srv/git/deploy-config.git",
         "mode pull_request needs github_repo (owner/name) when repo is not a github.com URL"),
        (
            "{kind: Kustomization,",
            "{kind: Application,",
            "sync.flux.kind: 'Application' is not allowed; use one of: Kustomization, HelmRelease",
        ),
    ],
)  # fmt: skip
def test_gitops_target_mistakes_are_named(workdir: Path, old: str, new: str, expected: str) -> None:
    config = workdir / "opsbot.yaml"
    edit(config, "services:\n", "services:\n" + GITOPS_SERVICE)
    edit(config, old, new)
    code, output = validate(workdir)
    assert code == 1
    assert expected in output
    assert "ghp_secret" not in output


def test_a_service_source_and_registry_are_valid(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    source = '    source: {github: acme/checkout, tag_pattern: "checkout-{version}"}\n'
    registry = "    registry: {url: https://registry.example.com, token_file: /var/run/secrets/registry/token}\n"
    edit(config, "    channel: C0CHECKOUT\n", "    channel: C0CHECKOUT\n" + source + registry)
    code, output = validate(workdir)
    assert code == 0, output


PATTERN_RULE = "must contain {version} exactly once and no spaces"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('    source: {github: acme/checkout, tag_pattern: "v{ver}"}', f"services.checkout.source.tag_pattern: 'v{{ver}}' {PATTERN_RULE}"),
        (
            '    source: {github: acme/checkout, tag_pattern: "release {version}"}',
            f"services.checkout.source.tag_pattern: 'release {{version}}' {PATTERN_RULE}",
        ),
        ("    registry: {url: registry.example.com}", "services.checkout.registry.url: "),
        (
            "    registry: {url: https://registry.example.com, username_file: /secrets/user}",
            "services.checkout.registry: give username_file and password_file together (basic auth), or token_file alone",
        ),
    ],
)
def test_source_and_registry_mistakes_are_named_at_their_line(workdir: Path, line: str, expected: str) -> None:
    config = workdir / "opsbot.yaml"
    edit(config, "    channel: C0CHECKOUT\n", f"    channel: C0CHECKOUT\n{line}\n")
    code, output = validate(workdir)
    assert code == 1
    assert f"{config}:{line_of(config, line.strip())}: {expected}" in output, output


def test_require_checks_without_approvers_is_named_at_its_rule(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    edit(config, "    - name: staging is self-service\n", "    - name: staging is self-service\n      require_checks: true\n")
    code, output = validate(workdir)
    assert code == 1
    assert "policy.rules[2]: require_checks adds an approval, so approvals.approvers must name who may give it" in output, output


def test_require_checks_on_services_without_a_source_is_named(workdir: Path) -> None:
    config = workdir / "opsbot.yaml"
    rule = "      approvals: {count: 1, approvers: [platform-oncall], expires_in: 30m}\n    - name: production restarts"
    edit(config, rule, rule.replace("30m}\n", "30m}\n      require_checks: true\n"))
    edit(config, "    channel: C0CHECKOUT\n", "    channel: C0CHECKOUT\n    source: {github: acme/checkout}\n")
    code, output = validate(workdir)
    assert code == 1
    expected = (
        f"{config}:{line_of(config, 'require_checks: true')}: policy.rules[4].require_checks: payments, search, "
        "storefront, billing name no source ({github: owner/repo}), so their checks cannot be read"
    )
    assert expected in output, output
