"""The identity map (Slack user → Kubernetes user/groups, AWS source identity) and the fake's impersonation checks."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bot.catalog.config import KubernetesTarget
from bot.catalog.identity import IdentityConfig, IdentityMap, IdentityUnavailable, KubernetesIdentity, UserOverride
from fakes.kubernetes import ApiRequest, FakeKubernetesServer, Grant, ImpersonationLimit

GROUPS = {"U0ALICE": frozenset({"developers"}), "U0CAROL": frozenset({"platform-oncall", "sre-leads"})}


def mapping(config: IdentityConfig | None, emails: dict[str, str] | None = None) -> IdentityMap:
    return IdentityMap(config, groups_of=lambda user: GROUPS.get(user, frozenset()), email_of=(emails or {}).get)


def test_the_default_names_the_slack_user_and_prefixes_the_groups() -> None:
    identity = mapping(IdentityConfig()).of("U0CAROL")
    assert identity.kube_user == "slack:U0CAROL"
    assert identity.kube_groups == ("opsbot:platform-oncall", "opsbot:sre-leads")
    assert identity.source_identity == "U0CAROL", "no email known: the Slack id"


def test_an_email_template_uses_the_verified_email_and_refuses_without_one() -> None:
    config = IdentityConfig(kubernetes=KubernetesIdentity(user="{email}"))
    assert mapping(config, {"U0ALICE": "alice@example.com"}).of("U0ALICE").kube_user == "alice@example.com"
    assert mapping(config, {"U0ALICE": "alice@example.com"}).of("U0ALICE").source_identity == "alice@example.com"
    with pytest.raises(IdentityUnavailable, match="needs your email"):
        mapping(config).of("U0ALICE")


def test_an_override_fixes_the_user_and_adds_unprefixed_groups() -> None:
    config = IdentityConfig(overrides={"U0ALICE": UserOverride(user="alice@corp", groups=["team-checkout"])})
    identity = mapping(config).of("U0ALICE")
    assert identity.kube_user == "alice@corp"
    assert identity.kube_groups == ("opsbot:developers", "team-checkout")


def test_targets_impersonate_once_identity_exists_unless_they_say_service() -> None:
    assert mapping(None).for_target("U0ALICE", None) is None, "without identity: opsbot acts as itself"
    assert mapping(IdentityConfig()).for_target("U0ALICE", "service") is None
    assert mapping(IdentityConfig()).for_target("U0ALICE", None) is not None
    assert mapping(IdentityConfig(default_mode="service")).for_target("U0ALICE", "impersonate") is not None


def test_a_template_naming_anything_else_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"uses team; a user template may use \{user_id\} and \{email\}"):
        IdentityConfig.model_validate({"kubernetes": {"user": "slack:{team}"}})
    with pytest.raises(ValidationError, match="either context"):
        KubernetesTarget.model_validate(
            {"context": "prod", "eks": {"cluster": "prod", "region": "eu-west-1"}, "namespace": "shop", "deployment": "checkout"}
        )


def _request(headers: list[tuple[str, str]], path: str = "/apis/apps/v1/namespaces/shop/deployments/checkout") -> ApiRequest:
    repeated: dict[str, tuple[str, ...]] = {}
    for name, value in headers:
        repeated[name.lower()] = (*repeated.get(name.lower(), ()), value)
    return ApiRequest("GET", path, "prod", headers={k: v[-1] for k, v in repeated.items()}, repeated=repeated)


@pytest.fixture
def fake() -> FakeKubernetesServer:
    server = FakeKubernetesServer(auto_tick=False)
    server.add_deployment(cluster="prod", namespace="shop", name="checkout", image="checkout:1")
    return server


def test_the_fake_refuses_in_kube_apiservers_words_per_impersonated_group(fake: FakeKubernetesServer) -> None:
    fake.rbac.grant(
        Grant("oncall", ("get",), ("deployments",), groups=("opsbot:oncall",), namespaces=("shop",), resource_names=("checkout",))
    )
    allowed = fake.handle(
        _request([("Impersonate-User", "slack:U0BOB"), ("Impersonate-Group", "x"), ("Impersonate-Group", "opsbot:oncall")])
    )
    assert allowed.status == 200
    refused = fake.handle(_request([("Impersonate-User", "slack:U0ALICE"), ("Impersonate-Group", "opsbot:developers")]))
    assert refused.status == 403
    assert refused.body["message"] == (
        'deployments.apps "checkout" is forbidden: User "slack:U0ALICE" cannot get resource "deployments" in API group "apps" '
        'in the namespace "shop"'
    )
    assert refused.body["reason"] == "Forbidden" and refused.body["kind"] == "Status"


def test_the_fake_checks_what_the_caller_may_impersonate(fake: FakeKubernetesServer) -> None:
    fake.rbac.limit_impersonation(ImpersonationLimit(user_prefix="slack:", group_prefix="opsbot:"))
    refused = fake.handle(_request([("Impersonate-User", "slack:U0ALICE"), ("Impersonate-Group", "system:masters")]))
    assert refused.status == 403
    assert refused.body["message"] == (
        'groups "system:masters" is forbidden: User "system:serviceaccount:opsbot:opsbot" cannot impersonate '
        'resource "groups" in API group "" at the cluster scope'
    )
    groups_without_user = fake.handle(_request([("Impersonate-Group", "opsbot:developers")]))
    assert groups_without_user.status == 500


def test_the_fake_answers_self_subject_access_reviews_for_the_impersonated_user(fake: FakeKubernetesServer) -> None:
    fake.rbac.grant(Grant("dev-read", ("get", "list"), ("deployments",), groups=("opsbot:developers",)))
    body = {"spec": {"resourceAttributes": {"verb": "patch", "group": "apps", "resource": "deployments", "namespace": "shop"}}}
    headers = [("Impersonate-User", "slack:U0ALICE"), ("Impersonate-Group", "opsbot:developers")]
    request = _request(headers, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    answer = fake.handle(
        ApiRequest("POST", request.path, "prod", headers=request.headers, body=json.dumps(body).encode(), repeated=request.repeated)
    )
    assert answer.status == 201 and answer.body["status"] == {"allowed": False}
    body["spec"]["resourceAttributes"]["verb"] = "get"
    answer = fake.handle(
        ApiRequest("POST", request.path, "prod", headers=request.headers, body=json.dumps(body).encode(), repeated=request.repeated)
    )
    assert answer.body["status"] == {"allowed": True, "reason": 'RBAC: allowed by ClusterRoleBinding "dev-read"'}
