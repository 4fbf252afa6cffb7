"""Every way a client can change a Deployment: create, replace, patch, delete,
the ``/status`` subresource and the ``autoscaling/v1`` ``/scale`` subresource.

Each write runs the apiserver's pipeline in order - decode, optimistic
concurrency and UID preconditions, defaulting, validation, then storage (or
nothing, for ``dryRun=All``) - so the status codes and bodies a client sees
match a real cluster's, including which check wins when several fail.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.json_values import JsonObject, child, deep_copy, dig, go_json_type, prune_nulls
from fakes.kubernetes.object_store import DEPLOYMENTS as DEPLOYMENT_BUCKET
from fakes.kubernetes.object_store import REPLICASETS, ObjectStore
from fakes.kubernetes.patching import (
    DEPLOYMENT_SCHEMA,
    SCALE_SCHEMA,
    JsonPatchError,
    PatchDecodeError,
    Schema,
    StrategicMergePatchError,
    apply_json_patch,
    decode_json_patch,
    json_merge_patch,
    strategic_merge_patch,
)
from fakes.kubernetes.selectors import selector_string
from fakes.kubernetes.statuses import (
    DEPLOYMENTS,
    NAMESPACES,
    ApiError,
    GoRepr,
    already_exists,
    bad_request,
    conflict,
    invalid,
    invalid_object,
    not_found,
    unknown_error,
    unprocessable,
    unsupported_media_type,
)
from fakes.kubernetes.strategy import (
    DecodeError,
    decode_check_deployment,
    default_deployment,
    validate_deployment,
    validate_scale_replicas,
)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_MEDIA_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
"""Server-side apply (``application/apply-patch+yaml``) is deliberately absent: 415."""

Mode = Literal["main", "status"]


def apply_patch_body(request: ApiRequest, current: JsonObject, schema: Schema) -> Any:
    """Apply the request's patch to ``current`` per its Content-Type.

    Errors map exactly as in the apiserver's patch handler: unknown media type
    415; undecodable body 400; a failed JSON Patch op 422 with the generic
    message; strategic-merge errors 400/422, or 500 for plain Go errors.
    """
    media_type = request.content_type
    if media_type not in PATCH_MEDIA_TYPES:
        raise unsupported_media_type(PATCH_MEDIA_TYPES)
    try:
        body = request.decoded_body()
    except ApiError as error:
        prefix = "" if media_type == STRATEGIC_MERGE_PATCH else "error decoding patch: "
        raise bad_request(prefix + error.message) from None
    try:
        if media_type == JSON_PATCH:
            strict = request.param("fieldValidation") != "Ignore"
            return apply_json_patch(current, decode_json_patch(body, strict=strict))
        if not isinstance(body, dict):
            raise _not_a_map(body, media_type)
        if media_type == MERGE_PATCH:
            return json_merge_patch(current, body)
        return strategic_merge_patch(current, body, schema)
    except PatchDecodeError as error:
        raise bad_request(error.message) from None
    except JsonPatchError:
        raise unprocessable() from None
    except StrategicMergePatchError as error:
        if error.status == 400:
            raise bad_request(error.message) from None
        if error.status == 422:
            raise unprocessable() from None
        raise unknown_error(error.message) from None


def _not_a_map(body: Any, media_type: str) -> ApiError:
    if body is None and media_type == MERGE_PATCH:
        return bad_request("Invalid JSON Patch")
    reason = f"json: cannot unmarshal {go_json_type(body)} into Go value of type map[string]interface {{}}"
    return bad_request(reason if media_type == STRATEGIC_MERGE_PATCH else f"error decoding patch: {reason}")


def _patched_object_error(patched: Any, detail: str) -> ApiError:
    """The 422 for a patch whose result no longer decodes into the Go type."""
    rendered = GoRepr(json.dumps(json.dumps(patched, separators=(",", ":"))))
    return invalid_object("", "", "", [invalid("patch", rendered, detail)])


class DeploymentWrites:
    """Write operations on ``deployments.apps`` and its subresources."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # -- main resource -------------------------------------------------------

    def create(self, cluster: str, namespace: str, request: ApiRequest) -> ApiResponse:
        """POST a new Deployment (201), or 404/409/422 like the real registry."""
        dry_run = request.dry_run("CreateOptions")
        body = request.object_body("Deployment")
        _check_kind(body, "Deployment", "apps/v1")
        meta = child(body, "metadata")
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{self.store.random_suffix()}"
        if self.store.namespace(cluster, namespace) is None:
            raise not_found(NAMESPACES, namespace)
        desired = self._decoded(body)
        desired["status"] = {}
        default_deployment(desired)
        name = str(meta.get("name") or "")
        errors = validate_deployment(desired)
        if errors:
            raise invalid_object("apps", "Deployment", name, errors)
        if str(meta.get("resourceVersion") or "").isdigit() and int(meta["resourceVersion"]) > 0:
            raise unknown_error("resourceVersion should not be set on objects to be created")
        if self.store.get(cluster, DEPLOYMENT_BUCKET, namespace, name) is not None:
            raise already_exists(DEPLOYMENTS, name)
        created = self.store.create(cluster, DEPLOYMENT_BUCKET, desired, dry_run=dry_run)
        return ApiResponse(201, created)

    def replace(self, cluster: str, namespace: str, name: str, request: ApiRequest, mode: Mode = "main") -> ApiResponse:
        """PUT: full replacement with resourceVersion optimistic concurrency."""
        dry_run = request.dry_run("UpdateOptions")
        body = request.object_body("Deployment")
        _check_kind(body, "Deployment", "apps/v1")
        _check_identity(body, namespace, name)
        current = self._current(cluster, namespace, name)
        desired = self._decoded(body)
        return ApiResponse(200, self._update(cluster, current, desired, dry_run=dry_run, mode=mode))

    def patch(self, cluster: str, namespace: str, name: str, request: ApiRequest, mode: Mode = "main") -> ApiResponse:
        """PATCH with any of the three patch dialects."""
        dry_run = request.dry_run("PatchOptions")
        current = self._current(cluster, namespace, name)
        patched = apply_patch_body(request, current, DEPLOYMENT_SCHEMA)
        if not isinstance(patched, dict):
            raise _patched_object_error(patched, "json: cannot unmarshal into Go value of type v1.Deployment")
        try:
            decode_check_deployment(patched)
        except DecodeError as error:
            raise _patched_object_error(patched, str(error)) from None
        desired = prune_nulls(patched)
        _check_identity(desired, namespace, name)
        return ApiResponse(200, self._update(cluster, current, desired, dry_run=dry_run, mode=mode))

    def delete(self, cluster: str, namespace: str, name: str, request: ApiRequest) -> ApiResponse:
        """DELETE with preconditions and propagationPolicy (Orphan keeps ReplicaSets)."""
        options = request.decoded_body() if request.body.strip() else {}
        options = options if isinstance(options, dict) else {}
        dry_run = request.dry_run("DeleteOptions", options.get("dryRun") or ())
        current = self._current(cluster, namespace, name)
        meta = current["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") not in (None, meta["uid"]):
            why = f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta['uid']}"
            raise conflict(DEPLOYMENTS, name, why)
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            why = (
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}"
            )
            raise conflict(DEPLOYMENTS, name, why)
        policy = request.param("propagationPolicy") or options.get("propagationPolicy") or "Background"
        if not dry_run:
            if policy == "Orphan":
                self._orphan_replicasets(cluster, current)
            self.store.delete(cluster, DEPLOYMENT_BUCKET, namespace, name)
        details = {"name": name, "group": "apps", "kind": "deployments", "uid": meta["uid"]}
        return ApiResponse(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})

    # -- scale subresource -----------------------------------------------------

    def get_scale(self, cluster: str, namespace: str, name: str) -> ApiResponse:
        """GET ``/scale`` as an ``autoscaling/v1`` Scale."""
        return ApiResponse(200, scale_of(self._current(cluster, namespace, name)))

    def replace_scale(self, cluster: str, namespace: str, name: str, request: ApiRequest) -> ApiResponse:
        """PUT ``/scale``."""
        dry_run = request.dry_run("UpdateOptions")
        body = request.object_body("Scale")
        _check_kind(body, "Scale", "autoscaling/v1")
        _check_identity(body, namespace, name)
        current = self._current(cluster, namespace, name)
        return ApiResponse(200, self._apply_scale(cluster, current, body, dry_run=dry_run))

    def patch_scale(self, cluster: str, namespace: str, name: str, request: ApiRequest) -> ApiResponse:
        """PATCH ``/scale`` (the patch applies to the Scale object, not the Deployment)."""
        dry_run = request.dry_run("PatchOptions")
        current = self._current(cluster, namespace, name)
        patched = apply_patch_body(request, scale_of(current), SCALE_SCHEMA)
        if not isinstance(patched, dict):
            raise _patched_object_error(patched, "json: cannot unmarshal into Go value of type v1.Scale")
        _check_identity(patched, namespace, name)
        return ApiResponse(200, self._apply_scale(cluster, current, prune_nulls(patched), dry_run=dry_run))

    # -- internals -----------------------------------------------------------------

    def _current(self, cluster: str, namespace: str, name: str) -> JsonObject:
        current = self.store.get(cluster, DEPLOYMENT_BUCKET, namespace, name)
        if current is None:
            raise not_found(DEPLOYMENTS, name)
        return current

    @staticmethod
    def _decoded(body: JsonObject) -> JsonObject:
        try:
            decode_check_deployment(body)
        except DecodeError as error:
            raise bad_request(f'Deployment in version "v1" cannot be handled as a Deployment: {error}') from None
        decoded: JsonObject = prune_nulls(body)
        return decoded

    def _update(self, cluster: str, current: JsonObject, desired: JsonObject, *, dry_run: bool, mode: Mode) -> JsonObject:
        """The registry update path shared by PUT, PATCH and the status subresource."""
        name = current["metadata"]["name"]
        _check_preconditions(current, desired)
        if mode == "status":
            merged = deep_copy(current)
            merged["status"] = desired.get("status") or {}
            desired = merged
        else:
            desired["status"] = deep_copy(current.get("status") or {})
        default_deployment(desired)
        errors = validate_deployment(desired, current)
        if errors:
            raise invalid_object("apps", "Deployment", name, errors)
        return self.store.update(cluster, DEPLOYMENT_BUCKET, desired, dry_run=dry_run)

    def _apply_scale(self, cluster: str, current: JsonObject, scale: JsonObject, *, dry_run: bool) -> JsonObject:
        name = current["metadata"]["name"]
        _check_preconditions(current, scale)
        replicas = dig(scale, "spec", "replicas")
        if replicas is None:
            replicas = 0
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            detail = f"json: cannot unmarshal {go_json_type(replicas)} into Go struct field ScaleSpec.spec.replicas of type int32"
            raise bad_request(f'Scale in version "v1" cannot be handled as a Scale: {detail}')
        errors = validate_scale_replicas(replicas)
        if errors:
            raise invalid_object("autoscaling", "Scale", name, errors)
        desired = deep_copy(current)
        desired["spec"]["replicas"] = replicas
        return scale_of(self.store.update(cluster, DEPLOYMENT_BUCKET, desired, dry_run=dry_run))

    def _orphan_replicasets(self, cluster: str, deployment: JsonObject) -> None:
        uid = deployment["metadata"]["uid"]
        for rs in self.store.list(cluster, REPLICASETS, deployment["metadata"]["namespace"]):
            refs = dig(rs, "metadata", "ownerReferences") or []
            kept = [r for r in refs if r.get("uid") != uid]
            if len(kept) != len(refs):
                if kept:
                    rs["metadata"]["ownerReferences"] = kept
                else:
                    rs["metadata"].pop("ownerReferences", None)
                self.store.update(cluster, REPLICASETS, rs)


