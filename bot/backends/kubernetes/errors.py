"""Turn Kubernetes client failures into opsbot errors people can act on.

This is the one mapping boundary of the backend: every API call runs inside
``kube_errors(...)``, which converts ``ApiException`` and urllib3 transport errors into
``ActionFailed`` (permanent: forbidden, not found, invalid) or ``TemporaryActionError``
(retrying may help: 5xx, 409, 429, timeouts, refused connections). Messages always name
the cluster (kubeconfig context), namespace and object, because the same service runs
in several clusters and "forbidden" alone does not say where.

Response bodies are cut short before they travel anywhere: the user message carries only
the ``Status.message`` (truncated), ``details`` carries at most a short excerpt, and the
chained ``ApiException`` is scrubbed so a logged traceback cannot dump a huge (or
secret-bearing) body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from bot.errors import ActionFailed, TemporaryActionError

if TYPE_CHECKING:  # imported where an error is caught: importing the client costs ~0.5 s (bot.backends.kubernetes.client)
    import urllib3.exceptions
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

MAX_MESSAGE_CHARS = 300
MAX_DETAIL_CHARS = 500

_STATUS_WORDS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    410: "gone",
    415: "unsupported media type",
    422: "invalid",
    429: "too many requests",
    500: "internal error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}
_TEMPORARY_STATUSES = frozenset({409, 429})


class ChangedSinceRead(ActionFailed):
    """A write sent against a read (its ``resourceVersion`` as a precondition) found the object changed since: HTTP 409.

    Not temporary: sending the same write again cannot succeed. The step reads the object again
    and decides whether the change meanwhile matters (``SetImage``).
    """


@dataclass(frozen=True)
class KubeRef:
    """What a call was about: ``deployment shop/checkout in cluster prod-eu``.

    ``name`` is None for list calls (``deployments in namespace shop of cluster prod-eu``).
    """

    cluster: str
    namespace: str
    kind: str = "deployment"
    name: str | None = None

    def describe(self) -> str:
        if self.name is None:
            return f"{self.kind}s in namespace {self.namespace} of cluster {self.cluster}"
        return f"{self.kind} {self.namespace}/{self.name} in cluster {self.cluster}"

    def not_found(self) -> str:
        if self.name is None:
            return f"namespace {self.namespace} not found in cluster {self.cluster}"
        return f"no {self.kind} {self.name} in namespace {self.namespace} of cluster {self.cluster}"


@contextmanager
def kube_errors(verb: str, ref: KubeRef, *, forbidden: Callable[[str | None], str] | None = None) -> Iterator[None]:
    """Run one API call, re-raising its failure as an opsbot error (chained with ``from``).

    ``forbidden`` words a 403 for an impersonated call (who was refused what), given the
    cluster's own message: the person asking must learn it is *their* RBAC that refused.
    """
    import urllib3.exceptions  # both already loaded: a call is being made
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        if forbidden is not None and exc.status == 403:
            raise ActionFailed(forbidden(status_message(exc.body)), details=_excerpt(exc.body, MAX_DETAIL_CHARS)) from _scrubbed(exc)
        raise api_error(exc, verb, ref) from _scrubbed(exc)
    except urllib3.exceptions.HTTPError as exc:
        raise transport_error(exc, verb, ref) from exc


def api_error(exc: ApiException, verb: str, ref: KubeRef) -> ActionFailed:
    """Map an HTTP error status from the API server to an opsbot error."""
    status = int(exc.status or 0)
    message = status_message(exc.body)
    details = _excerpt(exc.body, MAX_DETAIL_CHARS)
    if status == 0:
        reason = _clip(str(exc.reason or "no response"), MAX_MESSAGE_CHARS)
        return ActionFailed(f"could not {verb} {ref.describe()}: {reason}", details=details)
    if status == 404:
        return ActionFailed(ref.not_found(), details=details)
    words = _STATUS_WORDS.get(status, str(exc.reason or "error").lower())
    suffix = f": {message}" if message else ""
    if status >= 500 or status in _TEMPORARY_STATUSES:
        text = f"Kubernetes could not {verb} {ref.describe()}: {words} ({status}){suffix}; try again"
        return TemporaryActionError(text, details=details)
    verb_phrase = "refused to" if status in (401, 403) else "rejected the request to"
    return ActionFailed(f"Kubernetes {verb_phrase} {verb} {ref.describe()}: {words} ({status}){suffix}", details=details)


def transport_error(exc: urllib3.exceptions.HTTPError, verb: str, ref: KubeRef) -> TemporaryActionError:
    """Timeouts and refused/reset connections: the cluster may be back in a moment."""
    if _is_timeout(exc):
        text = f"Kubernetes did not answer in time when asked to {verb} {ref.describe()}; try again"
    else:
        text = f"could not reach Kubernetes to {verb} {ref.describe()}: {_clip(_root_cause(exc), MAX_MESSAGE_CHARS)}; try again"
    return TemporaryActionError(text, details=type(exc).__name__)


def config_error(exc: ConfigException | OSError | yaml.YAMLError, cluster: str, source: str) -> ActionFailed:
    """A kubeconfig or in-cluster config that cannot be loaded: fix the config, not retry."""
    return ActionFailed(f"cannot load Kubernetes credentials for cluster {cluster} from {source}: {_clip(str(exc), MAX_MESSAGE_CHARS)}")


def status_message(body: str | bytes | None) -> str | None:
    """The ``message`` of a ``kind: Status`` body, truncated; None for any other body."""
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not isinstance(parsed, dict) or not parsed.get("message"):
        return None
    return _clip(str(parsed["message"]), MAX_MESSAGE_CHARS)


def _scrubbed(exc: ApiException) -> ApiException:
    """Cut the body and drop headers/data of the chained exception (its ``str`` prints them)."""
    exc.body = _excerpt(exc.body, MAX_DETAIL_CHARS)
    exc.headers = None
    exc.data = None
    return exc


def _is_timeout(exc: BaseException) -> bool:
    """A read/connect timeout, not a refused connection.

    urllib3 2 makes ``NewConnectionError`` a ``ConnectTimeoutError`` for backwards
    compatibility, so a refused connection must be ruled out first.
    """
    import urllib3.exceptions

    reason = getattr(exc, "reason", None)
    for candidate in (exc, reason):
        if isinstance(candidate, urllib3.exceptions.NewConnectionError):
            return False
        if isinstance(candidate, urllib3.exceptions.TimeoutError):
            return True
    return False


def _root_cause(exc: BaseException) -> str:
    """The innermost reason (``connection refused``) rather than urllib3's nested wrappers."""
    current = exc
    for _ in range(5):
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        if inner is None:
            break
        current = inner
    text = str(current)
    if isinstance(current, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    if isinstance(current, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(current, OSError) and current.strerror:
        return current.strerror
    return text or type(current).__name__


def _excerpt(body: str | bytes | None, limit: int) -> str | None:
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return _clip(text, limit)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
