"""What the apps/v1 Deployment registry does to an object before storing it.

Three steps, in the apiserver's order: a *decode check* (the JSON must fit the
Go types, or the write is rejected before anything else), *defaulting*
(``SetDefaults_Deployment`` and the pod defaults a client reads back), and
*validation* (``ValidateDeployment``/``ValidateDeploymentUpdate``), which yields
the 422 ``Invalid`` causes clients show to users. Only the rules a ChatOps
client can plausibly trip are reproduced, with the real messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fakes.kubernetes.deployutil import is_valid_int_or_percent, scaled_value
from fakes.kubernetes.json_values import JsonObject, child, dig, go_json_type, json_equal
from fakes.kubernetes.selectors import matches, requirements_from_label_selector
from fakes.kubernetes.statuses import (
    FieldError,
    GoRepr,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex "
    "used for validation is '[0-9]+%')"
)


class DecodeError(ValueError):
    """The JSON does not fit the Go types (``json: cannot unmarshal ...``)."""


# -- decode check ------------------------------------------------------------

_Check = tuple[tuple[str, ...], str, str, Callable[[Any], bool]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


_DEPLOYMENT_CHECKS: tuple[_Check, ...] = (
    (("metadata",), "Deployment.metadata", "v1.ObjectMeta", lambda v: isinstance(v, dict)),
    (("metadata", "name"), "ObjectMeta.metadata.name", "string", lambda v: isinstance(v, str)),
    (("metadata", "labels"), "ObjectMeta.metadata.labels", "map[string]string", _is_str_map),
    (("metadata", "annotations"), "ObjectMeta.metadata.annotations", "map[string]string", _is_str_map),
    (("spec",), "Deployment.spec", "v1.DeploymentSpec", lambda v: isinstance(v, dict)),
    (("spec", "replicas"), "DeploymentSpec.spec.replicas", "int32", _is_int),
    (("spec", "minReadySeconds"), "DeploymentSpec.spec.minReadySeconds", "int32", _is_int),
    (("spec", "revisionHistoryLimit"), "DeploymentSpec.spec.revisionHistoryLimit", "int32", _is_int),
    (("spec", "progressDeadlineSeconds"), "DeploymentSpec.spec.progressDeadlineSeconds", "int32", _is_int),
    (("spec", "paused"), "DeploymentSpec.spec.paused", "bool", lambda v: isinstance(v, bool)),
    (("spec", "selector"), "DeploymentSpec.spec.selector", "v1.LabelSelector", lambda v: isinstance(v, dict)),
    (("spec", "strategy"), "DeploymentSpec.spec.strategy", "v1.DeploymentStrategy", lambda v: isinstance(v, dict)),
    (("spec", "template"), "DeploymentSpec.spec.template", "v1.PodTemplateSpec", lambda v: isinstance(v, dict)),
    (("spec", "template", "metadata"), "PodTemplateSpec.spec.template.metadata", "v1.ObjectMeta", lambda v: isinstance(v, dict)),
    (("spec", "template", "spec"), "PodTemplateSpec.spec.template.spec", "v1.PodSpec", lambda v: isinstance(v, dict)),
    (
        ("spec", "template", "spec", "containers"),
        "PodSpec.spec.template.spec.containers",
        "[]v1.Container",
        lambda v: isinstance(v, list) and all(isinstance(c, dict) for c in v),
    ),
)


def decode_check_deployment(obj: JsonObject) -> None:
    """Raise :class:`DecodeError` if ``obj`` could not decode into a Deployment."""
    for path, go_field, go_type, ok in _DEPLOYMENT_CHECKS:
        value = dig(obj, *path)
        if value is not None and not ok(value):
            raise DecodeError(f"json: cannot unmarshal {go_json_type(value)} into Go struct field {go_field} of type {go_type}")
    for container in dig(obj, "spec", "template", "spec", "containers") or []:
        for name in ("name", "image"):
            value = container.get(name)
            if value is not None and not isinstance(value, str):
                raise DecodeError(
                    f"json: cannot unmarshal {go_json_type(value)} into Go struct field "
                    f"Container.spec.template.spec.containers.{name} of type string"
                )


# -- defaulting ----------------------------------------------------------------


def default_image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or untagged images, else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_container(container: JsonObject) -> None:
    """Fill the container fields the apiserver defaults."""
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", default_image_pull_policy(container["image"]))
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_pod_template(template: JsonObject) -> None:
    """Fill the pod spec defaults a client reads back from a real cluster."""
    child(template, "metadata")
    spec = child(template, "spec")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                default_container(container)


def default_deployment(obj: JsonObject) -> None:
    """``SetDefaults_Deployment`` plus the nested pod-template defaults."""
    obj["kind"] = "Deployment"
    obj["apiVersion"] = "apps/v1"
    spec = child(obj, "spec")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = child(spec, "strategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    default_pod_template(child(spec, "template"))
    child(obj, "status")


# -- validation ----------------------------------------------------------------


def _go_string_map(value: Any) -> GoRepr:
    items = ", ".join(f'"{k}":"{value[k]}"' for k in sorted(value or {}))
    return GoRepr(f"map[string]string{{{items}}}")


def _go_label_selector(selector: Any) -> GoRepr:
    selector = selector or {}
    labels = _go_string_map(selector.get("matchLabels")).text if selector.get("matchLabels") else "map[string]string(nil)"
    expressions = selector.get("matchExpressions")
    rendered = "[]v1.LabelSelectorRequirement(nil)" if not expressions else f"[]v1.LabelSelectorRequirement{expressions}"
    return GoRepr(f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{rendered}}}")


def validate_object_name(name: Any, *, path: str = "metadata.name") -> list[FieldError]:
    """Name present and a DNS-1123 subdomain."""
    if not name:
        return [required(path, "name or generateName is required")]
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [invalid(path, name, _SUBDOMAIN_MSG)]
    return []


def _validate_int_or_percent(value: Any, path: str) -> list[FieldError]:
    if not is_valid_int_or_percent(value):
        return [invalid(path, value, _PERCENT_MSG)]
    if isinstance(value, int) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def _validate_strategy(spec: JsonObject) -> list[FieldError]:
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type")
    if kind not in ("RollingUpdate", "Recreate"):
        return [not_supported("spec.strategy.type", kind, ["Recreate", "RollingUpdate"])]
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    rolling = rolling or {}
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    errors = _validate_int_or_percent(surge, "spec.strategy.rollingUpdate.maxSurge")
    errors += _validate_int_or_percent(unavailable, "spec.strategy.rollingUpdate.maxUnavailable")
    if errors:
        return errors
    if isinstance(unavailable, str) and scaled_value(unavailable, 100, round_up=False) > 100:
        errors.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable, "must not be greater than 100%"))
    if scaled_value(surge, 100, round_up=True) == 0 and scaled_value(unavailable, 100, round_up=False) == 0:
        errors.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0"))
    return errors


def _validate_container(container: JsonObject, path: str, seen: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    name = container.get("name")
    if not name:
        errors.append(required(f"{path}.name"))
    elif not _DNS1123_LABEL.match(name) or len(name) > 63:
        errors.append(invalid(f"{path}.name", name, _LABEL_MSG))
    elif name in seen:
        errors.append(duplicate(f"{path}.name", name))
    if name:
        seen.add(name)
    if not container.get("image"):
        errors.append(required(f"{path}.image"))
    policy = container.get("imagePullPolicy")
    if policy not in (None, "Always", "IfNotPresent", "Never"):
        errors.append(not_supported(f"{path}.imagePullPolicy", policy, ["Always", "IfNotPresent", "Never"]))
    for index, port in enumerate(container.get("ports") or []):
        number = port.get("containerPort") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(invalid(f"{path}.ports[{index}].containerPort", number, "must be between 1 and 65535, inclusive"))
    for index, variable in enumerate(container.get("env") or []):
        if not (isinstance(variable, dict) and variable.get("name")):
            errors.append(required(f"{path}.env[{index}].name"))
    return errors


def _validate_pod_template(spec: JsonObject) -> list[FieldError]:
    errors: list[FieldError] = []
    template = spec.get("template") or {}
    labels = dig(template, "metadata", "labels") or {}
    selector = spec.get("selector")
    if not selector:
        errors.append(required("spec.selector"))
    elif not requirements_from_label_selector(selector):
        errors.append(invalid("spec.selector", _go_label_selector(selector), "empty selector is invalid for deployment"))
    elif not matches(requirements_from_label_selector(selector), labels):
        errors.append(invalid("spec.template.metadata.labels", _go_string_map(labels), "`selector` does not match template `labels`"))
    pod = template.get("spec") or {}
    policy = pod.get("restartPolicy")
    if policy != "Always":
        errors.append(not_supported("spec.template.spec.restartPolicy", policy, ["Always"]))
    containers = pod.get("containers") or []
    if not containers:
        errors.append(required("spec.template.spec.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(key) or []):
            errors += _validate_container(container, f"spec.template.spec.{key}[{index}]", seen)
    return errors


def _non_negative(spec: JsonObject, name: str) -> list[FieldError]:
    value = spec.get(name)
    if isinstance(value, int) and value < 0:
        return [invalid(f"spec.{name}", value, "must be greater than or equal to 0")]
    return []


def validate_deployment(obj: JsonObject, old: JsonObject | None = None) -> list[FieldError]:
    """``ValidateDeployment`` (and the update-only immutability rules)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    errors = validate_object_name(meta.get("name"))
    for name in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        errors += _non_negative(spec, name)
    errors += _validate_pod_template(spec)
    errors += _validate_strategy(spec)
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int):
        if deadline <= 0:
            errors.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than 0"))
        elif deadline <= int(spec.get("minReadySeconds") or 0):
            errors.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    if old is not None:
        old_selector = dig(old, "spec", "selector")
        if not json_equal(old_selector, spec.get("selector")):
            errors.append(invalid("spec.selector", _go_label_selector(spec.get("selector")), "field is immutable"))
    return errors


def validate_scale_replicas(replicas: Any) -> list[FieldError]:
    """``ValidateScale``: the only rule is a non-negative replica count."""
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas < 0:
        return [invalid("spec.replicas", replicas, "must be greater than or equal to 0")]
    return []
