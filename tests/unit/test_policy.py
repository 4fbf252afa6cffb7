"""The access policy: deny by default, who and where, limits, approvals, freeze windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.catalog.catalog import Catalog
from bot.catalog.config import AccessRule, Allow, ApprovalRule, FreezeWindow, OpsbotConfig
from bot.requests.groups import GroupDirectory
from bot.requests.policy import ApprovalRequirement, ChangeFacts, Decision, Subject, evaluate, freeze_active

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
    decision = decide(example_catalog, "status", "checkout", "production", MALLORY)
    assert (decision.allowed, decision.rule, decision.reason) == (True, "read-only for everyone", "allowed by read-only for everyone")
    assert decision.approval.count == 0, "reading needs nobody's approval"


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
    staging = decide(example_catalog, "restart", "checkout", "staging", DAVE)
    assert (staging.allowed, staging.rule, staging.approval.count) == (True, "staging is self-service", 0)
    production = decide(example_catalog, "restart", "checkout", "production", DAVE)
    assert (production.allowed, production.rule) == (True, "production restarts and migrations need an on-call approval")
    assert (production.approval.count, production.approval.approvers) == (1, ("platform-oncall",))


# --- Semantics the mutation run showed untested (docs/testing.md): first match, minimums, edges, exact texts.


def _with_policy(catalog: Catalog, *, rules: list[AccessRule] | None = None, freezes: list[FreezeWindow] | None = None) -> OpsbotConfig:
    policy = catalog.config.policy
    update: dict[str, object] = {}
    if rules is not None:
        update["rules"] = rules
    if freezes is not None:
        update["freezes"] = freezes
    return catalog.config.model_copy(update={"policy": policy.model_copy(update=update)})


def _rule(**fields: object) -> AccessRule:
    return AccessRule.model_validate({"runbooks": ["*"], "envs": ["*"], "allow": {"users": ["*"]}, **fields})


def test_the_first_of_two_matching_rules_decides(example_catalog: Catalog) -> None:
    oncall_only = _rule(envs=["staging"], allow={"groups": ["platform-oncall"]})
    everyone = _rule(name="anyone, anywhere")
    config = _with_policy(example_catalog, rules=[oncall_only, everyone])
    refused = decide(example_catalog, "deploy", "checkout", "staging", ALICE, config=config)
    assert refused.allowed is False
    assert refused.rule == "policy.rules[0]"
    assert refused.reason == "Only members of @platform-oncall may run `deploy` in staging (policy.rules[0])."
    allowed = decide(example_catalog, "deploy", "checkout", "staging", BOB, config=config)
    assert (allowed.allowed, allowed.rule, allowed.reason) == (True, "policy.rules[0]", "allowed by policy.rules[0]")
    elsewhere = decide(example_catalog, "deploy", "checkout", "production", ALICE, config=config)
    assert (elsewhere.allowed, elsewhere.rule) == (True, "anyone, anywhere")


def test_no_matching_rule_is_a_refusal_not_a_maybe(example_catalog: Catalog) -> None:
    config = _with_policy(example_catalog, rules=[])
    decision = decide(example_catalog, "deploy", "checkout", "production", BOB, config=config)
    assert decision.allowed is False
    assert decision.reason == "No policy rule allows `deploy` on checkout/production; nobody may run it (deny by default)."
    assert decision.rule is None


def test_a_rule_asking_for_more_approvals_than_the_runbook_minimum_is_not_lowered(example_catalog: Catalog) -> None:
    stricter = _rule(approvals={"count": 2, "approvers": ["sre-leads"], "expires_in": "45m"})
    decision = decide(example_catalog, "deploy", "checkout", "production", ALICE, config=_with_policy(example_catalog, rules=[stricter]))
    assert decision.approval.count == 2, "the rule asks for 2; the runbook's 1 is only a minimum"
    assert decision.approval.approvers == ("sre-leads",), "the rule names who approves"
    assert decision.approval.expires_in == timedelta(minutes=30), "the shorter expiry (the runbook's 30m) wins"


def test_a_rule_with_one_approval_names_its_own_approvers(example_catalog: Catalog) -> None:
    own_group = _rule(approvals={"count": 1, "approvers": ["sre-leads"], "expires_in": "30m"})
    decision = decide(example_catalog, "deploy", "checkout", "production", ALICE, config=_with_policy(example_catalog, rules=[own_group]))
    assert (decision.approval.count, decision.approval.approvers) == (1, ("sre-leads",))


def test_a_rule_asking_for_no_approval_keeps_the_runbook_minimum_and_its_approvers(example_catalog: Catalog) -> None:
    none_asked = _rule(approvals={"count": 0, "expires_in": "5m"})
    decision = decide(example_catalog, "deploy", "checkout", "production", ALICE, config=_with_policy(example_catalog, rules=[none_asked]))
    assert decision.approval.count == 1
    assert decision.approval.approvers == ("platform-oncall",)
    assert decision.approval.expires_in == timedelta(minutes=30), "a rule that asks for nothing sets no expiry either"


def test_a_built_in_needs_no_approval(example_catalog: Catalog) -> None:
    decision = decide(example_catalog, "lock", "checkout", "production", ALICE)
    assert decision.allowed is True
    assert decision.approval.count == 0


def test_a_limit_minimum_is_itself_allowed(example_catalog: Catalog) -> None:
    assert decide(example_catalog, "scale", "checkout", "production", ALICE, params={"replicas": 2}).allowed is True
    below = decide(example_catalog, "scale", "checkout", "production", ALICE, params={"replicas": 1})
    assert below.allowed is False
    assert below.rule == "production scale needs on-call and stays within limits"
    assert below.reason == "replicas 1 is below the production minimum of 2 (production scale needs on-call and stays within limits)."


def test_a_limit_on_an_absent_parameter_does_not_skip_the_others(example_catalog: Catalog) -> None:
    limited = _rule(limits={"timeout": {"max": 5}, "replicas": {"max": 3}})
    config = _with_policy(example_catalog, rules=[limited])
    decision = decide(example_catalog, "scale", "checkout", "staging", ALICE, params={"replicas": 4}, config=config)
    assert decision.allowed is False
    assert decision.reason == "replicas 4 is above the staging limit of 3 (policy.rules[0])."


def test_a_value_outside_the_allowed_list_is_refused_with_the_list(example_catalog: Catalog) -> None:
    limited = _rule(name="pinned images", limits={"image": {"allowed": ["v1", "v2"]}})
    config = _with_policy(example_catalog, rules=[limited])
    refused = decide(example_catalog, "deploy", "checkout", "staging", ALICE, params={"image": "v3"}, config=config)
    assert refused.allowed is False
    assert refused.reason == "image v3 is not allowed in staging; allowed: v1, v2 (pinned images)."
    assert decide(example_catalog, "deploy", "checkout", "staging", ALICE, params={"image": "v2"}, config=config).allowed is True


def test_refusals_name_who_and_where_exactly(example_catalog: Catalog) -> None:
    users_only = _rule(name="named people", allow={"users": [BOB]})
    config = _with_policy(example_catalog, rules=[users_only])
    refused = decide(example_catalog, "deploy", "checkout", "staging", ALICE, config=config)
    assert refused.reason == "Only members of the users listed in the rule may run `deploy` in staging (named people)."
    two_channels = _rule(name="from ops rooms", allow={"users": ["*"], "channels": ["C0OPS", "C0DEPLOYS"]})
    config = _with_policy(example_catalog, rules=[two_channels])
    wrong_room = decide(example_catalog, "deploy", "checkout", "staging", ALICE, channel="C0RANDOM", config=config)
    assert (wrong_room.allowed, wrong_room.rule) == (False, "from ops rooms")
    assert wrong_room.reason == "`deploy` in staging may only be run from <#C0OPS>, <#C0DEPLOYS> (from ops rooms)."


@pytest.mark.parametrize(
    ("moment", "frozen"),
    [
        (datetime(2026, 11, 25, 10, 29, tzinfo=UTC), False),  # Wed 10:29, a minute before
        (datetime(2026, 11, 25, 10, 30, tzinfo=UTC), True),  # the first minute
        (datetime(2026, 11, 25, 14, 14, tzinfo=UTC), True),  # the last minute
        (datetime(2026, 11, 25, 14, 15, tzinfo=UTC), False),  # the end is not in the window
        (datetime(2026, 11, 24, 12, 0, tzinfo=UTC), False),  # Tuesday, same hours
    ],
)
def test_a_window_within_one_day_starts_on_its_first_minute_and_ends_before_its_last(moment: datetime, frozen: bool) -> None:
    freeze = FreezeWindow(name="release", start="wed 10:30", end="wed 14:15", timezone="UTC")
    assert freeze_active(freeze, moment) is frozen


def test_a_window_that_ends_where_it_starts_is_never_active() -> None:
    freeze = FreezeWindow(name="empty", start="wed 10:30", end="wed 10:30", timezone="UTC")
    assert not any(freeze_active(freeze, WEDNESDAY_NOON + timedelta(hours=hours)) for hours in range(0, 7 * 24, 5))
    assert freeze_active(freeze, datetime(2026, 11, 25, 10, 30, tzinfo=UTC)) is False


def test_a_deny_freeze_without_a_reason_names_the_window(example_catalog: Catalog) -> None:
    freeze = FreezeWindow(name="quiet", start="wed 10:00", end="wed 14:00", action="deny")
    config = _with_policy(example_catalog, freezes=[freeze])
    decision = decide(example_catalog, "deploy", "checkout", "production", ALICE, config=config)
    assert (decision.allowed, decision.rule) == (False, "production changes need an on-call approval")
    assert decision.reason == "`deploy` in production is frozen now: (quiet, wed 10:00 – wed 14:00 UTC)."


def test_a_freeze_needing_approvers_refuses_when_none_are_configured(example_catalog: Catalog) -> None:
    freeze = FreezeWindow(name="quiet", start="wed 10:00", end="wed 14:00", action="require_approval", reason="Audit week.")
    config = _with_policy(example_catalog, freezes=[freeze])
    decision = decide(example_catalog, "deploy", "checkout", "staging", ALICE, config=config)
    assert decision.allowed is False
    assert decision.reason == (
        "`deploy` in staging is frozen now and no approver group is configured to lift it: Audit week. (quiet, wed 10:00 – wed 14:00 UTC)."
    )


def test_a_freeze_adds_approvals_keeping_who_approves_and_the_expiry(example_catalog: Catalog) -> None:
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    decision = decide(example_catalog, "deploy", "payments", "production", ALICE, now=saturday)
    assert decision.approval.approvers == ("platform-oncall",)
    assert decision.approval.expires_in == timedelta(minutes=30)
    assert decision.approval.describe("production") == (
        "production needs 2 approvals from @platform-oncall within 30m; freeze 'payments weekend freeze' adds 1: "
        "No payments changes over the weekend without a second approval."
    )


def test_a_freeze_on_every_runbook_spares_reading_unless_it_names_it(example_catalog: Catalog) -> None:
    everything = FreezeWindow(name="all", start="wed 10:00", end="wed 14:00", action="deny")
    config = _with_policy(example_catalog, freezes=[everything])
    assert decide(example_catalog, "read", "checkout", "production", ALICE, config=config).allowed is True
    assert decide(example_catalog, "restart", "checkout", "staging", ALICE, config=config).allowed is False
    naming_status = FreezeWindow(name="all", start="wed 10:00", end="wed 14:00", action="deny", runbooks=["read"])
    config = _with_policy(example_catalog, freezes=[naming_status])
    assert decide(example_catalog, "read", "checkout", "production", ALICE, config=config).allowed is False


def test_describe_lists_every_approver_group_and_note() -> None:
    requirement = ApprovalRequirement(count=2, approvers=("a", "b"), expires_in=timedelta(minutes=10), notes=("one", "two"))
    assert requirement.describe("production") == "production needs 2 approvals from @a, @b within 10m; one; two"
    assert ApprovalRequirement(count=0).describe("staging") == "staging needs no approval"


def test_a_freeze_keeps_the_shorter_expiry_it_found(example_catalog: Catalog) -> None:
    freeze = FreezeWindow(name="quiet", start="wed 10:00", end="wed 14:00", action="require_approval", reason="Audit week.")
    decision = decide(example_catalog, "rollback", "checkout", "production", BOB, config=_with_policy(example_catalog, freezes=[freeze]))
    assert (decision.approval.count, decision.approval.expires_in) == (2, timedelta(minutes=15))


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
