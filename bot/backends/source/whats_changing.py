"""What an approver approves besides the image: the commits and pull requests it ships, the image, its checks.

``whats_changing`` reads a plan's image change (``1.4.1 → 1.4.2``) and adds context entries:

- **commits**: ``compare/v1.4.1...v1.4.2`` on the service's ``source`` repository: the count, the
  newest ``MAX_SHOWN`` titles with their authors, "… and M more", a link to the full compare; a
  deploy that goes back lists the commits it takes out;
- **pull requests**: the merged pull requests those commits belong to (looked up for the newest
  ``MAX_PR_LOOKUPS`` commits);
- **image in registry**: the manifest's digest, from the service's (or the config's) ``registry``;
- **checks**: the target tag's combined commit status and check runs (``bot.requests.policy``
  adds an approval under ``require_checks`` when they are not green).

The entries go into the plan, so the plan hash, and with it every approval, binds to them.
Outages are said, not raised: "could not reach GitHub" is shown and the request goes on. The one
refusal is a registry that answered 404 for the image: deploying a tag that does not exist would
only fail later, after someone approved it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.backends.images import split_image
from bot.backends.registry.client import RegistryClient, RegistryRefused, RegistryUnreachable, repository_of
from bot.backends.source.github import Comparison, SourceClient, SourceUnreachable
from bot.catalog.actions import Change, StepContext
from bot.catalog.config import ImageRegistry, ServiceSource
from bot.errors import ActionFailed
from bot.messages import code, escape, plain_text

MAX_SHOWN = 10
"""Commits and pull requests listed by name; the rest are counted ("… and 14 more")."""
MAX_TITLE = 120
MAX_PR_LOOKUPS = 30
"""Commits whose pull requests are looked up (one GitHub call each), newest first."""
PR_LOOKUP_THREADS = 4
COMMITS, PULLS, IMAGE, CHECKS = "commits", "pull requests", "image in registry", "checks"
"""The ``field`` of each context entry; ``CHECKS`` is read back by ``checks_state``."""
GREEN = "success"


@dataclass(frozen=True)
class VersionMove:
    """The image a plan replaces and the one it puts in place, and their tags (versions)."""

    before: str
    after: str
    before_tag: str | None
    after_tag: str | None


def whats_changing(ctx: StepContext, changes: Sequence[Change]) -> list[Change]:
    """Context entries for a plan that moves a service's image; [] when it moves none or nothing is configured.

    Raises ``ActionFailed`` only when the registry answered that the new image does not exist.
    """
    move = version_move(changes)
    if move is None:
        return []
    backends = ctx.backends
    entries: list[Change] = []
    registry = backends.config.registry_of(ctx.service)
    if registry is not None:
        entries.append(image_entry(backends.registry(registry), registry, move.after))
    service = backends.config.service(ctx.service)
    if service is not None and service.source is not None and move.before_tag and move.after_tag:
        entries.extend(source_entries(backends.source(service.source), service.source, move))
    return entries


def version_move(changes: Sequence[Change]) -> VersionMove | None:
    """The first image change of a plan whose reference changes (``image``, ``image of api``)."""
    for change in changes:
        if change.context or not change.field.startswith("image") or not change.before or not change.after:
            continue
        if change.before != change.after:
            _, before_tag, _ = split_image(change.before)
            _, after_tag, after_digest = split_image(change.after)
            return VersionMove(change.before, change.after, before_tag, None if after_digest else after_tag)
    return None


def image_entry(client: RegistryClient, registry: ImageRegistry, image: str) -> Change:
    """The image's manifest digest, or why it is unknown; ``ActionFailed`` when the registry says it does not exist."""
    repository = repository_of(image, registry)
    _, tag, digest = split_image(image)
    reference = digest or tag or "latest"
    try:
        found = client.manifest_digest(repository, reference)
    except RegistryUnreachable as error:  # its message says "could not reach the registry at …"
        return Change(IMAGE, None, "unknown", context=True, lines=(plain_text(error.user_message),))
    except RegistryRefused as error:
        return Change(IMAGE, None, "unknown", context=True, lines=(f"could not check: {plain_text(error.user_message)}",))
    if found is None:
        raise ActionFailed(
            f"image {image} is not in {client.describe()} (repository {repository} has no {reference}); "
            "push it (or check the version) and ask again"
        )
    return Change(IMAGE, None, found, context=True, lines=(f"{code(f'{repository}:{reference}')} is there",))


def source_entries(client: SourceClient, source: ServiceSource, move: VersionMove) -> list[Change]:
    """Commits, pull requests and checks between the two versions' tags; each says so when GitHub could not tell."""
    assert move.before_tag is not None and move.after_tag is not None
    base, head = source.tag_of(move.before_tag), source.tag_of(move.after_tag)
    try:
        comparison = client.compare(base, head)
        going_back = comparison.status == "behind"
        if going_back:
            comparison = client.compare(head, base)
        pulls = _merged_pulls(client, comparison)
    except SourceUnreachable as error:  # its message says "could not reach GitHub for …"
        why = plain_text(error.user_message)
        return [Change(COMMITS, base, head, context=True, lines=(why,)), Change(CHECKS, None, "unknown", context=True, lines=(why,))]
    except ActionFailed as error:
        why = f"could not compare {code(base)}...{code(head)} in {escape(source.github)}: {plain_text(error.user_message)}"
        return [Change(COMMITS, base, head, context=True, lines=(why,)), _checks_entry(client, head)]
    return [_commits_entry(comparison, base, head, going_back), _pulls_entry(pulls), _checks_entry(client, head)]


