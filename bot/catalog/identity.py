"""Who a change runs as: how a Slack user becomes a Kubernetes user and groups, and an AWS source identity.

Why: with one ServiceAccount (or one IAM role) the cluster's RBAC and CloudTrail cannot tell one
requester from another. With ``identity:`` configured, opsbot keeps its own policy as the first
gate and then acts *as the requester* (approved): Kubernetes calls carry impersonation headers,
AWS sessions carry ``SourceIdentity`` and session tags. Approvers are recorded in the audit log;
the cloud sees the requester.

The config models live here (``OpsbotConfig.identity`` refers to them) together with the pure
mapping, so ``opsbot validate`` and the run engine read the same rules.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.messages import api_client_of

IdentityMode = Literal["impersonate", "service"]
"""Per target: act as the requester (``impersonate``) or as opsbot itself (``service``)."""

TEMPLATE_FIELDS = frozenset({"user_id", "email"})
DEFAULT_USER_TEMPLATE = "slack:{user_id}"
REQUEST_EXTRA = "opsbot-request"
"""The ``Impersonate-Extra-<key>`` (and user extra) that names the opsbot request."""
PLANNING = "planning"
"""The extra's value while a request is planned, before it has a number."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesIdentity(_Strict):
    """How the Kubernetes user and groups are named."""

    user: str = DEFAULT_USER_TEMPLATE
    group_prefix: str = Field(default="opsbot:", max_length=40)

    @field_validator("user")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return check_template(value)


class AwsIdentity(_Strict):
    """What AssumeRole carries: ``SourceIdentity`` (email when known, else the Slack id) and session tags."""

    source_identity: Literal["email", "user_id"] = "email"
    transitive_tags: bool = True
    """Mark the tags transitive, so a role assumed from the opsbot session keeps them (role chaining)."""


class UserOverride(_Strict):
    """A static mapping for one Slack user: a fixed user name, extra groups (not prefixed), an email."""

    user: str | None = Field(default=None, min_length=1, max_length=200)
    groups: list[str] = Field(default_factory=list)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")


class IdentityConfig(_Strict):
    """The ``identity:`` section: once present, targets default to ``impersonate``."""

    default_mode: IdentityMode = "impersonate"
    kubernetes: KubernetesIdentity = Field(default_factory=KubernetesIdentity)
    aws: AwsIdentity = Field(default_factory=AwsIdentity)
    overrides: dict[str, UserOverride] = Field(default_factory=dict)


def check_template(template: str) -> str:
    """A user template may name only ``{user_id}`` and ``{email}``; anything else is a config error."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"{template!r} is not a valid template: {error}") from None
    unknown = sorted({name for name in fields if name not in TEMPLATE_FIELDS})
    if unknown:
        raise ValueError(f"{template!r} uses {', '.join(unknown)}; a user template may use {{user_id}} and {{email}}")
    if not template.strip():
        raise ValueError("the user template is empty")
    return template


@dataclass(frozen=True)
class RequesterIdentity:
    """The identity one request acts as, in the words each cloud uses."""

    slack_user: str
    kube_user: str
    kube_groups: tuple[str, ...]
    email: str | None
    source_identity: str
    transitive_tags: bool = True

    def describe(self) -> str:
        """``slack:U0ALICE, groups opsbot:developers`` (for messages)."""
        groups = ", ".join(self.kube_groups) or "none"
        return f"{self.kube_user}, groups {groups}"

    def as_audit(self) -> dict[str, object]:
        return {"kubernetes_user": self.kube_user, "kubernetes_groups": list(self.kube_groups), "source_identity": self.source_identity}

    def session_tags(self, runbook: str, request_id: int | None) -> dict[str, str]:
        """The AWS session tags: who asked, which runbook, which request."""
        return {"opsbot-user": self.slack_user, "opsbot-runbook": runbook or "none", "opsbot-request": _request_text(request_id)}

    def impersonation_extra(self, request_id: int | None) -> dict[str, str]:
        return {REQUEST_EXTRA: _request_text(request_id)}


class IdentityUnavailable(ValueError):
    """The mapping needs something opsbot does not know (an email the template uses)."""


EmailLookup = Callable[[str], str | None]
GroupsLookup = Callable[[str], frozenset[str]]


class IdentityMap:
    """Slack user → ``RequesterIdentity``; ``for_target`` is None where a target acts as opsbot."""

    def __init__(self, config: IdentityConfig | None, *, groups_of: GroupsLookup, email_of: EmailLookup | None = None) -> None:
        self.config = config
        self._groups_of = groups_of
        self._email_of = email_of

    def use_emails(self, email_of: EmailLookup) -> None:
        """Plug in Slack's email lookup (the Slack wing builds it; wiring calls this once at start)."""
        self._email_of = email_of

    def mode(self, target_mode: IdentityMode | None) -> IdentityMode:
        """A target's own ``identity:`` wins; else ``impersonate`` once the section exists, else ``service``."""
        if target_mode is not None:
            return target_mode
        return self.config.default_mode if self.config is not None else "service"

    def for_target(self, user_id: str, target_mode: IdentityMode | None) -> RequesterIdentity | None:
        if self.mode(target_mode) == "service" or not user_id:
            return None
        return self.of(user_id)

    def of(self, user_id: str) -> RequesterIdentity:
        """The requester's identity now (groups are read at each call: membership changes count)."""
        config = self.config or IdentityConfig()
        override = config.overrides.get(user_id)
        # An inbound-API client (``client:<name>``) has no Slack profile to ask for an email.
        lookup = self._email_of if api_client_of(user_id) is None else None
        email = (override.email if override else None) or (lookup(user_id) if lookup else None)
        template = config.kubernetes.user
        if "{email}" in template and email is None:
            raise IdentityUnavailable(
                f"the identity template {template!r} needs your email, and Slack did not give opsbot one "
                "(the app needs the users:read.email scope, or an identity.overrides entry)"
            )
        user = override.user if override and override.user else template.format(user_id=user_id, email=email or "")
        prefix = config.kubernetes.group_prefix
        groups = sorted(f"{prefix}{group}" for group in self._groups_of(user_id))
        extra = list(override.groups) if override else []
        source = email if config.aws.source_identity == "email" and email else user_id
        return RequesterIdentity(
            slack_user=user_id, kube_user=user, kube_groups=tuple(dict.fromkeys([*groups, *extra])), email=email,
            source_identity=source, transitive_tags=config.aws.transitive_tags,
        )  # fmt: skip


def _request_text(request_id: int | None) -> str:
    return str(request_id) if request_id else PLANNING
