"""``WWW-Authenticate`` challenges (RFC 9110 §11.6.1) as registries send them: the scheme and its parameters.

A registry answers 401 with ``Bearer realm="https://auth.example.com/token",service="registry",
scope="repository:shop/checkout:pull"`` (Docker registry token spec) or ``Basic realm="…"``;
the client fetches a token from ``realm`` for ``service`` and ``scope``, or sends basic credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAMETER = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    """One challenge: ``scheme`` in lower case, parameter names in lower case."""

    scheme: str
    parameters: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.parameters.get(name)


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` value, or None when it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", scheme):
        return None
    parameters: dict[str, str] = {}
    position = 0
    while position < len(rest):
        found = _PARAMETER.match(rest, position)
        if found is None or found.end() == position:
            break
        quoted, bare = found.group(2), found.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        parameters[found.group(1).lower()] = value
        position = found.end()
    return Challenge(scheme.lower(), parameters)
