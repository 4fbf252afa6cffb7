"""The access policy: deny by default, who and where, limits, approvals, freeze windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.catalog.catalog import Catalog
from bot.catalog.config import AccessRule, Allow, ApprovalRule, FreezeWindow, OpsbotConfig
from bot.requests.groups import GroupDirectory
from bot.requests.policy import ChangeFacts, Decision, Subject, evaluate, freeze_active

ALICE, BOB, DAVE, MALLORY = "U0ALICE", "U0BOB", "U0DAVE", "U0MALLORY"
WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def decide(
    catalog: Catalog,
    command: str,
    service: str,
    env: str,
    user: str,
    *,
    params: dict[str, str | int | None] | None = None,
    channel: str = "C0OPS",
    now: datetime = WEDNESDAY_NOON,
    config: OpsbotConfig | None = None,
    external: dict[str, frozenset[str]] | None = None,
) -> Decision:
    config = config or catalog.config
    groups = GroupDirectory(config, (lambda ref: (external or {})[ref]) if external is not None else None)
    return evaluate(
        config, groups, command=command, runbook=catalog.runbooks.get(command), service=service, env=env,
        params=dict(params or {}), subject=Subject(user, channel), now=now,
    )  # fmt: skip


def test_staging_deploy_by_a_developer_needs_no_approval(example_catalog: Catalog) -> None:
    decision = decide(example_catalog, "deploy", "checkout", "staging", ALICE)
    assert decision.allowed
    assert decision.approval.count == 0
    assert decision.rule == "staging is self-service"


def test_production_deploy_needs_one_oncall_approval(example_catalog: Catalog) -> None:
    decision = decide(example_catalog, "deploy", "checkout", "production", ALICE)
    assert decision.allowed
    assert decision.approval.count == 1
    assert decision.approval.approvers == ("platform-oncall",)
    assert decision.approval.describe("production") == "production needs 1 approval from @platform-oncall within 30m"


def test_someone_in_no_group_is_denied_with_the_groups_named(example_catalog: Catalog) -> None:
    decision = decide(example_catalog, "deploy", "checkout", "production", MALLORY)
    assert not decision.allowed
    assert decision.reason == (
        "Only members of @developers, @platform-oncall may run `deploy` in production (production changes need an on-call approval)."
    )


def test_status_is_open_to_everyone(example_catalog: Catalog) -> None:
    assert decide(example_catalog, "status", "checkout", "production", MALLORY).allowed


def test_an_env_no_rule_covers_is_denied_by_default(example_catalog: Catalog) -> None:
    config = example_catalog.config.model_copy(update={"policy": example_catalog.config.policy.model_copy(update={"rules": []})})
    decision = decide(example_catalog, "status", "checkout", "production", ALICE, config=config)
    assert not decision.allowed
    assert "deny by default" in decision.reason


def test_production_scale_limit_is_enforced_with_the_limit_named(example_catalog: Catalog) -> None:
    assert decide(example_catalog, "scale", "checkout", "production", ALICE, params={"replicas": 20}).allowed
    decision = decide(example_catalog, "scale", "checkout", "production", ALICE, params={"replicas": 25})
    assert not decision.allowed
    assert decision.reason.startswith("replicas 25 is above the production limit of 20")
    low = decide(example_catalog, "scale", "checkout", "production", ALICE, params={"replicas": 1})
    assert low.reason.startswith("replicas 1 is below the production minimum of 2")


def test_channel_restriction(example_catalog: Catalog) -> None:
    rules = list(example_catalog.config.policy.rules)
    restricted = rules[2].model_copy(update={"allow": rules[2].allow.model_copy(update={"channels": ["C0DEPLOYS"]})})
    rules[2] = restricted
    config = example_catalog.config.model_copy(update={"policy": example_catalog.config.policy.model_copy(update={"rules": rules})})
    decision = decide(example_catalog, "deploy", "checkout", "staging", ALICE, channel="C0RANDOM", config=config)
    assert not decision.allowed
    assert "may only be run from <#C0DEPLOYS>" in decision.reason
    assert decide(example_catalog, "deploy", "checkout", "staging", ALICE, channel="C0DEPLOYS", config=config).allowed


def test_runbook_minimum_cannot_be_lowered_by_the_config(example_catalog: Catalog) -> None:
    rules = list(example_catalog.config.policy.rules)
    weaker = rules[4].model_copy(update={"approvals": None})
    rules[4] = weaker
    config = example_catalog.config.model_copy(update={"policy": example_catalog.config.policy.model_copy(update={"rules": rules})})
    decision = decide(example_catalog, "deploy", "checkout", "production", ALICE, config=config)
    assert decision.approval.count == 1, "deploy.yaml asks for 1 production approval; the config cannot remove it"


@pytest.mark.parametrize(
    ("moment", "frozen"),
    [
        (datetime(2026, 11, 27, 14, 59, tzinfo=UTC), False),  # Fri 15:59 Berlin
        (datetime(2026, 11, 27, 15, 0, tzinfo=UTC), True),  # Fri 16:00 Berlin
        (datetime(2026, 11, 29, 12, 0, tzinfo=UTC), True),  # Sunday
        (datetime(2026, 11, 30, 6, 59, tzinfo=UTC), True),  # Mon 07:59 Berlin
        (datetime(2026, 11, 30, 7, 0, tzinfo=UTC), False),  # Mon 08:00 Berlin
        (datetime(2026, 3, 30, 5, 59, tzinfo=UTC), True),  # Mon 07:59 Berlin after the spring DST change (UTC+2)
        (datetime(2026, 3, 30, 6, 0, tzinfo=UTC), False),  # Mon 08:00 Berlin, summer time
    ],
)
def test_weekend_freeze_follows_the_wall_clock_of_its_time_zone(moment: datetime, frozen: bool) -> None:
    freeze = FreezeWindow(name="weekend", start="fri 16:00", end="mon 08:00", timezone="Europe/Berlin")
    assert freeze_active(freeze, moment) is frozen


def test_freeze_can_require_an_extra_approval_with_its_reason(example_catalog: Catalog) -> None:
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    decision = decide(example_catalog, "deploy", "payments", "production", ALICE, now=saturday)
    assert decision.allowed
    assert decision.approval.count == 2
    assert "No payments changes over the weekend" in decision.approval.describe("production")
    assert decide(example_catalog, "deploy", "payments", "production", ALICE, now=WEDNESDAY_NOON).approval.count == 1


def test_deny_freeze_refuses_with_the_window(example_catalog: Catalog) -> None:
    freezes = [example_catalog.config.policy.freezes[0].model_copy(update={"action": "deny"})]
    config = example_catalog.config.model_copy(update={"policy": example_catalog.config.policy.model_copy(update={"freezes": freezes})})
    decision = decide(
        example_catalog, "deploy", "payments", "production", ALICE, now=datetime(2026, 11, 28, 10, 0, tzinfo=UTC), config=config
    )
    assert not decision.allowed
    assert "is frozen now" in decision.reason and "fri 16:00 – mon 08:00 Europe/Berlin" in decision.reason


def test_slack_user_group_members_are_resolved_and_failures_deny(example_catalog: Catalog) -> None:
    groups = dict(example_catalog.config.groups)
    groups["developers"] = ["@dev-team"]
    config = example_catalog.config.model_copy(update={"groups": groups})
    allowed = decide(example_catalog, "deploy", "checkout", "staging", MALLORY, config=config, external={"@dev-team": frozenset({MALLORY})})
    assert allowed.allowed
    broken = decide(example_catalog, "deploy", "checkout", "staging", MALLORY, config=config, external={})
    assert not broken.allowed, "a Slack lookup that fails must not grant access"


def test_expiry_is_the_shorter_of_runbook_and_rule(example_catalog: Catalog) -> None:
    decision = decide(example_catalog, "rollback", "checkout", "production", BOB)
    assert decision.approval.expires_in == timedelta(minutes=15)


def test_dave_is_a_developer(example_catalog: Catalog) -> None:
    assert decide(example_catalog, "restart", "checkout", "staging", DAVE).allowed


def with_require_checks(catalog: Catalog, *, approvals: bool = True) -> OpsbotConfig:
    rules = list(catalog.config.policy.rules)
    index = next(i for i, rule in enumerate(rules) if rule.name == "production changes need an on-call approval")
    rules[index] = rules[index].model_copy(update={"require_checks": True})
    staging = next(i for i, rule in enumerate(rules) if rule.name == "staging is self-service")
    if approvals:
        checked = {"require_checks": True, "approvals": ApprovalRule(count=0, approvers=["platform-oncall"])}
        rules[staging] = rules[staging].model_copy(update=checked)
    return catalog.config.model_copy(update={"policy": catalog.config.policy.model_copy(update={"rules": rules})})


def decide_with_checks(catalog: Catalog, env: str, checks: str | None) -> Decision:
    config = with_require_checks(catalog)
    return evaluate(
        config, GroupDirectory(config, None), command="deploy", runbook=catalog.runbooks["deploy"], service="checkout", env=env,
        params={}, subject=Subject(ALICE, "C0OPS"), now=WEDNESDAY_NOON, facts=ChangeFacts(checks=checks),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("checks", "count", "why"),
    [
        ("success", 1, None),
        (None, 1, None),
        ("failure", 2, "require_checks adds 1: the new version's checks are failing"),
        ("pending", 2, "require_checks adds 1: the new version's checks are still running"),
        ("none", 2, "require_checks adds 1: the new version's checks reported nothing"),
        ("unknown", 2, "require_checks adds 1: the new version's checks could not be read from GitHub"),
    ],
)
def test_checks_that_are_not_green_add_one_approval_under_require_checks(
    example_catalog: Catalog, checks: str | None, count: int, why: str | None
) -> None:
    decision = decide_with_checks(example_catalog, "production", checks)
    assert decision.allowed and decision.approval.count == count
    assert decision.approval.notes == ((why,) if why else ())


def test_require_checks_on_a_rule_without_approvals_asks_its_approvers_once(example_catalog: Catalog) -> None:
    decision = decide_with_checks(example_catalog, "staging", "failure")
    assert (decision.approval.count, decision.approval.approvers) == (1, ("platform-oncall",))
    assert decide_with_checks(example_catalog, "staging", "success").approval.count == 0


def test_require_checks_needs_approvers_to_give_the_extra_approval() -> None:
    with pytest.raises(ValueError, match=r"require_checks adds an approval, so approvals\.approvers must name who may give it"):
        AccessRule(runbooks=["deploy"], envs=["production"], allow=Allow(users=["*"]), require_checks=True)
