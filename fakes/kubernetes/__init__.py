"""A fake Kubernetes API server that behaves like a real one for opsbot's needs.

It serves apps/v1 Deployments (with ``/status`` and ``/scale``), ReplicaSets,
Pods and Namespaces over real HTTP, answers errors with genuine ``Status``
bodies, implements all three PATCH dialects, and runs a simulated deployment
controller so rollouts, rollbacks and stuck deploys unfold over time. Tests
drive it with the official ``kubernetes`` client through a kubeconfig;
``opsbot demo`` runs it in-process.
"""

from fakes.kubernetes.api import DEFAULT_USER, KubeApi
from fakes.kubernetes.apiserver import FakeKubernetesServer
from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.kubeconfig import build_kubeconfig, write_kubeconfig
from fakes.kubernetes.patching import (
    DEPLOYMENT_SCHEMA,
    FieldStrategy,
    JsonPatchError,
    PatchDecodeError,
    PatchError,
    StrategicMergePatchError,
    apply_json_patch,
    decode_json_patch,
    json_merge_patch,
    strategic_merge_patch,
)
from fakes.kubernetes.pod_simulator import ImageHealth, default_image_health
from fakes.kubernetes.rbac import Grant, ImpersonationLimit, RbacModel
from fakes.kubernetes.recording import RecordedRequest
from fakes.kubernetes.statuses import ApiError

__all__ = [
    "DEFAULT_USER",
    "DEPLOYMENT_SCHEMA",
    "ApiError",
    "ApiRequest",
    "ApiResponse",
    "FakeKubernetesServer",
    "FieldStrategy",
    "Grant",
    "ImageHealth",
    "ImpersonationLimit",
    "JsonPatchError",
    "KubeApi",
    "PatchDecodeError",
    "PatchError",
    "RbacModel",
    "RecordedRequest",
    "StrategicMergePatchError",
    "apply_json_patch",
    "build_kubeconfig",
    "decode_json_patch",
    "default_image_health",
    "json_merge_patch",
    "strategic_merge_patch",
    "write_kubeconfig",
]
