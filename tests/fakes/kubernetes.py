"""Test-side import path for the fake Kubernetes API server (see bot.demo.kubeapi)."""

from bot.demo.kubeapi import (
    ApiRequest,
    ApiResponse,
    FakeKubernetesServer,
    RecordedRequest,
    default_image_health,
)

__all__ = ["ApiRequest", "ApiResponse", "FakeKubernetesServer", "RecordedRequest", "default_image_health"]
