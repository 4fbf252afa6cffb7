"""Commit messages that tell the story: what, where, which request, who asked and who approved.

Git trailers (``Key: value`` lines in the last paragraph, as ``git interpret-trailers`` reads
them) carry the machine-readable part: ``Opsbot-Target`` is how a later rollback finds opsbot's
last change for a service, ``Opsbot-Reverts`` how it skips changes already undone. Nothing
secret ever goes in: only Slack ids, display names and the request number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

TRAILER = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9-]*): (?P<value>.+)$")


@dataclass(frozen=True)
class Story:
    """Who and what a commit is for (from the run's context)."""

    request_id: int
    service: str
    env: str
    requester: tuple[str, str]
    """(Slack user id, display name)."""
    approvers: tuple[tuple[str, str], ...]

    @property
    def target(self) -> str:
        return f"{self.service}/{self.env}"


def deploy_message(story: Story, *, runbook: str, tag: str) -> str:
    """``deploy checkout 1.4.2 to production (opsbot request #12)`` and the trailers."""
    subject = f"{runbook or 'deploy'} {story.service} {tag} to {story.env} (opsbot request #{story.request_id})"
    return _with_trailers(subject, [], story)


def revert_message(story: Story, *, reverted: str, reverted_subject: str, image_before: str, image_after: str) -> str:
    """``Revert "deploy checkout 1.4.2 …"``, as ``git revert`` words it, with the trailers."""
    subject = f'Revert "{reverted_subject}"'
    body = [f"This reverts commit {reverted} (image {image_before} → {image_after}) for opsbot request #{story.request_id}."]
    return _with_trailers(subject, body, story, extra=[("Opsbot-Reverts", reverted)])


def restore_message(story: Story, *, commit: str, path: str) -> str:
    subject = f"restore {path} of {story.service} in {story.env} as at {commit[:12]} (opsbot request #{story.request_id})"
    return _with_trailers(subject, [], story)


def trailers(message: str) -> dict[str, list[str]]:
    """The trailers of a commit message's last paragraph."""
    paragraphs = [part for part in message.strip().split("\n\n") if part.strip()]
    if len(paragraphs) < 2:
        return {}
    found: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        match = TRAILER.match(line.strip())
        if match is None:
            return {}
        found.setdefault(match.group("key"), []).append(match.group("value"))
    return found


def subject_of(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


def _person(user: tuple[str, str]) -> str:
    user_id, name = user
    clean = re.sub(r"[<>\n]", "", name) or user_id
    return f"{clean} (Slack {user_id})" if clean != user_id else f"Slack {user_id}"


def _with_trailers(subject: str, body: Iterable[str], story: Story, extra: Iterable[tuple[str, str]] = ()) -> str:
    lines = [f"Requested-by: {_person(story.requester)}"]
    lines += [f"Approved-by: {_person(approver)}" for approver in story.approvers]
    lines += [f"Opsbot-Request: {story.request_id}", f"Opsbot-Target: {story.target}"]
    lines += [f"{key}: {value}" for key, value in extra]
    paragraphs = [subject, *body, "\n".join(lines)]
    return "\n\n".join(paragraphs) + "\n"
