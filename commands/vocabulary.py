"""The names a command may use for ``service`` and ``env`` parameters, as plain data.

``bot`` derives it from the service catalog; the grammar only checks words against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Vocabulary:
    """Services in catalog order, each with its environments (in order) and its default env, if any."""

    environments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_envs: Mapping[str, str] = field(default_factory=dict)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self.environments)

    def all_environments(self) -> list[str]:
        return sorted({env for envs in self.environments.values() for env in envs})
