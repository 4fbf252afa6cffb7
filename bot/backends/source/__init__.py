"""A service's source on GitHub, read for "what's changing": compare two tags, the pull requests of a commit, checks.

``Backends.source(config)`` hands out a ``SourceClient``; ``whats_changing`` turns a plan's image
change into the entries an approver reads (commits, pull requests, the image in its registry,
the target tag's checks). Only reads: nothing here changes GitHub or the registry.
"""

from bot.backends.source.github import SourceClient, SourceUnreachable

__all__ = ["SourceClient", "SourceUnreachable"]
