"""Forms for one person: the runbooks they may run, the services and envs they may act on, and version suggestions.

What the pure model (``bot.requests.forms``) cannot know lives here: the policy (asked through
the one ``Gate``, never re-implemented), the catalog, and the backends' history of a target.
Runs after the ack, like every command; the Slack front end then draws the result.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.audit.events import Actor
from bot.errors import OpsbotError, PolicyDenied, UsageError
from bot.messages import MessageRef
from bot.requests.desk import Desk
from bot.requests.forms import FormField, RunbookChoice, RunbookForm, RunbookPicker, runbook_form
from bot.store import requests as request_store
from bot.store.models import RequestRow
from commands.vocabulary import Vocabulary


class NotARequestMessage(OpsbotError):
    """A message shortcut used on a message that is not one of opsbot's request messages."""


class Forms:
    """Builds pickers and forms filtered by what the person may do."""

    def __init__(self, *, desk: Desk) -> None:
        self._desk = desk

    def picker(self, actor: Actor, channel: str | None) -> RunbookPicker:
        """Every runbook the person may run on at least one service/env here; ``PolicyDenied`` if there is none."""
        catalog = self._desk.catalog
        choices = tuple(
            RunbookChoice(name, runbook.description)
            for name, runbook in sorted(catalog.runbooks.items())
            if self.allowed_places(name, actor, channel).environments
        )
        if not choices:
            raise PolicyDenied("No runbook is open to you here: the policy allows you none (try `/ops can-i …` to see why).")
        return RunbookPicker(runbooks=choices, channel=channel)

    def form(self, runbook: str, actor: Actor, channel: str | None, given: Mapping[str, str]) -> RunbookForm:
        """The runbook's form, its service and env fields limited to where the policy lets the person act."""
        spec = self._desk.catalog.commands.get(runbook)
        if spec is None or spec.builtin:
            raise UsageError(f"There is no runbook {runbook!r}; `/ops help` lists them.")
        places = self.allowed_places(runbook, actor, channel)
        if not places.environments:
            raise PolicyDenied(f"The policy lets you run `{runbook}` on no service here; nothing to fill in.", markup=True)
        return runbook_form(spec, places, services=places.services, given=given, channel=channel)

    def with_versions(self, form: RunbookForm) -> RunbookForm:
        """The form with its target's past versions to suggest, when it asks for a version of a chosen service/env."""
        service_field, env_field = _field_of_kind(form, "service"), _field_of_kind(form, "env")
        backends = self._desk.backends
        if backends is None or _field_of_kind(form, "version") is None or service_field is None or env_field is None:
            return form
        service, env = service_field.initial, env_field.initial
        if not service or not env:
            return form
        target = self._desk.catalog.target(service, env)
        return RunbookForm(
            runbook=form.runbook, description=form.description, fields=form.fields, channel=form.channel,
            versions=tuple(backends.versions.suggest(service, env, target)),
        )  # fmt: skip

    def allowed_places(self, runbook: str, actor: Actor, channel: str | None) -> Vocabulary:
        """The services and envs the policy lets ``actor`` run ``runbook`` on (the gate's unaudited yes/no)."""
        vocabulary = self._desk.catalog.vocabulary
        gate = self._desk.gate
        allowed: dict[str, tuple[str, ...]] = {}
        for service, envs in vocabulary.environments.items():
            open_envs = tuple(
                env for env in envs if gate.allows(command=runbook, service=service, env=env, actor=actor, channel=channel or "")
            )
            if open_envs:
                allowed[service] = open_envs
        defaults = {service: env for service, env in vocabulary.default_envs.items() if env in allowed.get(service, ())}
        return Vocabulary(environments=allowed, default_envs=defaults)

    def request_on_message(self, message: MessageRef, request_id: int | None) -> RequestRow:
        """The request whose message this is; ``NotARequestMessage`` for any other message."""
        row: RequestRow | None = None
        if request_id is not None:
            with self._desk.database.reading() as session:
                row = request_store.get_request(session, request_id)
        if row is None or MessageRef.from_dict(row.message_ref) != message:
            raise NotARequestMessage(
                "That shortcut works on opsbot's request messages (the ones with a request number, like #12); "
                "this message is not one, so nothing was done."
            )
        return row


def _field_of_kind(form: RunbookForm, kind: str) -> FormField | None:
    return next((field for field in form.fields if field.kind == kind), None)
