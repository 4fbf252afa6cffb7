"""Process settings from the environment, read once at start and passed down.

Why a ``*_FILE`` variant for every setting: Kubernetes mounts Secrets as files, and
a token in a file never shows up in ``kubectl describe pod`` or ``/proc/*/environ``.

Why a plain pydantic model reading ``os.environ`` itself, not pydantic-settings: every setting
is one scalar variable, and importing pydantic-settings (asyncio, dotenv, its command-line
parser) cost every ``opsbot`` command about 40 ms of its start-up (docs/benchmarks.md, start-up).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
MIN_AUDIT_KEY_CHARS = 32
S3_LOCATION = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"


class Settings(BaseModel):
    """Every environment variable opsbot reads; see the README's configuration reference.

    ``Settings()`` reads the environment: an explicit argument (``Settings(OPSBOT_PORT=8080)`` or
    ``Settings(port=8080)``) wins, then the variable ``NAME``, then the file ``NAME_FILE`` names;
    names are matched whatever their case. A value that does not validate raises pydantic's
    ``ValidationError`` titled ``Settings``, located by the variable's name (``bot.cli.fail``).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True)

    def __init__(self, **given: Any) -> None:
        super().__init__(**_from_environment(type(self).model_fields, given))

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default=DEFAULT_SLACK_API_URL, alias="SLACK_API_URL")
    config_path: Path = Field(default=Path("opsbot.yaml"), alias="OPSBOT_CONFIG")
    database_url: SecretStr = Field(default=SecretStr("sqlite:///opsbot.db"), alias="OPSBOT_DATABASE_URL")
    runbooks_dir: Path = Field(default=Path("runbooks"), alias="OPSBOT_RUNBOOKS_DIR")
    host: str = Field(default="0.0.0.0", alias="OPSBOT_HOST")  # noqa: S104 - a server in a pod listens on all interfaces
    port: int = Field(default=3000, ge=1, le=65535, alias="OPSBOT_PORT")
    workers: int = Field(default=1, ge=1, le=64, alias="OPSBOT_WORKERS")
    """HTTP processes. The default, 1 with no executors, is one process doing everything (docs/operations.md, sizing)."""
    runner_threads: int = Field(default=16, ge=1, le=256, alias="OPSBOT_RUNNER_THREADS")
    """Runs at once per core. A run holds its thread until its rollout is done, so an approval past this many waits for one to end
    (ten approvals at once with 8: p99 from the click to the PATCH 4.6 s; with 16: 1.2 s, docs/benchmarks.md)."""
    max_backlog: int = Field(default=1_000, ge=10, le=1_000_000, alias="OPSBOT_MAX_BACKLOG")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="OPSBOT_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", alias="OPSBOT_LOG_FORMAT")
    instance_id: str = Field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}", alias="OPSBOT_INSTANCE_ID")
    run_scheduler: bool = Field(default=True, alias="OPSBOT_SCHEDULER")
    executors: int = Field(default=0, ge=0, le=32, alias="OPSBOT_EXECUTORS")
    """Executor processes for the work after the ack; 0 (the default) keeps that work in the HTTP process."""
    executor_nice: int = Field(default=10, ge=0, le=19, alias="OPSBOT_EXECUTOR_NICE")
    executor_socket: str | None = Field(default=None, alias="OPSBOT_EXECUTOR_SOCKET")
    """Set by `opsbot serve` for its HTTP workers: where the executor processes take jobs (internal)."""
    run_lease_seconds: int = Field(default=60, ge=3, le=3_600, alias="OPSBOT_RUN_LEASE_SECONDS")
    maintenance_seconds: int = Field(default=15, ge=1, le=3_600, alias="OPSBOT_MAINTENANCE_SECONDS")
    group_cache_seconds: float = Field(default=300.0, ge=1, le=86_400, alias="OPSBOT_GROUP_CACHE_SECONDS")
    """How long a Slack user group's members are trusted before Slack is asked again (usergroups.users.list)."""
    group_max_age_seconds: float | None = Field(default=None, ge=1, le=604_800, alias="OPSBOT_GROUP_MAX_AGE_SECONDS")
    """Past this age a cached membership grants nothing, even while Slack cannot be asked (default 2 × the cache time)."""
    allowed_teams: str = Field(default="", alias="OPSBOT_ALLOWED_TEAMS")
    """Comma-separated Slack workspace (``T…``) or org (``E…``) ids whose people may act besides the bot's own."""
    # GitOps targets (docs/gitops.md): secrets best given as files (OPSBOT_GIT_TOKEN_FILE, …).
    git_token: SecretStr | None = Field(default=None, alias="OPSBOT_GIT_TOKEN")
    git_username: str = Field(default="x-access-token", alias="OPSBOT_GIT_USERNAME")
    git_ssh_key: SecretStr | None = Field(default=None, alias="OPSBOT_GIT_SSH_KEY")
    git_author_name: str = Field(default="opsbot", alias="OPSBOT_GIT_AUTHOR_NAME")
    git_author_email: str = Field(default="opsbot@localhost", alias="OPSBOT_GIT_AUTHOR_EMAIL")
    git_cache_dir: Path | None = Field(default=None, alias="OPSBOT_GIT_CACHE_DIR")
    argocd_token: SecretStr | None = Field(default=None, alias="OPSBOT_ARGOCD_TOKEN")
    github_token: SecretStr | None = Field(default=None, alias="OPSBOT_GITHUB_TOKEN")
    # A GitHub App instead of a token (github.workflow_dispatch, pull_request mode): installation tokens expire in an hour.
    github_app_id: str | None = Field(default=None, alias="OPSBOT_GITHUB_APP_ID")
    github_app_installation_id: str | None = Field(default=None, alias="OPSBOT_GITHUB_APP_INSTALLATION_ID")
    github_app_private_key: SecretStr | None = Field(default=None, alias="OPSBOT_GITHUB_APP_PRIVATE_KEY")
    header_timeout_seconds: float = Field(default=5.0, gt=0, le=300, alias="OPSBOT_HEADER_TIMEOUT_SECONDS")
    """A connection must finish its request line and headers this long after it opens (or after its last answer)."""
    body_timeout_seconds: float = Field(default=5.0, gt=0, le=300, alias="OPSBOT_BODY_TIMEOUT_SECONDS")
    """A request body must be complete this long after its headers (Slack itself gives up on an ack after 3 s)."""
    keep_alive_seconds: int = Field(default=5, ge=1, le=300, alias="OPSBOT_KEEP_ALIVE_SECONDS")
    """uvicorn's ``timeout_keep_alive``: an idle keep-alive connection is closed after this long."""
    max_connections: int = Field(default=1_000, ge=2, le=100_000, alias="OPSBOT_MAX_CONNECTIONS")
    """Open connections per HTTP worker; past it, the oldest one still sending its headers (or idle) is closed."""
    urgent_commands: str = Field(default="rollback", pattern=r"^[a-z0-9_,-]*$", alias="OPSBOT_URGENT_COMMANDS")
    """Commands that skip the fair queue and use the reserved threads (comma-separated): never shed behind bulk work."""
    rate_per_minute: float = Field(default=30.0, gt=0, le=1_000_000, alias="OPSBOT_RATE_PER_MINUTE")
    """Commands one person may send per minute on average (a token bucket per person and HTTP worker)."""
    rate_burst: int = Field(default=10, ge=1, le=1_000_000, alias="OPSBOT_RATE_BURST")
    """Commands one person may send at once before the per-minute rate applies."""
    audit_key: SecretStr | None = Field(default=None, alias="OPSBOT_AUDIT_KEY")
    """HMAC key of the audit chain (at least 32 characters; best from a file no database role can read)."""
    audit_anchor_seconds: int = Field(default=600, ge=10, le=86_400, alias="OPSBOT_AUDIT_ANCHOR_SECONDS")
    """How often the chain's head is published (a JSON log line always, plus the sinks below)."""
    audit_anchor_s3: str | None = Field(
        default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", alias="OPSBOT_AUDIT_ANCHOR_S3"
    )
    """``s3://bucket/prefix``: each anchor as an object under Object Lock (the bucket must have Object Lock enabled)."""
    audit_anchor_s3_endpoint: str | None = Field(default=None, alias="OPSBOT_AUDIT_ANCHOR_S3_ENDPOINT")
    audit_anchor_s3_region: str | None = Field(default=None, alias="OPSBOT_AUDIT_ANCHOR_S3_REGION")
    audit_anchor_s3_retention_days: int = Field(default=365, ge=1, le=36_500, alias="OPSBOT_AUDIT_ANCHOR_S3_RETENTION_DAYS")
    audit_anchor_s3_mode: Literal["COMPLIANCE", "GOVERNANCE"] = Field(default="COMPLIANCE", alias="OPSBOT_AUDIT_ANCHOR_S3_MODE")
    audit_anchor_channel: str | None = Field(default=None, pattern=r"^[CG][A-Z0-9]{2,}$", alias="OPSBOT_AUDIT_ANCHOR_CHANNEL")
    """A Slack channel id to post each anchor to (a channel whose history the database's writers cannot edit)."""

    @field_validator("audit_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_AUDIT_KEY_CHARS:
            raise ValueError(f"OPSBOT_AUDIT_KEY must be at least {MIN_AUDIT_KEY_CHARS} characters (e.g. `openssl rand -hex 32`)")
        return value

    def urgent_command_names(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.urgent_commands.split(",") if name.strip())

    def audit_key_bytes(self) -> bytes | None:
        """The audit chain's HMAC key as bytes (None: the chain is plain SHA-256)."""
        return self.audit_key.get_secret_value().encode("utf-8") if self.audit_key is not None else None

    def safe_summary(self) -> dict[str, str]:
        """Settings as they may appear in logs: secrets say only whether they are set."""
        summary: dict[str, str] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                summary[name] = "set" if value.get_secret_value() else "unset"
            elif value is None:
                summary[name] = "unset"
            else:
                summary[name] = str(value)
        summary["database_url"] = redact_database_url(self.database_url.get_secret_value())
        return summary


def _from_environment(fields: Mapping[str, FieldInfo], given: Mapping[str, Any]) -> dict[str, Any]:
    """Each field's value by its variable name: the argument given (by variable or field name), ``NAME``, or ``NAME_FILE``'s content.

    A field found nowhere is left out, so it takes its default; arguments that name no field are ignored.
    """
    environ = {key.upper(): value for key, value in os.environ.items()}
    values: dict[str, Any] = {}
    for name, field in fields.items():
        alias = field.alias or name
        if alias in given or name in given:
            values[alias] = given[alias] if alias in given else given[name]
        elif alias.upper() in environ:
            values[alias] = environ[alias.upper()]
        elif f"{alias}_FILE".upper() in environ:
            values[alias] = _file_content(f"{alias}_FILE", environ[f"{alias}_FILE".upper()])
    return values


def _file_content(variable: str, path: str) -> str:
    """The stripped text of the file a ``*_FILE`` variable names (a mounted Secret ends with a newline)."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(f"{variable}={path}: cannot read the file ({error.strerror})") from None


def redact_database_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"
