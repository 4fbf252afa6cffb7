"""A fake Argo CD API server (Applications, sync operations, health) for tests and the demo."""

from fakes.argocd.applications import FakeApplication
from fakes.argocd.server import FakeArgoCd

__all__ = ["FakeApplication", "FakeArgoCd"]
