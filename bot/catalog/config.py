"""The opsbot config file: service catalog, groups, channels, access policy, schedules.

Every model forbids unknown keys, so a typo in a pull request fails ``opsbot validate``
instead of silently disabling a rule.
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from bot.catalog.durations import Duration

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
"""Service, env and group names: lower case, safe in commands, messages and SQL."""

TargetKind = Literal["kubernetes", "ecs", "asg"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesTarget(Strict):
    """A Deployment in a cluster reached through a kubeconfig context (or in-cluster)."""

    context: str | None = None
    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    deployment: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    container: str | None = None

    @property
    def kind(self) -> TargetKind:
        return "kubernetes"

    def describe(self) -> str:
        cluster = self.context or "in-cluster"
        return f"deployment {self.namespace}/{self.deployment} in cluster {cluster}"


class EcsTarget(Strict):
    """An ECS service; ``role_arn`` is assumed with the requester as session name."""

    region: str
    cluster: str
    service: str
    container: str | None = None
    profile: str | None = None
    role_arn: str | None = None

    @property
    def kind(self) -> TargetKind:
        return "ecs"

    def describe(self) -> str:
        return f"ECS service {self.service} in cluster {self.cluster} ({self.region})"


class AsgTarget(Strict):
    """An EC2 Auto Scaling group."""

    region: str
    name: str
    profile: str | None = None
    role_arn: str | None = None

    @property
    def kind(self) -> TargetKind:
        return "asg"

    def describe(self) -> str:
        return f"Auto Scaling group {self.name} ({self.region})"


Target = KubernetesTarget | EcsTarget | AsgTarget


class Environment(Strict):
    """One environment of a service: exactly one target."""

    kubernetes: KubernetesTarget | None = None
    ecs: EcsTarget | None = None
    asg: AsgTarget | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Environment:
        given = [kind for kind in ("kubernetes", "ecs", "asg") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one target (kubernetes, ecs or asg); found {len(given)}: {given}")
        return self

    @property
    def target(self) -> Target:
        target = self.kubernetes or self.ecs or self.asg
        assert target is not None  # guaranteed by _exactly_one_target
        return target


class Service(Strict):
    """A service in the catalog, with its environments, owners and channel."""

    description: str = ""
    owners: list[str] = Field(default_factory=list)
    channel: str | None = None
    incident_channel: str | None = None
    default_env: str | None = None
    environments: dict[Name, Environment] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_env_exists(self) -> Service:
        if self.default_env is not None and self.default_env not in self.environments:
            known = ", ".join(self.environments)
            raise ValueError(f"default_env {self.default_env!r} is not one of this service's environments: {known}")
        return self


class Digest(Strict):
    """A scheduled health digest posted to one channel."""

    channel: str
    cron: str = "0 9 * * mon-fri"
    timezone: str = "UTC"
    services: list[str] = Field(default_factory=lambda: ["*"])
    envs: list[str] = Field(default_factory=lambda: ["*"])
    quiet: bool = False

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a 5-field cron expression (minute hour day month weekday)")
        return value


class Channels(Strict):
    """Where opsbot posts besides the channel a command came from."""

    incident: str | None = None
    digests: list[Digest] = Field(default_factory=list)


class ApprovalRule(Strict):
    """How many people, from which groups, must approve, and for how long the ask stands."""

    count: int = Field(default=1, ge=0, le=10)
    approvers: list[str] = Field(default_factory=list)
    expires_in: Duration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _approvers_when_needed(self) -> ApprovalRule:
        if self.count > 0 and not self.approvers:
            raise ValueError("approvers must name at least one group when count > 0")
        return self


class Allow(Strict):
    """Who may ask. ``"*"`` in users means anyone; empty channels means any channel."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)


class ParameterLimit(Strict):
    """Tighter bounds for a runbook parameter in the envs a rule covers."""

    min: int | None = None
    max: int | None = None
    allowed: list[str] | None = None


