"""boto3 sessions and clients, one per place and caller, shared safely across threads.

Why a cache: creating a boto3 Session reads config files and resolves credentials, and
assuming a role is an STS round trip; a deploy polls for minutes and the health watch
runs every minute, so both reuse what they made until the role credentials near expiry.

Why the caller is part of the key: when a target names a ``role_arn``, opsbot assumes it
with a RoleSessionName derived from the Slack user, so CloudTrail shows who asked rather
than "opsbot". Throttling and transient errors are retried by botocore (``Config``
retries from ``AwsAccess``), never by hand; ``AwsAccess.endpoint_url`` (or the standard
``AWS_ENDPOINT_URL`` variables when it is unset) and the standard credential chain apply.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict, TypeVar, cast

from bot.catalog.config import AsgTarget, AwsAccess, EcsTarget

if TYPE_CHECKING:  # boto3 itself is imported when a session is first made: `opsbot validate` never makes one
    import boto3
    from botocore.config import Config
    from mypy_boto3_autoscaling.client import AutoScalingClient
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_sts.client import STSClient
    from mypy_boto3_sts.type_defs import TagTypeDef

_ClientT = TypeVar("_ClientT")

SESSION_NAME_MAX = 64
_SESSION_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9_+=,.@-]+")
DEFAULT_REFRESH_BEFORE = timedelta(minutes=5)
DEFAULT_ROLE_SECONDS = 3600


@dataclass(frozen=True)
class Actor:
    """Who a call is made for: the Slack user, or the bot itself (``BOT_ACTOR``).

    With ``identity:`` configured, ``source_identity`` and ``tags`` go on AssumeRole: CloudTrail
    then names the requester in every call of the session (SourceIdentity cannot be changed
    later in a role chain), and ``transitive`` tags follow any role assumed from it.
    """

    id: str
    name: str
    source_identity: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transitive: bool = True


BOT_ACTOR = Actor(id="", name="")
"""Digests and the health watch act as the bot: RoleSessionName ``opsbot``."""


@dataclass(frozen=True)
class AwsPlace:
    """Where calls go and with which identity: the session cache key without the caller."""

    region: str
    profile: str | None = None
    role_arn: str | None = None

    @classmethod
    def of(cls, target: EcsTarget | AsgTarget) -> AwsPlace:
        return cls(region=target.region, profile=target.profile, role_arn=target.role_arn)

    def without_role(self) -> AwsPlace:
        return AwsPlace(region=self.region, profile=self.profile)


def role_session_name(actor: Actor) -> str:
    """``opsbot-<name>-<id>`` in STS's alphabet ``[A-Za-z0-9_+=,.@-]``, at most 64 chars.

    The Slack id is kept whole (it is what tells two "alex"es apart); the display name
    is transliterated to ASCII and shortened to make room for it.
    """
    name = _session_name_part(actor.name)
    ident = _session_name_part(actor.id)[: SESSION_NAME_MAX - len("opsbot-")]
    suffix = f"-{ident}" if ident and ident != name else ""
    head = f"opsbot-{name}" if name else "opsbot"
    return head[: SESSION_NAME_MAX - len(suffix)].rstrip("-") + suffix


def _session_name_part(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SESSION_NAME_DISALLOWED.sub("-", ascii_text).strip("-")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Entry:
    """One boto3 Session and the clients made from it; ``expires_at`` for role sessions."""

    session: boto3.Session
    expires_at: datetime | None = None
    clients: dict[str, object] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fresh_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


_Key = tuple[str, str | None, str | None, str | None, str | None, tuple[tuple[str, str], ...]]


class _ClientArgs(TypedDict):
    region_name: str
    config: Config
    endpoint_url: str | None


class AwsSessions:
    """Thread-safe cache: (region, profile) → Session; with a role, also per caller.

    boto3 Sessions are not thread-safe but clients are, so clients are created under a
    per-entry lock and then shared. Role credentials are re-assumed ``refresh_before``
    their expiry; callers fetch a client per AWS call so long waits pick up new ones.
    """

    def __init__(
        self,
        access: AwsAccess,
        *,
        now: Callable[[], datetime] = _utcnow,
        refresh_before: timedelta = DEFAULT_REFRESH_BEFORE,
        role_seconds: int = DEFAULT_ROLE_SECONDS,
    ) -> None:
        self._access = access
        self._now = now
        self._refresh_before = refresh_before
        self._role_seconds = role_seconds
        # ``total_max_attempts`` counts the first call, as AwsAccess.max_attempts (and the
        # AWS config file's max_attempts) do; botocore's ``max_attempts`` key counts retries.
        from botocore.config import Config

        self.config = Config(
            retries={"mode": access.retry_mode, "total_max_attempts": access.max_attempts},
            user_agent_extra="opsbot",
        )
        self._lock = threading.Lock()
        self._key_locks: dict[_Key, threading.Lock] = {}
        self._entries: dict[_Key, _Entry] = {}

    def ecs(self, place: AwsPlace, actor: Actor = BOT_ACTOR) -> ECSClient:
        return self._client(place, actor, "ecs", lambda s: s.client("ecs", **self._client_args(place)))

    def autoscaling(self, place: AwsPlace, actor: Actor = BOT_ACTOR) -> AutoScalingClient:
        return self._client(place, actor, "autoscaling", lambda s: s.client("autoscaling", **self._client_args(place)))

    def sts(self, place: AwsPlace, actor: Actor = BOT_ACTOR) -> STSClient:
        return self._client(place, actor, "sts", lambda s: s.client("sts", **self._client_args(place)))

    def session(self, place: AwsPlace, actor: Actor = BOT_ACTOR) -> boto3.Session:
        """The Session that calls for ``place`` made on behalf of ``actor`` use."""
        return self._entry(place, actor).session

    def _client_args(self, place: AwsPlace) -> _ClientArgs:
        # endpoint_url=None lets botocore read AWS_ENDPOINT_URL(_<SERVICE>) itself.
        return {"region_name": place.region, "config": self.config, "endpoint_url": self._access.endpoint_url}

    def _client(self, place: AwsPlace, actor: Actor, service: str, make: Callable[[boto3.Session], _ClientT]) -> _ClientT:
        entry = self._entry(place, actor)
        with entry.lock:
            client = entry.clients.get(service)
            if client is None:
                client = make(entry.session)
                entry.clients[service] = client
        return cast(_ClientT, client)

    def _entry(self, place: AwsPlace, actor: Actor) -> _Entry:
        key = self._key(place, actor)
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is None or not entry.fresh_at(self._now() + self._refresh_before):
                entry = self._assume(place, actor) if place.role_arn else self._open(place)
                self._entries[key] = entry
                self._forget_expired()
            return entry

    def _forget_expired(self) -> None:
        """Drop expired role sessions: with session tags naming the request, each request has its own."""
        now = self._now()
        with self._lock:
            for key in [key for key, entry in self._entries.items() if not entry.fresh_at(now)]:
                del self._entries[key]

    def _key(self, place: AwsPlace, actor: Actor) -> _Key:
        if not place.role_arn:
            return (place.region, place.profile, None, None, None, ())
        return (place.region, place.profile, place.role_arn, role_session_name(actor), actor.source_identity, actor.tags)

    def _lock_for(self, key: _Key) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _open(self, place: AwsPlace) -> _Entry:
        import boto3

        return _Entry(session=boto3.Session(profile_name=place.profile, region_name=place.region))

    def _assume(self, place: AwsPlace, actor: Actor) -> _Entry:
        """Assume ``place.role_arn`` with the base credentials of (region, profile)."""
        assert place.role_arn is not None
        sts = self.sts(place.without_role())
        if actor.source_identity is not None:
            tags: list[TagTypeDef] = [{"Key": key, "Value": value} for key, value in actor.tags]
            response = sts.assume_role(
                RoleArn=place.role_arn,
                RoleSessionName=role_session_name(actor),
                DurationSeconds=self._role_seconds,
                SourceIdentity=actor.source_identity,
                Tags=tags,
                TransitiveTagKeys=[key for key, _ in actor.tags] if actor.transitive else [],
            )
        else:
            response = sts.assume_role(RoleArn=place.role_arn, RoleSessionName=role_session_name(actor), DurationSeconds=self._role_seconds)
        credentials = response["Credentials"]
        import boto3

        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=place.region,
        )
        return _Entry(session=session, expires_at=credentials["Expiration"])
