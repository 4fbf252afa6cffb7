"""``SelfSubjectAccessReview``: "may I do this?", answered for the caller (impersonated or not).

``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` with
``spec.resourceAttributes`` (verb, group, resource, subresource, namespace, name) answers 201
with the review and its ``status.allowed``, as kube-apiserver does. Every authenticated user may
create one (``system:basic-user``), so the review itself is never refused; an impersonated
caller is answered from the RBAC grants, opsbot's own account from the deny rules.
"""

from __future__ import annotations

from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.faults import AccessPolicy
from fakes.kubernetes.json_values import JsonObject
from fakes.kubernetes.rbac import Caller, RbacModel
from fakes.kubernetes.statuses import FieldError, invalid_object, method_not_allowed

ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def is_access_review(path: str) -> bool:
    return path.rstrip("/") == ACCESS_REVIEW_PATH


def review(request: ApiRequest, caller: Caller, cluster: str, rbac: RbacModel, policy: AccessPolicy) -> ApiResponse:
    """Answer one review with the decision the authorizer would make for ``caller``."""
    if request.method != "POST":
        raise method_not_allowed()
    body = request.object_body("SelfSubjectAccessReview")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    attributes = spec.get("resourceAttributes") if isinstance(spec, dict) else None
    if not isinstance(attributes, dict):
        error = FieldError(
            "invalid", "spec.resourceAttributes", "exactly one of nonResourceAttributes or resourceAttributes must be specified", "null"
        )
        raise invalid_object("authorization.k8s.io", "SelfSubjectAccessReview", "", [error])
    verb = str(attributes.get("verb") or "")
    group = str(attributes.get("group") or "")
    resource = str(attributes.get("resource") or "")
    subresource = str(attributes.get("subresource") or "")
    namespace = str(attributes.get("namespace") or "") or None
    name = str(attributes.get("name") or "") or None
    rbac_resource = f"{resource}/{subresource}" if subresource else resource
    status: JsonObject
    if caller.impersonated:
        grant = rbac.allowed(caller, cluster, verb, group, rbac_resource, namespace, name)
        status = {"allowed": True, "reason": f"RBAC: allowed by {grant.describe()}"} if grant else {"allowed": False}
    else:
        status = {"allowed": not policy.is_forbidden(verb, rbac_resource, cluster, namespace)}
    answer: JsonObject = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"resourceAttributes": attributes},
        "status": status,
    }
    return ApiResponse(201, answer)
