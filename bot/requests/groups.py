"""Who is in which group: static members from the config, Slack user groups resolved on demand.

A group's members are Slack user ids (``U…``/``W…``) and references to Slack user groups
(``@handle`` or ``S…``). The resolver for those references is injected by the Slack layer
(cached, ``usergroups.users.list``), so policy code never knows Slack exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.catalog.config import OpsbotConfig

logger = logging.getLogger(__name__)

ExternalGroupResolver = Callable[[str], frozenset[str]]
"""Takes ``@handle`` or ``S…`` and returns member user ids; raises on lookup failure."""


class GroupDirectory:
    """Resolves group membership for the policy and for approvals."""

    def __init__(self, config: OpsbotConfig, external: ExternalGroupResolver | None = None) -> None:
        self._groups = config.groups
        self._external = external

    def members(self, group: str) -> frozenset[str]:
        """User ids in ``group``; an unresolvable Slack group contributes nobody (fail closed)."""
        users: set[str] = set()
        for member in self._groups.get(group, []):
            if _is_group_reference(member):
                users |= self._resolve_external(member)
            else:
                users.add(member)
        return frozenset(users)

    def groups_of(self, user_id: str) -> frozenset[str]:
        """Every configured group ``user_id`` belongs to."""
        return frozenset(group for group in self._groups if user_id in self.members(group))

    def is_member(self, user_id: str, groups: list[str] | tuple[str, ...]) -> bool:
        return any(user_id in self.members(group) for group in groups)

    def invalidate(self, group_id: str | None) -> None:
        """Forget the Slack resolver's cached members of ``group_id`` (every group if None), if it caches."""
        forget = getattr(self._external, "invalidate", None)
        if callable(forget):
            forget(group_id)

    def _resolve_external(self, reference: str) -> frozenset[str]:
        if self._external is None:
            logger.warning("group member %s is a Slack user group, but no Slack resolver is configured", reference)
            return frozenset()
        try:
            return self._external(reference)
        except Exception:
            logger.exception("could not resolve Slack user group %s; treating it as empty", reference)
            return frozenset()


def _is_group_reference(member: str) -> bool:
    return member.startswith("@") or member.startswith("S")
