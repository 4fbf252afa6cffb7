"""EKS clusters without exec plugins: endpoint and CA from ``eks.describe_cluster``, bearer tokens made here.

Why: an EKS kubeconfig runs ``aws eks get-token`` as an ``exec`` credential plugin, which the
image does not ship, and static tokens are what security teams refuse. The token is what
aws-iam-authenticator makes: a presigned STS ``GetCallerIdentity`` URL (GET,
``X-Amz-Expires=60``) whose signature covers the ``x-k8s-aws-id: <cluster>`` header, base64url
without padding, prefixed ``k8s-aws-v1.``. EKS accepts one for about 15 minutes after it was
signed; opsbot makes a new one well before that (``REFRESH_AFTER``), through the client
configuration's refresh hook, so a long rollout never sends a stale token.

Credentials come from boto3's default chain (environment, IRSA web identity, EKS Pod Identity,
instance profile), optionally through ``role_arn``.
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError
from kubernetes import client as k8s

from bot.catalog.config import EksCluster
from bot.errors import ActionFailed

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the token format's fixed prefix, not a secret
CLUSTER_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_SECONDS = 60
TOKEN_LIFETIME_SECONDS = 15 * 60
REFRESH_AFTER = 10 * 60
"""Make a new token once the old one is this old: five minutes of margin before EKS stops accepting it."""

ROLE_MARGIN = timedelta(minutes=5)

Clock = Callable[[], float]


def make_token(credentials: ReadOnlyCredentials, cluster: str, region: str) -> str:
    """A bearer token for ``cluster``: ``k8s-aws-v1.`` + base64url(presigned GetCallerIdentity URL), no padding."""
    url = f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(method="GET", url=url, headers={CLUSTER_HEADER: cluster})
    SigV4QueryAuth(credentials, "sts", region, expires=PRESIGN_EXPIRES_SECONDS).add_auth(request)
    encoded = base64.urlsafe_b64encode(str(request.url).encode("utf-8")).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + encoded


@dataclass
class _Token:
    value: str
    made_at: float


class EksTokens:
    """The current token of one cluster, made again when it is ``REFRESH_AFTER`` old (thread-safe)."""

    def __init__(self, spec: EksCluster, credentials: Callable[[], ReadOnlyCredentials], *, clock: Clock = time.monotonic) -> None:
        self._spec = spec
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def current(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._token.made_at >= REFRESH_AFTER:
                self._token = _Token(make_token(self._credentials(), self._spec.cluster, self._spec.region), now)
            return self._token.value

    def refresh_hook(self, configuration: k8s.Configuration) -> None:
        """The client's ``refresh_api_key_hook``: called before each request, cheap unless the token is due."""
        configuration.api_key["BearerToken"] = f"Bearer {self.current()}"


def eks_configuration(
    spec: EksCluster, configuration: k8s.Configuration, *, endpoint_url: str | None = None, clock: Clock = time.monotonic
) -> k8s.Configuration:
    """Fill ``configuration`` for ``spec``: host and CA from ``describe_cluster``, tokens from ``EksTokens``."""
    credentials = AwsCredentials(spec, endpoint_url)
    eks: Any = credentials.session().client("eks", region_name=spec.region, endpoint_url=endpoint_url)
    try:
        cluster = eks.describe_cluster(name=spec.cluster)["cluster"]
    except (BotoCoreError, ClientError) as error:
        raise ActionFailed(f"cannot describe EKS cluster {spec.cluster} in {spec.region}: {error}") from error
    endpoint = cluster.get("endpoint")
    ca_data = (cluster.get("certificateAuthority") or {}).get("data")
    if not endpoint or not ca_data:
        raise ActionFailed(f"EKS cluster {spec.cluster} in {spec.region} has no endpoint or CA yet (status {cluster.get('status')})")
    configuration.host = endpoint
    configuration.ssl_ca_cert = _ca_file(ca_data)
    tokens = EksTokens(spec, credentials.frozen, clock=clock)
    configuration.refresh_api_key_hook = tokens.refresh_hook  # type: ignore[assignment]
    tokens.refresh_hook(configuration)
    return configuration


class AwsCredentials:
    """boto3's default chain, or ``role_arn`` assumed with it and assumed again before it expires."""

    def __init__(self, spec: EksCluster, endpoint_url: str | None) -> None:
        self._spec = spec
        self._endpoint_url = endpoint_url
        self._base = boto3.Session(region_name=spec.region)
        self._assumed: tuple[boto3.Session, datetime] | None = None
        self._lock = threading.Lock()

    def session(self) -> boto3.Session:
        if self._spec.role_arn is None:
            return self._base
        with self._lock:
            if self._assumed is None or self._assumed[1] - datetime.now(UTC) < ROLE_MARGIN:
                self._assumed = self._assume(self._spec.role_arn)
            return self._assumed[0]

    def frozen(self) -> ReadOnlyCredentials:
        credentials: Any = self.session().get_credentials()
        if credentials is None:
            raise ActionFailed("no AWS credentials for the EKS token (boto3's default chain found none)")
        frozen: ReadOnlyCredentials = credentials.get_frozen_credentials()
        return frozen

    def _assume(self, role_arn: str) -> tuple[boto3.Session, datetime]:
        sts = self._base.client("sts", region_name=self._spec.region, endpoint_url=self._endpoint_url)
        try:
            answer = sts.assume_role(RoleArn=role_arn, RoleSessionName="opsbot-eks")
        except (BotoCoreError, ClientError) as error:
            raise ActionFailed(f"cannot assume {role_arn} for EKS cluster {self._spec.cluster}: {error}") from error
        credentials = answer["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self._spec.region,
        )
        return session, credentials["Expiration"]


def _ca_file(ca_data: str) -> str:
    """The cluster CA as a file (the client takes a path); kept for the life of the process."""
    pem = base64.b64decode(ca_data)
    with tempfile.NamedTemporaryFile(prefix="opsbot-eks-ca-", suffix=".pem", delete=False) as handle:
        handle.write(pem)
        return handle.name
