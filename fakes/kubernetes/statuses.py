"""Kubernetes ``Status`` failure bodies, built the way apimachinery builds them.

Every helper mirrors a constructor in ``k8s.io/apimachinery/pkg/api/errors``
(message wording, ``reason``, ``details``) because clients branch on exactly
these fields: the official Python client surfaces them in ``ApiException.body``
and kubectl prints the message verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fakes.kubernetes.json_values import JsonObject


@dataclass(frozen=True)
class GroupResource:
    """An API group plus a plural resource name, e.g. ``deployments.apps``."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


DEPLOYMENTS = GroupResource("apps", "deployments")
REPLICASETS = GroupResource("apps", "replicasets")
PODS = GroupResource("", "pods")
NAMESPACES = GroupResource("", "namespaces")

OPTIMISTIC_LOCK_MESSAGE = "the object has been modified; please apply your changes to the latest version and try again"


@dataclass(frozen=True)
class GoRepr:
    """A value already rendered the way Go's ``%#v`` would print it."""

    text: str


_ERROR_TYPES: dict[str, tuple[str, str]] = {
    # kind: (human prefix used in messages, CauseType used in details.causes)
    "required": ("Required value", "FieldValueRequired"),
    "invalid": ("Invalid value", "FieldValueInvalid"),
    "duplicate": ("Duplicate value", "FieldValueDuplicate"),
    "not_supported": ("Unsupported value", "FieldValueNotSupported"),
    "forbidden": ("Forbidden", "FieldValueForbidden"),
}


def render_bad_value(value: Any) -> str:
    """Render a rejected value like ``field.Error`` does (strings quoted)."""
    if isinstance(value, GoRepr):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    """One validation failure, equivalent to Go's ``field.Error``."""

    kind: str
    field: str
    detail: str = ""
    bad_value: Any = None

    def body(self) -> str:
        """The message without the field path (``ErrorBody`` in Go)."""
        prefix = _ERROR_TYPES[self.kind][0]
        text = prefix
        if self.kind in ("invalid", "duplicate", "not_supported"):
            text = f"{prefix}: {render_bad_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def cause(self) -> JsonObject:
        """The ``details.causes`` entry clients read to find the bad field."""
        return {"reason": _ERROR_TYPES[self.kind][1], "message": self.body(), "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def required(path: str, detail: str = "") -> FieldError:
    """A missing mandatory field."""
    return FieldError("required", path, detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    """A field whose value breaks a rule."""
    return FieldError("invalid", path, detail, value)


def duplicate(path: str, value: Any) -> FieldError:
    """A value that must be unique within its list."""
    return FieldError("duplicate", path, "", value)


def not_supported(path: str, value: Any, supported: Sequence[str]) -> FieldError:
    """An enum field with a value outside its allowed set."""
    allowed = ", ".join(json.dumps(s) for s in supported)
    return FieldError("not_supported", path, f"supported values: {allowed}", value)


def forbidden(path: str, detail: str) -> FieldError:
    """A field that may not be set in this combination."""
    return FieldError("forbidden", path, detail)


@dataclass
class ApiError(Exception):
    """A request failure carrying the exact ``Status`` body to send back."""

    code: int
    message: str
    reason: str = ""
    details: JsonObject | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> JsonObject:
        """Serialise as a ``v1 Status`` in the field order the apiserver uses."""
        body: JsonObject = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body["message"] = self.message
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(resource: GroupResource, name: str = "", **extra: Any) -> JsonObject:
    details: JsonObject = {}
    if name:
        details["name"] = name
    if resource.group:
        details["group"] = resource.group
    if resource.resource:
        details["kind"] = resource.resource
    details.update(extra)
    return details


def not_found(resource: GroupResource, name: str) -> ApiError:
    """``NewNotFound``: the named object does not exist."""
    return ApiError(404, f'{resource} "{name}" not found', "NotFound", _details(resource, name))


def not_found_path() -> ApiError:
    """The generic 404 for a path or resource the server does not serve."""
    return ApiError(404, "the server could not find the requested resource", "NotFound", {})


def already_exists(resource: GroupResource, name: str) -> ApiError:
    """``NewAlreadyExists``: create of a name that is taken."""
    return ApiError(409, f'{resource} "{name}" already exists', "AlreadyExists", _details(resource, name))


def conflict(resource: GroupResource, name: str, why: str = OPTIMISTIC_LOCK_MESSAGE) -> ApiError:
    """``NewConflict``: optimistic-concurrency or precondition failure."""
    message = f'Operation cannot be fulfilled on {resource} "{name}": {why}'
    return ApiError(409, message, "Conflict", _details(resource, name))


def invalid_object(group: str, kind: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    """``NewInvalid``: 422 with one ``details.causes`` entry per field error."""
    qualified = f"{kind}.{group}" if group else kind
    aggregate = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    message = f'{qualified} "{name}" is invalid: {aggregate}'
    details: JsonObject = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, message, "Invalid", details)


def bad_request(message: str) -> ApiError:
    """``NewBadRequest``: the request itself could not be understood."""
    return ApiError(400, message, "BadRequest")


def unprocessable() -> ApiError:
    """What a failed JSON Patch operation turns into on a real apiserver.

    ``NewGenericServerResponse(422, ...)`` discards the underlying error text,
    which is why kubectl only says "the server rejected our request due to an
    error in our request" when a ``test`` op fails.
    """
    return ApiError(422, "the server rejected our request due to an error in our request", "Invalid", {})


def unknown_error(message: str, code: int = 500) -> ApiError:
    """A plain Go error that reached the response writer without a Status.

    Such errors become code 500 with an empty reason; the strategic merge
    patch "does not contain declared merge key" failure is the famous one.
    """
    return ApiError(code, message)


def internal_error(cause: str) -> ApiError:
    """``NewInternalError``."""
    return ApiError(500, f"Internal error occurred: {cause}", "InternalError", {"causes": [{"message": cause}]})


def forbidden_request(
    resource: GroupResource,
    name: str,
    *,
    user: str,
    verb: str,
    resource_path: str,
    namespace: str | None,
) -> ApiError:
    """The RBAC denial the authorization filter returns, word for word."""
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    why = f'User "{user}" cannot {verb} resource "{resource_path}" in API group "{resource.group}" {scope}'
    subject = f'{resource} "{name}"' if name else str(resource)
    return ApiError(403, f"{subject} is forbidden: {why}", "Forbidden", _details(resource, name))


def unauthorized() -> ApiError:
    """Authentication failure (a wrong bearer token)."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed() -> ApiError:
    """The verb is not served on this path."""
    return ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed", {})


def unsupported_media_type(accepted: Iterable[str]) -> ApiError:
    """The negotiation error for a Content-Type the endpoint cannot decode."""
    listing = ", ".join(accepted)
    message = f"the body of the request was in an unknown format - accepted media types include: {listing}"
    return ApiError(415, message, "UnsupportedMediaType")


_GENERIC: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be processing the request",
    ),
}


def generic(code: int) -> ApiError:
    """A Status for an arbitrary HTTP code, used by injected faults."""
    reason, message = _GENERIC.get(code, ("InternalError", f"an error on the server ({code}) has prevented the request"))
    details: JsonObject = {}
    headers: dict[str, str] = {}
    if code == 500:
        details = {"causes": [{"message": "injected fault"}]}
    if code in (429, 503):
        details = {"retryAfterSeconds": 1}
        headers["Retry-After"] = "1"
    return ApiError(code, message, reason, details, headers)
