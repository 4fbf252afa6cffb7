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
from bot.catalog.identity import IdentityConfig, IdentityMode

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
"""Service, env and group names: lower case, safe in commands, messages and SQL."""

TargetKind = Literal["kubernetes", "ecs", "asg", "gitops"]
KIND_NAMES: dict[str, str] = {"kubernetes": "Kubernetes", "ecs": "ECS", "asg": "Auto Scaling group", "gitops": "GitOps"}
"""How each kind of target is named in messages."""
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EksCluster(Strict):
    """An EKS cluster reached without an exec plugin: endpoint and CA from ``eks.describe_cluster``, token made by opsbot."""

    cluster: str = Field(pattern=r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")

    def describe(self) -> str:
        return f"eks:{self.cluster} ({self.region})"


class KubernetesTarget(Strict):
    """A Deployment in a cluster reached through a kubeconfig context, an EKS cluster (``eks:``), or in-cluster."""

    context: str | None = None
    eks: EksCluster | None = None
    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    deployment: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    container: str | None = None
    identity: IdentityMode | None = None
    """``impersonate`` (act as the requester) or ``service`` (act as opsbot); default from ``identity.default_mode``."""

    @model_validator(mode="after")
    def _context_or_eks(self) -> KubernetesTarget:
        if self.context is not None and self.eks is not None:
            raise ValueError("give either context (a kubeconfig context) or eks (an EKS cluster), not both")
        return self

    allow_drift: bool = False
    """Let set_image/scale/restart change this Deployment even when Argo CD or Flux manages it (emergencies; audited)."""

    @property
    def kind(self) -> TargetKind:
        return "kubernetes"

    @property
    def cluster_key(self) -> str | None:
        """The key of this target's API client: the context, ``eks:<name>``, or None (in-cluster/current)."""
        return f"eks:{self.eks.cluster}" if self.eks is not None else self.context

    def describe(self) -> str:
        cluster = self.cluster_key or "in-cluster"
        return f"deployment {self.namespace}/{self.deployment} in cluster {cluster}"


class EcsTarget(Strict):
    """An ECS service; ``role_arn`` is assumed with the requester as session name."""

    region: str
    cluster: str
    service: str
    container: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    identity: IdentityMode | None = None

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
    identity: IdentityMode | None = None

    @property
    def kind(self) -> TargetKind:
        return "asg"

    def describe(self) -> str:
        return f"Auto Scaling group {self.name} ({self.region})"


class ArgoCdSync(Strict):
    """Sync through Argo CD's REST API: ``server`` (https://argocd.example.com) and the Application's name."""

    server: str = Field(pattern=r"^https?://[^\s/]+")
    app: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    project: str | None = None
    insecure: bool = False
    """Skip TLS verification (a lab Argo CD with a self-signed certificate); never in production."""


class FluxSync(Strict):
    """Reconcile through Flux: the Kustomization or HelmRelease that applies the changed path."""

    kind: Literal["Kustomization", "HelmRelease"]
    namespace: str = Field(default="flux-system", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    context: str | None = None
    """The kubeconfig context of the cluster Flux runs in (None: in-cluster or current context)."""


class GitopsSync(Strict):
    """Exactly one of ``argocd`` or ``flux``; ``none`` (or no ``sync``) means opsbot only commits."""

    argocd: ArgoCdSync | None = None
    flux: FluxSync | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> GitopsSync:
        if self.argocd is not None and self.flux is not None:
            raise ValueError("give one of argocd or flux, not both")
        return self

    @property
    def controller(self) -> Literal["argocd", "flux", "none"]:
        return "argocd" if self.argocd is not None else "flux" if self.flux is not None else "none"


class PullRequestMode(Strict):
    """How ``mode: pull_request`` ends: opsbot merges once the policy's approvals are given, or waits for a person."""

    merge: Literal["opsbot", "wait"] = "opsbot"
    method: Literal["merge", "squash", "rebase"] = "merge"
    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://[^\s]+$")


_GITHUB_SLUG = re.compile(r"github\.com[:/](?P<slug>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


class GitopsTarget(Strict):
    """A file in a git repository that Argo CD or Flux deploys from (docs/gitops.md).

    opsbot changes one image in ``path`` on ``branch`` (a kustomize ``images:`` entry named
    ``kustomize_image``, or the YAML ``field`` of a Helm values file or manifest), commits it
    (or opens a pull request), then asks the controller to sync and watches it.
    """

    repo: str = Field(min_length=1)
    """A URL (https://, ssh://, git@host:org/repo.git, file://) or a local path."""
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")
    path: str = Field(pattern=r"^[^/].*\.ya?ml$")
    kustomize_image: str | None = None
    field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    mode: Literal["commit", "pull_request"] = "commit"
    pull_request: PullRequestMode = Field(default_factory=PullRequestMode)
    github_repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    """owner/name for the GitHub API in pull_request mode; taken from a github.com ``repo`` URL if left out."""
    sync: GitopsSync = Field(default_factory=GitopsSync)

    @field_validator("repo")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        if re.match(r"^[a-z+]+://[^/@]*@", value) and not value.startswith("ssh://"):
            raise ValueError("the repo URL must not carry credentials; give the token in OPSBOT_GIT_TOKEN_FILE (docs/gitops.md)")
        return value

    @field_validator("sync", mode="before")
    @classmethod
    def _none_means_commit_only(cls, value: object) -> object:
        return {} if value in ("none", None) else value

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError(f"{value!r} must stay inside the repository (no '..')")
        return value

    @model_validator(mode="after")
    def _one_way_to_change(self) -> GitopsTarget:
        if (self.kustomize_image is None) == (self.field is None):
            raise ValueError("give exactly one of kustomize_image (a kustomize images: entry) or field (like image.tag)")
        if self.mode == "pull_request" and self.pull_request_slug() is None:
            raise ValueError("mode pull_request needs github_repo (owner/name) when repo is not a github.com URL")
        return self

    @property
    def kind(self) -> TargetKind:
        return "gitops"

    def pull_request_slug(self) -> str | None:
        """owner/name of the repository on GitHub (for pull_request mode)."""
        if self.github_repo is not None:
            return self.github_repo
        found = _GITHUB_SLUG.search(self.repo)
        return found.group("slug") if found else None

    def describe(self) -> str:
        how = f"image {self.kustomize_image}" if self.kustomize_image else f"field {self.field}"
        return f"{how} in {self.path} on branch {self.branch} of {self.repo}"


Target = KubernetesTarget | EcsTarget | AsgTarget | GitopsTarget


class Environment(Strict):
    """One environment of a service: exactly one target."""

    kubernetes: KubernetesTarget | None = None
    ecs: EcsTarget | None = None
    asg: AsgTarget | None = None
    gitops: GitopsTarget | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Environment:
        given = [kind for kind in ("kubernetes", "ecs", "asg", "gitops") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one target (kubernetes, ecs, asg or gitops); found {len(given)}: {given}")
        return self

    @property
    def target(self) -> Target:
        target = self.kubernetes or self.ecs or self.asg or self.gitops
        assert target is not None  # guaranteed by _exactly_one_target
        return target


class ServiceSource(Strict):
    """Where a service's code lives: ``{github: owner/repo, tag_pattern: "v{version}"}``.

    A deploy's plan then lists the commits and pull requests between the running version's tag
    and the requested one, and the target tag's checks (docs/runbooks.md, "What's changing");
    insights use it for lead time for changes.
    """

    github: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
    tag_pattern: str = "v{version}"
    """How a version (an image tag) names its git tag; must contain ``{version}``."""
    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://[^\s]+$")
    """GitHub's REST API (GitHub Enterprise Server: ``https://github.example.com/api/v3``)."""

    @field_validator("tag_pattern")
    @classmethod
    def _names_the_version(cls, value: str) -> str:
        if value.count("{version}") != 1 or re.search(r"[\s~^:?*\[\\]", value):
            raise ValueError(
                f"{value!r} must contain {{version}} exactly once and no spaces or ~ ^ : ? * [ \\ "
                '(git tag names), like "v{version}" or "checkout-{version}"'
            )
        return value

    def tag_of(self, version: str) -> str:
        """The git tag of ``version``: ``1.4.2`` → ``v1.4.2`` under ``v{version}``."""
        return self.tag_pattern.replace("{version}", version)


class ImageRegistry(Strict):
    """An OCI (Docker) registry opsbot reads: are a deploy's images there, which tags exist.

    ``url`` is the registry's API base (``https://registry.example.com``; the ``/v2/`` API
    lives under it). Credentials come from files (mounted Secrets), read when used and never
    logged: ``username_file`` + ``password_file`` (basic auth, also sent to the token service
    of a ``Bearer`` challenge), or ``token_file`` (a bearer token sent as is). ``repository``
    names the image's repository when it cannot be read from the image reference.
    """

    url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    repository: str | None = Field(default=None, pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
    username_file: str | None = None
    password_file: str | None = None
    token_file: str | None = None

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> ImageRegistry:
        if (self.username_file is None) != (self.password_file is None):
            raise ValueError("give username_file and password_file together (basic auth), or token_file alone")
        if self.token_file is not None and self.username_file is not None:
            raise ValueError("give either username_file + password_file or token_file, not both")
        return self


class Service(Strict):
    """A service in the catalog, with its environments, owners and channel."""

    description: str = ""
    owners: list[str] = Field(default_factory=list)
    channel: str | None = None
    incident_channel: str | None = None
    default_env: str | None = None
    environments: dict[Name, Environment] = Field(min_length=1)
    source: ServiceSource | None = None
    registry: ImageRegistry | None = None
    """The registry of this service's images; the config's top-level ``registry`` when left out."""

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
    insights: bool = False
    """Add a weekly delivery-insights section (last 7 days against the 7 before) to the first digest of each week."""

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
    """Who may ask. ``"*"`` in users means any person; empty channels means any channel.

    ``clients`` names inbound-API clients (``api.clients``); a client is allowed only where a
    rule names it, never by ``users: ["*"]`` or a group (a program is not a person).
    """

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    clients: list[str] = Field(default_factory=list)
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
    require_checks: bool = False
    """One more approval when the target version's checks on GitHub are not green (needs the service's ``source``)."""

    @model_validator(mode="after")
    def _checks_need_approvers(self) -> AccessRule:
        if self.require_checks and (self.approvals is None or not self.approvals.approvers):
            raise ValueError("require_checks adds an approval, so approvals.approvers must name who may give it")
        return self

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
    eks: dict[str, EksCluster] = Field(default_factory=dict)
    """Kubeconfig contexts reached as EKS clusters instead (their ``exec`` user is never run)."""


class AwsAccess(Strict):
    """Defaults for boto3 sessions; credentials come from the standard chain."""

    endpoint_url: str | None = None
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)


class Locks(Strict):
    """Explicit locks (``/ops lock``): how long one may last at most."""

    max_duration: Duration = timedelta(days=7)


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


class GitHubAccess(Strict):
    """Where ``github.workflow_dispatch`` steps reach GitHub's REST API (GitHub Enterprise Server: ``https://HOST/api/v3``).

    Set here, never in a runbook: opsbot's GitHub credentials go to this URL and nowhere else.
    """

    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://[^\s]+$")


ApiEndpoint = Literal["requests", "alertmanager"]
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _requests_only() -> list[ApiEndpoint]:
    return ["requests"]


class ApiClient(Strict):
    """A program calling the inbound API (CI, Alertmanager), by name; a principal policy rules can name.

    Exactly one credential: ``token_sha256``, the hex SHA-256 of a bearer token (the token itself
    lives only in the caller's secret, so neither this file nor a database dump can be replayed);
    ``token_file``, a file (a mounted Secret) holding the token, of which opsbot keeps only the
    SHA-256 once it has read it; or ``hmac_key_file``, a file holding the key the caller signs each body with.
    """

    token_sha256: str | None = None
    token_file: str | None = None
    hmac_key_file: str | None = None
    endpoints: list[ApiEndpoint] = Field(default_factory=_requests_only, min_length=1)
    """What the client may call: ``requests`` (ask for a runbook), ``alertmanager`` (the webhook)."""
    rate_per_minute: float = Field(default=60.0, gt=0, le=100_000)
    rate_burst: int = Field(default=10, ge=1, le=10_000)

    @field_validator("token_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.match(value):
            raise ValueError('token_sha256 must be 64 lower-case hex digits: `printf %s "$TOKEN" | sha256sum`')
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> ApiClient:
        given = [value for value in (self.token_sha256, self.token_file, self.hmac_key_file) if value is not None]
        if len(given) != 1:
            raise ValueError("a client needs exactly one of token_sha256 or token_file (a bearer token) or hmac_key_file (a signing key)")
        return self


class AlertmanagerHook(Strict):
    """Which alert labels name the catalog's service and environment (``POST /api/v1/hooks/alertmanager``)."""

    service_label: str = "service"
    env_label: str = "env"


class InboundApi(Strict):
    """The inbound API under ``/api/v1`` (docs/api.md): its clients and the Alertmanager webhook."""

    clients: dict[Name, ApiClient] = Field(default_factory=dict)
    alertmanager: AlertmanagerHook = Field(default_factory=AlertmanagerHook)
    max_body_bytes: int = Field(default=262_144, ge=1_024, le=10_000_000)


class Insights(Strict):
    """Delivery insights (docs/insights.md): which runbooks are deploys and rollbacks, and the defaults."""

    deploy_runbooks: list[str] = Field(default_factory=lambda: ["deploy"], min_length=1)
    rollback_runbooks: list[str] = Field(default_factory=lambda: ["rollback"])
    rollback_within: Duration = timedelta(hours=1)
    """A deploy rolled back by a rollback run starting within this time after it counts as a failed change."""
    window: Duration = timedelta(days=28)
    timezone: str = "UTC"
    """Where a day starts, for the per-day figures and the window's edges."""
    metrics_every: Duration = timedelta(minutes=15)
    """How often each executor refreshes the insights gauges on ``/metrics``."""

    @field_validator("window")
    @classmethod
    def _whole_days(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1) or value > timedelta(days=366) or value % timedelta(days=1):
            raise ValueError("the window must be a whole number of days between 1d and 366d, like 28d")
        return value


class OpsbotConfig(Strict):
    """The whole ``opsbot.yaml``."""

    timezone: str = "UTC"
    """The zone every message shows times in (named after each time); digests default to it too."""
    locks: Locks = Field(default_factory=Locks)
    groups: dict[Name, list[str]] = Field(default_factory=dict)
    users: dict[str, str] = Field(default_factory=dict)
    channels: Channels = Field(default_factory=Channels)
    services: dict[Name, Service] = Field(min_length=1)
    policy: Policy = Field(default_factory=Policy)
    health: HealthWatch = Field(default_factory=HealthWatch)
    kubernetes: KubernetesAccess = Field(default_factory=KubernetesAccess)
    aws: AwsAccess = Field(default_factory=AwsAccess)
    identity: IdentityConfig | None = None
    http: HttpAccess = Field(default_factory=HttpAccess)
    github: GitHubAccess = Field(default_factory=GitHubAccess)
    insights: Insights = Field(default_factory=Insights)
    registry: ImageRegistry | None = None
    """The image registry of every service that names none of its own."""
    api: InboundApi = Field(default_factory=InboundApi)

    @model_validator(mode="before")
    @classmethod
    def _digests_default_to_the_config_zone(cls, data: object) -> object:
        """A digest without its own ``timezone`` uses the config's, so one setting moves every time shown."""
        if not isinstance(data, dict) or not isinstance(data.get("channels"), dict):
            return data
        digests = data["channels"].get("digests")
        zone = data.get("timezone", "UTC")
        if isinstance(digests, list) and isinstance(zone, str):
            filled = [{"timezone": zone, **item} if isinstance(item, dict) else item for item in digests]
            data = {**data, "channels": {**data["channels"], "digests": filled}}
        return data

    def service(self, name: str) -> Service | None:
        return self.services.get(name)

    def registry_of(self, service: str) -> ImageRegistry | None:
        """The registry a service's images live in: its own, else the config's."""
        entry = self.services.get(service)
        return (entry.registry if entry is not None else None) or self.registry

    def display_name(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)


def _listed(value: str, allowed: list[str]) -> bool:
    return "*" in allowed or value in allowed
