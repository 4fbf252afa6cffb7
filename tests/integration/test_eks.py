"""EKS without exec plugins: the token opsbot makes passes a verifier, is made again before it expires,
and the endpoint and CA come from ``eks.describe_cluster`` (moto over HTTP).

The verifier does what EKS's authenticator does before it forwards the URL to STS: decode the
token, check it is a GetCallerIdentity GET to STS, that ``x-k8s-aws-id`` is signed and names the
cluster, that it is not expired, and that the SigV4 signature is the one the credentials give.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
import yaml
from botocore.credentials import ReadOnlyCredentials
from click.testing import CliRunner
from kubernetes import client as k8s
from moto.server import ThreadedMotoServer

from bot.backends.kubernetes.eks import REFRESH_AFTER, TOKEN_LIFETIME_SECONDS, EksTokens, eks_configuration, make_token
from bot.catalog.config import EksCluster, Environment, KubernetesAccess, KubernetesTarget, OpsbotConfig, Service
from bot.catalog.kubeconfig_check import exec_plugin_problems
from bot.cli.main import main
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS

REGION = "eu-west-1"
ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDENTIALS = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)


def verify_token(token: str, *, cluster: str, credentials: ReadOnlyCredentials, now: datetime) -> dict[str, str]:
    """Raise AssertionError unless ``token`` is one EKS would accept for ``cluster`` at ``now``."""
    assert token.startswith("k8s-aws-v1."), "the token carries the k8s-aws-v1. prefix"
    encoded = token[len("k8s-aws-v1.") :]
    assert "=" not in encoded, "base64url without padding"
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == f"sts.{REGION}.amazonaws.com" and parts.path == "/"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert query["Action"] == "GetCallerIdentity" and query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    signed = query["X-Amz-SignedHeaders"].split(";")
    assert "x-k8s-aws-id" in signed and "host" in signed, "the cluster header is signed"
    key_id, day, region, service, terminal = query["X-Amz-Credential"].split("/")
    assert (key_id, region, service, terminal) == (credentials.access_key, REGION, "sts", "aws4_request")
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert day == signed_at.strftime("%Y%m%d")
    assert timedelta(0) <= now - signed_at < timedelta(seconds=TOKEN_LIFETIME_SECONDS), "not expired"
    signature = query.pop("X-Amz-Signature")
    assert len(signature) == 64 and all(c in "0123456789abcdef" for c in signature)
    headers = {"host": parts.netloc, "x-k8s-aws-id": cluster}
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in signed)
    canonical = "\n".join(["GET", "/", canonical_query, canonical_headers, ";".join(signed), hashlib.sha256(b"").hexdigest()])
    scope = f"{day}/{REGION}/sts/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, REGION, "sts", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == signature, "the signature is the credentials' own"
    return query


def test_the_token_is_a_signed_get_caller_identity_for_the_cluster() -> None:
    token = make_token(CREDENTIALS, "prod-eu", REGION)
    verify_token(token, cluster="prod-eu", credentials=CREDENTIALS, now=datetime.now(UTC))


def test_a_token_for_another_cluster_does_not_verify() -> None:
    token = make_token(CREDENTIALS, "staging-eu", REGION)
    with pytest.raises(AssertionError, match="signature"):
        verify_token(token, cluster="prod-eu", credentials=CREDENTIALS, now=datetime.now(UTC))


def test_the_token_is_made_again_before_its_fifteen_minutes_are_up() -> None:
    now = [1000.0]
    made: list[int] = []

    def credentials() -> ReadOnlyCredentials:
        made.append(1)
        return CREDENTIALS

    tokens = EksTokens(EksCluster(cluster="prod-eu", region=REGION), credentials, clock=lambda: now[0])
    configuration = k8s.Configuration()
    tokens.refresh_hook(configuration)
    first = configuration.api_key["BearerToken"]
    assert first.startswith("Bearer k8s-aws-v1.") and len(made) == 1
    now[0] += REFRESH_AFTER - 1
    tokens.refresh_hook(configuration)
    assert len(made) == 1, "a young token is reused"
    now[0] += 1
    tokens.refresh_hook(configuration)
    assert len(made) == 2, "an old one is made again"
    assert REFRESH_AFTER < TOKEN_LIFETIME_SECONDS - 60, "with minutes to spare before EKS stops accepting it"


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_endpoint_and_ca_come_from_describe_cluster_and_requests_carry_the_token(moto_url: str) -> None:
    eks = boto3.client("eks", endpoint_url=moto_url, region_name=REGION)
    eks.create_cluster(name="prod-eu", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    described = eks.describe_cluster(name="prod-eu")["cluster"]
    configuration = eks_configuration(EksCluster(cluster="prod-eu", region=REGION), k8s.Configuration(), endpoint_url=moto_url)
    assert configuration.host == described["endpoint"]
    assert configuration.ssl_ca_cert is not None
    assert Path(configuration.ssl_ca_cert).read_bytes() == base64.b64decode(described["certificateAuthority"]["data"])
    header = str(configuration.auth_settings()["BearerToken"]["value"])
    assert header.startswith("Bearer ")
    verify_token(header.removeprefix("Bearer "), cluster="prod-eu", credentials=CREDENTIALS, now=datetime.now(UTC))


def _config_with_context(kubeconfig: Path, *, eks: dict[str, EksCluster] | None = None) -> OpsbotConfig:
    target = KubernetesTarget(context="prod-eu", namespace="shop", deployment="checkout")
    return OpsbotConfig(
        services={"checkout": Service(environments={"production": Environment(kubernetes=target)})},
        kubernetes=KubernetesAccess(kubeconfig=str(kubeconfig), eks=eks or {}),
    )


def test_a_context_needing_a_missing_exec_plugin_is_a_problem_naming_the_eks_alternative(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1", "kind": "Config", "current-context": "prod-eu",
                "clusters": [{"name": "prod-eu", "cluster": {"server": "https://example.eks.amazonaws.com"}}],
                "contexts": [{"name": "prod-eu", "context": {"cluster": "prod-eu", "user": "eks-user"}}],
                "users": [{"name": "eks-user", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                                 "command": "aws-opsbot-missing", "args": ["eks", "get-token"]}}}],
            }
        )
    )  # fmt: skip
    problems = exec_plugin_problems(_config_with_context(kubeconfig))
    assert len(problems) == 1
    assert "services.checkout.environments.production.kubernetes" in problems[0]
    assert "exec plugin 'aws-opsbot-missing', which is not on the PATH" in problems[0]
    assert "eks: {cluster: <name>, region: <region>}" in problems[0]
    listed = _config_with_context(kubeconfig, eks={"prod-eu": EksCluster(cluster="prod-eu", region=REGION)})
    assert exec_plugin_problems(listed) == [], "a context reached as an EKS cluster never runs the plugin"


def test_opsbot_validate_reports_the_exec_plugin_context_and_exits_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1", "kind": "Config", "current-context": "demo-staging",
                "clusters": [{"name": "c", "cluster": {"server": "https://example.invalid"}}],
                "contexts": [{"name": "demo-staging", "context": {"cluster": "c", "user": "token"}},
                             {"name": "demo-production", "context": {"cluster": "c", "user": "eks"}}],
                "users": [{"name": "token", "user": {"token": "abc"}},
                          {"name": "eks", "user": {"exec": {"command": "aws-opsbot-missing"}}}],
            }
        )
    )  # fmt: skip
    config = tmp_path / "opsbot.yaml"
    example = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    config.write_text(example.replace("# kubeconfig: /etc/opsbot/kubeconfig", f"kubeconfig: {kubeconfig}"), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "--config", str(config), "--runbooks", str(RUNBOOKS)])
    assert result.exit_code == 1
    assert "kubeconfig context 'demo-production'" in result.output and "exec plugin 'aws-opsbot-missing'" in result.output
    assert "demo-staging" not in result.output, "a context with a token is fine"