def image_moved(ctx: StepContext, changes: Sequence[Change], approved: Sequence[dict[str, Any]]) -> str | None:
    """Why the approved image is not the one the registry has now (re-pushed or deleted), or None.

    A run deploys by tag; a tag pushed again after the approval would deploy content nobody
    approved, so the digest the approval saw is asked for again. A registry that cannot be
    reached now lets the run go on (what was approved was checked then).
    """
    digest = next((str(item.get("after")) for item in approved if item.get("context") and item.get("field") == IMAGE), "")
    registry = ctx.backends.config.registry_of(ctx.service)
    move = version_move(changes)
    if not digest.startswith("sha256:") or registry is None or move is None:
        return None
    repository = repository_of(move.after, registry)
    _, tag, pinned = split_image(move.after)
    try:
        now = ctx.backends.registry(registry).manifest_digest(repository, pinned or tag or "latest")
    except (RegistryUnreachable, RegistryRefused):
        return None
    if now == digest:
        return None
    where = f"{repository}:{pinned or tag}"
    if now is None:
        return f"image {where} is no longer in {ctx.backends.registry(registry).describe()}"
    return f"image {where} was pushed again since the approval (approved {digest[:19]}…, now {now[:19]}…)"


def checks_state(plan: Sequence[dict[str, Any]]) -> str | None:
    """The target tag's checks as a stored plan records them (success, failure, pending, none, unknown), or None."""
    for item in plan:
        if item.get("context") and item.get("field") == CHECKS:
            return str(item.get("after"))
    return None


def _commits_entry(comparison: Comparison, base: str, head: str, going_back: bool) -> Change:
    count = comparison.total_commits
    noun = "commit" if count == 1 else "commits"
    summary = f"{count} {noun} taken out (going back)" if going_back else f"{count} {noun}"
    if comparison.status == "diverged":
        summary += f"; {comparison.behind_by} of the running version's commits are not in {head}"
    newest = list(reversed(comparison.commits))
    lines = [f"{code(commit.sha[:7])} {_title(commit.title)} — {plain_text(commit.author)}" for commit in newest[:MAX_SHOWN]]
    if count > MAX_SHOWN:
        lines.append(f"… and {count - MAX_SHOWN} more")
    if comparison.html_url:
        lines.append(f"<{escape(comparison.html_url)}|full compare {escape(base)}...{escape(head)}>")
    return Change(COMMITS, base, head, context=True, lines=(summary, *lines))


def _pulls_entry(pulls: list[tuple[int, str, str]]) -> Change:
    lines = [f"#{number} {_title(title)}" + (f" — {plain_text(author)}" if author else "") for number, title, author in pulls[:MAX_SHOWN]]
    if len(pulls) > MAX_SHOWN:
        lines.append(f"… and {len(pulls) - MAX_SHOWN} more")
    return Change(PULLS, None, str(len(pulls)), context=True, lines=tuple(lines))


def _checks_entry(client: SourceClient, head: str) -> Change:
    try:
        checks = client.checks(head)
    except SourceUnreachable as error:
        return Change(CHECKS, None, "unknown", context=True, lines=(plain_text(error.user_message),))
    except ActionFailed as error:
        return Change(CHECKS, None, "unknown", context=True, lines=(f"could not read them: {plain_text(error.user_message)}",))
    where = f"{code(head)} at {code(checks.sha[:7])}" if checks.sha else code(head)
    detail = {
        "success": f"all {checks.reported} green on {where}",
        "failure": f"not green on {where}: " + ", ".join(plain_text(item) for item in checks.failing),
        "pending": f"still running on {where}",
        "none": f"no status or check run reported on {where}",
    }[checks.state]
    return Change(CHECKS, None, checks.state, context=True, lines=(detail,))


def _title(title: str) -> str:
    """A commit or pull request title as plain text (anyone who can push wrote it), at most ``MAX_TITLE`` characters."""
    return plain_text(title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…")


def _merged_pulls(client: SourceClient, comparison: Comparison) -> list[tuple[int, str, str]]:
    """Merged pull requests of the newest commits, newest first, each once."""
    newest = [commit.sha for commit in reversed(comparison.commits)][:MAX_PR_LOOKUPS]
    # One call per commit: a few at a time keeps a long change list inside the plan's time limit.
    with ThreadPoolExecutor(max_workers=PR_LOOKUP_THREADS, thread_name_prefix="pr-lookup") as pool:
        answers = list(pool.map(client.pulls_of, newest))
    found: dict[int, tuple[int, str, str]] = {}
    for pulls in answers:
        for pull in pulls:
            if pull.merged and pull.number not in found:
                found[pull.number] = (pull.number, pull.title, pull.author)
    return list(found.values())