def scale_of(deployment: JsonObject) -> JsonObject:
    """The ``autoscaling/v1`` Scale view of a Deployment."""
    meta = deployment["metadata"]
    spec: JsonObject = {}
    replicas = int(dig(deployment, "spec", "replicas") or 0)
    if replicas:
        spec["replicas"] = replicas
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if key in meta},
        "spec": spec,
        "status": {
            "replicas": int(dig(deployment, "status", "replicas") or 0),
            "selector": selector_string(dig(deployment, "spec", "selector")),
        },
    }


def _check_kind(body: JsonObject, kind: str, api_version: str) -> None:
    found_kind, found_version = body.get("kind"), body.get("apiVersion")
    if found_kind not in (None, "", kind) or found_version not in (None, "", api_version):
        raise bad_request(
            f'{kind} in version "v1" cannot be handled as a {kind}: '
            f"the body is a {found_kind or kind} in {found_version or api_version}, expected {kind} in {api_version}"
        )


def _check_identity(body: JsonObject, namespace: str, name: str) -> None:
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    if meta.get("namespace") not in (None, "", namespace):
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    found = meta.get("name") or ""
    if found != name:
        raise bad_request(f"the name of the object ({found}) does not match the name on the URL ({name})")


def _check_preconditions(current: JsonObject, desired: JsonObject) -> None:
    meta = current["metadata"]
    wanted = desired.get("metadata") or {}
    uid = wanted.get("uid")
    if uid and uid != meta["uid"]:
        why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}"
        raise conflict(DEPLOYMENTS, meta["name"], why)
    version = wanted.get("resourceVersion")
    if version and version != meta["resourceVersion"]:
        raise conflict(DEPLOYMENTS, meta["name"])
