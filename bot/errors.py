"""The errors opsbot shows to people: each carries a message a user can act on.

Why one hierarchy: front ends (Slack, the shell) catch ``OpsbotError`` and show
``user_message``; anything else is a bug, logged with an id and never shown as a
stack trace. ``temporary`` tells the runner and the user whether trying again can help.
"""

from __future__ import annotations

import logging
import uuid


class OpsbotError(Exception):
    """Base class: ``user_message`` is shown to the user; ``details`` go to logs only.

    ``user_message`` is plain text and is escaped when drawn, unless ``markup`` is True:
    then it is mrkdwn built by opsbot itself (mentions, channel links) with every
    user-supplied value already escaped.
    """

    temporary: bool = False

    def __init__(self, user_message: str, *, details: str | None = None, markup: bool = False) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.details = details
        self.markup = markup


class ConfigError(OpsbotError):
    """The config file or a runbook is invalid; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DatabaseUnreachable(OpsbotError):
    """The database URL is unsupported or the database cannot be reached; the message names why, never a password."""

    temporary = True


class UsageError(OpsbotError):
    """A command did not parse; says what was wrong and shows the usage line."""

    def __init__(self, user_message: str, *, usage: str | None = None) -> None:
        super().__init__(user_message)
        self.usage = usage


class PolicyDenied(OpsbotError):
    """The policy does not allow this user/channel/runbook/env or these arguments."""


class TargetLocked(OpsbotError):
    """Another request or an explicit lock holds the service/env."""

    temporary = True


class RequestNotFound(OpsbotError):
    """A click or command refers to a request id that does not exist."""


class ApprovalRefused(OpsbotError):
    """Base for refusals of an approve/reject/cancel click; ``code`` is audited."""

    code = "refused"


class AlreadyDecided(ApprovalRefused):
    """The request is no longer waiting (double click, second approver, cancelled)."""

    code = "already_decided"


class ApprovalExpired(ApprovalRefused):
    """The approval window closed before this click."""

    code = "expired"


class SelfApproval(ApprovalRefused):
    """The requester tried to approve their own request."""

    code = "self_approval"


class NotAnApprover(ApprovalRefused):
    """The clicker is not in any of the approver groups."""

    code = "not_an_approver"


class AlreadyVoted(ApprovalRefused):
    """The same person approved twice; one person counts once."""

    code = "already_voted"


class StaleApproval(ApprovalRefused):
    """The parameters or plan changed since the approval message was shown."""

    code = "stale"


class NotRequester(ApprovalRefused):
    """Only the requester may cancel a pending request."""

    code = "not_requester"


class WrongMessage(ApprovalRefused):
    """A click that did not come from the request's own message (another channel, another message)."""

    code = "wrong_message"


class PolicyChanged(ApprovalRefused):
    """The policy, re-evaluated at this decision, no longer allows the request (a freeze, lost rights)."""

    code = "policy_changed"


class ActionFailed(OpsbotError):
    """A runbook step failed permanently (bad image, forbidden, not found)."""


class TemporaryActionError(ActionFailed):
    """A step failed in a way that may pass on retry (timeout, 5xx, throttling)."""

    temporary = True


class TargetChanged(ActionFailed):
    """The target changed between the run's plan check and its change, so the change was not made.

    A step raises it when the target refused its write as stale (a resourceVersion precondition)
    and what it acts on moved meanwhile (someone else's deploy): the approved plan no longer
    describes what would happen. Before any change, the run ends ``not_started``.
    """


class ActionCancelled(OpsbotError):
    """The run was cancelled by a user or hit its deadline."""


class StepTimeout(ActionFailed):
    """A step or the run exceeded its timeout."""


def report_internal_error(log: logging.Logger, what: str) -> str:
    """Log the exception being handled under a fresh error id; return the sentence a person sees instead.

    Never a stack trace in chat: the person gets the id, the platform team finds the traceback by it.
    """
    error_id = uuid.uuid4().hex[:8]
    log.exception("%s (error id %s)", what, error_id)
    return (
        f"Something went wrong on our side (error id {error_id}). Nothing further was changed; "
        "tell the platform team this id, they can find it in the logs."
    )