class AccessRule(Strict):
    """One policy rule; the first rule matching (runbook, service, env) decides."""

    name: str | None = None
    runbooks: list[str] = Field(min_length=1)
    envs: list[str] = Field(min_length=1)
    services: list[str] = Field(default_factory=lambda: ["*"])
    allow: Allow
    approvals: ApprovalRule | None = None
    limits: dict[str, ParameterLimit] = Field(default_factory=dict)

    def matches(self, runbook: str, service: str, env: str) -> bool:
        return _listed(runbook, self.runbooks) and _listed(service, self.services) and _listed(env, self.envs)

    def label(self, index: int) -> str:
        return self.name or f"policy.rules[{index}]"


_DAY_TIME = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)\s+([01]\d|2[0-3]):([0-5]\d)$")


class FreezeWindow(Strict):
    """A weekly window (e.g. ``fri 16:00`` → ``mon 08:00``) in a time zone."""

    name: str
    start: str
    end: str
    timezone: str = "UTC"
    runbooks: list[str] = Field(default_factory=lambda: ["*"])
    envs: list[str] = Field(default_factory=lambda: ["*"])
    services: list[str] = Field(default_factory=lambda: ["*"])
    action: Literal["deny", "require_approval"] = "deny"
    extra_approvals: int = Field(default=1, ge=1, le=10)
    reason: str = ""

    @field_validator("start", "end")
    @classmethod
    def _day_and_time(cls, value: str) -> str:
        if not _DAY_TIME.match(value.strip().lower()):
            raise ValueError(f"{value!r} must look like 'fri 16:00' (day mon..sun, 24-hour time)")
        return value.strip().lower()

    def matches(self, runbook: str, service: str, env: str) -> bool:
        return _listed(runbook, self.runbooks) and _listed(service, self.services) and _listed(env, self.envs)


class Policy(Strict):
    """Access rules (first match wins, no match = deny) and freeze windows."""

    rules: list[AccessRule] = Field(default_factory=list)
    freezes: list[FreezeWindow] = Field(default_factory=list)


class HealthWatch(Strict):
    """The periodic check that opens incidents for degraded services."""

    enabled: bool = True
    interval: Duration = timedelta(seconds=60)
    degraded_after: Duration = timedelta(minutes=3)
    restart_threshold: int = Field(default=5, ge=1)


class KubernetesAccess(Strict):
    """How opsbot reaches clusters: a kubeconfig file and/or the in-cluster service account."""

    kubeconfig: str | None = None
    in_cluster: bool = False
    request_timeout: Duration = timedelta(seconds=15)


class AwsAccess(Strict):
    """Defaults for boto3 sessions; credentials come from the standard chain."""

    endpoint_url: str | None = None
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)


class HttpAccess(Strict):
    """Where ``http.request`` steps may send requests: only under these base URLs.

    A runbook's URL template must start inside one of them, and parameters substituted into it
    are percent-encoded, so no parameter (and no runbook typo) can point a request elsewhere.
    """

    allowed_urls: list[str] = Field(default_factory=list)

    @field_validator("allowed_urls")
    @classmethod
    def _absolute_bases(cls, value: list[str]) -> list[str]:
        bases: list[str] = []
        for url in value:
            parsed = urllib.parse.urlsplit(url)
            if parsed.scheme not in ("https", "http") or not parsed.hostname:
                raise ValueError(f"{url!r} is not an absolute http(s) URL like https://cdn.example.com/api/")
            if parsed.username or parsed.password or parsed.query or parsed.fragment:
                raise ValueError(f"{url!r}: a base URL has no user, query or fragment")
            bases.append(url if url.endswith("/") else url + "/")
        return bases


class OpsbotConfig(Strict):
    """The whole ``opsbot.yaml``."""

    groups: dict[Name, list[str]] = Field(default_factory=dict)
    users: dict[str, str] = Field(default_factory=dict)
    channels: Channels = Field(default_factory=Channels)
    services: dict[Name, Service] = Field(min_length=1)
    policy: Policy = Field(default_factory=Policy)
    health: HealthWatch = Field(default_factory=HealthWatch)
    kubernetes: KubernetesAccess = Field(default_factory=KubernetesAccess)
    aws: AwsAccess = Field(default_factory=AwsAccess)
    http: HttpAccess = Field(default_factory=HttpAccess)

    def service(self, name: str) -> Service | None:
        return self.services.get(name)

    def display_name(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)


def _listed(value: str, allowed: list[str]) -> bool:
    return "*" in allowed or value in allowed
