"""Turn botocore failures into messages a person in Slack can act on.

Why here: boto3 raises ``ClientError`` with an error code and an AWS message that rarely
says which region, cluster or service the bot was talking to. Every AWS call in this
backend runs inside ``aws_errors(resource)``, the one place that maps those failures to
``ActionFailed`` (permanent: fix the config or the IAM policy) or ``TemporaryActionError``
(throttling after botocore's own retries, 5xx, network: trying again can help).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bot.errors import ActionFailed, TemporaryActionError

if TYPE_CHECKING:
    # botocore is imported where an error is mapped, not here: `opsbot validate` imports the AWS
    # actions for their argument models and never calls AWS (docs/benchmarks.md, start-up).
    from botocore.exceptions import BotoCoreError, ClientError

ResourceKind = Literal["ecs", "asg"]

ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnauthorizedException"})
BAD_CREDENTIALS_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
INVALID_REQUEST_CODES = frozenset(
    {"InvalidParameterException", "ValidationError", "ValidationException", "InvalidParameterValue", "ClientException"}
)
BUSY_CODES = frozenset({"ScalingActivityInProgress", "ResourceInUse", "ResourceContention"})
SERVER_CODES = frozenset({"ServerException", "InternalFailure", "InternalError", "ServiceUnavailable", "ServiceUnavailableException"})

_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)
_SERVICE_PREFIX = {"ecs": "ecs", "asg": "autoscaling"}
_STS_OPERATIONS = frozenset({"AssumeRole", "GetCallerIdentity"})


@dataclass(frozen=True)
class AwsResource:
    """What a call was about, so every message names region, cluster and service."""

    kind: ResourceKind
    region: str
    name: str
    cluster: str | None = None
    role_arn: str | None = None

    def describe(self) -> str:
        if self.kind == "ecs":
            return f"ECS service {self.name} in cluster {self.cluster} ({self.region})"
        return f"Auto Scaling group {self.name} ({self.region})"

    def via_role(self) -> str:
        return f" using role {self.role_arn}" if self.role_arn else ""


@contextmanager
def aws_errors(resource: AwsResource) -> Iterator[None]:
    """The mapping boundary: botocore errors in the block leave as ``ActionFailed``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        raise from_client_error(error, resource) from error
    except BotoCoreError as error:
        raise from_botocore_error(error, resource) from error


def from_client_error(error: ClientError, resource: AwsResource) -> ActionFailed:
    """Classify an AWS error response by code (and HTTP status when the code is odd)."""
    code = error_code(error)
    status = http_status(error)
    message = aws_message(error)
    operation = qualified_operation(error.operation_name, resource)
    where = resource.describe()
    details = f"{operation} {code} (HTTP {status}): {message}"

    if error.operation_name == "AssumeRole":
        return ActionFailed(
            f"opsbot could not assume role {resource.role_arn} for {where}: {code}: {message}",
            details=details,
        )
    if code == "ClusterNotFoundException":
        return ActionFailed(
            f"ECS cluster {resource.cluster} was not found in {resource.region} "
            f"(looking for service {resource.name}); check the cluster name and region in the config.",
            details=details,
        )
    if code in ("ServiceNotFoundException", "ServiceNotActiveException"):
        return not_found(resource, details=details)
    if code in ACCESS_DENIED_CODES or (status == 403 and code not in BAD_CREDENTIALS_CODES):
        return ActionFailed(
            f"AWS denied {operation} on {where}{resource.via_role()}: {message}. The IAM policy opsbot uses must allow {operation}.",
            details=details,
        )
    if code in BAD_CREDENTIALS_CODES:
        return ActionFailed(
            f"AWS rejected opsbot's credentials ({code}) for {where}{resource.via_role()}: {message}",
            details=details,
        )
    if code in THROTTLING_CODES:
        return TemporaryActionError(
            f"AWS kept throttling {operation} for {where} after {attempts(error)} attempts; try again in a minute.",
            details=details,
        )
    if code in BUSY_CODES:
        return TemporaryActionError(f"{where} is busy ({code}): {message}; try again shortly.", details=details)
    if code in SERVER_CODES or status >= 500:
        return TemporaryActionError(f"AWS had an internal error on {operation} for {where} ({code}); try again.", details=details)
    if code in INVALID_REQUEST_CODES:
        return ActionFailed(f"AWS rejected {operation} for {where}: {message}", details=details)
    return ActionFailed(f"{operation} failed for {where}: {code}: {message}", details=details)


def from_botocore_error(error: BotoCoreError, resource: AwsResource) -> ActionFailed:
    """Errors before or without an AWS response: network, credentials, local config."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import (
        CredentialRetrievalError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    where = resource.describe()
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return TemporaryActionError(f"could not reach AWS in {resource.region} for {where}: {error}; try again.", details=repr(error))
    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ActionFailed(f"opsbot has no usable AWS credentials for {where}: {error}", details=repr(error))
    if isinstance(error, ProfileNotFound):
        return ActionFailed(f"AWS profile for {where} is not configured: {error}", details=repr(error))
    return ActionFailed(f"AWS call for {where} failed: {error}", details=repr(error))


def not_found(resource: AwsResource, *, details: str | None = None, state: str | None = None) -> ActionFailed:
    """Missing (or deleted/draining) service or group: a config problem, never retried."""
    what = "is " + state if state else "was not found"
    if resource.kind == "ecs":
        return ActionFailed(
            f"ECS service {resource.name} {what} in cluster {resource.cluster} ({resource.region}); check the service name in the config.",
            details=details,
        )
    return ActionFailed(
        f"Auto Scaling group {resource.name} {what} in {resource.region}; check the group name in the config.",
        details=details,
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def attempts(error: ClientError) -> int:
    """How many times botocore tried (its retries included) before giving up."""
    return int(error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1


def aws_message(error: ClientError) -> str:
    """The AWS message, unwrapped when an endpoint sent an XML body to a JSON client."""
    message = str(error.response.get("Error", {}).get("Message", "")).strip()
    if message.startswith("<"):
        found = _XML_MESSAGE.search(message)
        message = found.group(1).strip() if found else "(no message)"
    return message or "(no message)"


def qualified_operation(operation_name: str, resource: AwsResource) -> str:
    """``ecs:UpdateService``: the IAM action name, which is what a policy must allow."""
    prefix = "sts" if operation_name in _STS_OPERATIONS else _SERVICE_PREFIX[resource.kind]
    return f"{prefix}:{operation_name}"
