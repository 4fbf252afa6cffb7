"""The OCI (Docker) registry client: which tags a repository has, and whether an image's manifest exists.

Read-only calls of the OCI distribution API (``/v2/``), with the registry's auth flows (basic,
and the bearer-token challenge of the Docker registry token spec) and credentials read from
files when used. ``Backends.registry(config)`` hands out one client per registry.
"""

from bot.backends.registry.client import RegistryClient, RegistryRefused, RegistryUnreachable, repository_of

__all__ = ["RegistryClient", "RegistryRefused", "RegistryUnreachable", "repository_of"]
