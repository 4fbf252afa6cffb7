"""A runbook as a form: one field per parameter, in usage order, and the answers read back as a command.

Pure data, no Slack and no terminal: ``bot.slack.modals`` draws a ``RunbookForm`` as a modal,
``bot.shell.prompts`` asks it as questions. Answers become the text the parser reads
(``command_text``), so a form and a typed command end in the same ``CommandRequest`` (same
values, same params hash) through the same front door. ``check_answers`` gives each field its
own message, using the grammar's own conversions, so a modal shows the error beside the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from commands.errors import UsageError
from commands.partial import command_text
from commands.spec import CommandSpec, ParameterLike
from commands.usage import compile_usage, required_slots, slots
from commands.values import convert_value
from commands.vocabulary import Vocabulary

FieldKind = Literal["service", "env", "number", "choice", "text", "version"]
CHANNEL_FIELD = "channel"
"""The form's own last field: where the request's message (and its approval) is posted."""
MAX_METADATA_CHARS = 3_000
"""Slack's limit for a view's ``private_metadata``, where the form carries its runbook and suggestions."""


@dataclass(frozen=True)
class FormField:
    """One question: what to call it, how to ask it, what it starts with."""

    name: str
    kind: FieldKind
    label: str
    hint: str
    optional: bool
    initial: str | None = None
    options: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    refreshes: bool = False
    """Changing it changes other fields' options (service → envs, env → versions): the form is redrawn."""


@dataclass(frozen=True)
class RunbookForm:
    """A runbook's form for one person: fields with the values they may choose, and version suggestions."""

    runbook: str
    description: str
    fields: tuple[FormField, ...]
    channel: str | None
    versions: tuple[str, ...] = ()

    def field(self, name: str) -> FormField | None:
        return next((field for field in self.fields if field.name == name), None)


@dataclass(frozen=True)
class RunbookChoice:
    name: str
    description: str


@dataclass(frozen=True)
class RunbookPicker:
    """The runbooks a person may run (policy-filtered by the caller), to choose one before its form."""

    runbooks: tuple[RunbookChoice, ...]
    channel: str | None


@dataclass(frozen=True)
class FormState:
    """What a drawn form carries between Slack's payloads: its runbook, where it was opened, its suggestions."""

    runbook: str
    channel: str | None
    versions: tuple[str, ...] = ()

    def encode(self) -> str:
        """JSON within Slack's metadata limit: suggestions are dropped from the oldest until it fits."""
        versions = list(self.versions)
        while True:
            text = json.dumps({"runbook": self.runbook, "channel": self.channel, "versions": versions}, separators=(",", ":"))
            if len(text) <= MAX_METADATA_CHARS or not versions:
                return text
            versions.pop()

    @classmethod
    def decode(cls, text: object) -> FormState | None:
        """The state a form was drawn with; None for metadata opsbot did not write."""
        if not isinstance(text, str) or len(text) > MAX_METADATA_CHARS:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("runbook"), str):
            return None
        channel = data.get("channel")
        versions = data.get("versions")
        return cls(
            runbook=data["runbook"],
            channel=channel if isinstance(channel, str) else None,
            versions=tuple(item for item in versions if isinstance(item, str)) if isinstance(versions, list) else (),
        )


def runbook_form(
    spec: CommandSpec,
    vocabulary: Vocabulary,
    *,
    services: Sequence[str],
    given: Mapping[str, str],
    channel: str | None,
    versions: Sequence[str] = (),
) -> RunbookForm:
    """The form of ``spec`` for a person who may act on ``services``, starting from the ``given`` answers.

    Fields follow the usage line (then any parameter it leaves out); the env field offers the
    chosen service's environments, starting at the given one, else the service's default.
    """
    elements = compile_usage(spec.usage)
    required = set(required_slots(elements))
    names = [*slots(elements), *(name for name in spec.parameters if name not in slots(elements))]
    service = _chosen_service(spec, given, services)
    fields = [
        _field(name, spec.parameters[name], name not in required, given, vocabulary, services, service, dict(spec.parameters))
        for name in names
        if name in spec.parameters
    ]
    return RunbookForm(runbook=spec.name, description=spec.description, fields=tuple(fields), channel=channel, versions=tuple(versions))


def check_answers(spec: CommandSpec, answers: Mapping[str, str], vocabulary: Vocabulary) -> dict[str, str]:
    """A message per field that is wrong (missing, unknown, out of range, not matching its pattern); empty when all is well."""
    elements = compile_usage(spec.usage)
    required = set(required_slots(elements))
    errors: dict[str, str] = {}
    service: str | None = None
    ordered = sorted(spec.parameters.items(), key=lambda item: item[1].type != "service")
    for name, parameter in ordered:
        raw = answers.get(name, "").strip()
        if not raw:
            if name in required:
                errors[name] = f"{_label(name)} is needed."
            continue
        try:
            value = convert_value(name, parameter, raw, vocabulary, service)
        except UsageError as error:
            errors[name] = error.user_message
            continue
        if parameter.type == "service" and isinstance(value, str):
            service = value
    return errors


def answers_text(spec: CommandSpec, answers: Mapping[str, str]) -> str:
    """The command the answers make, in the usage's field order; raises ``UsageError`` for a value no quoting carries."""
    order = [*slots(compile_usage(spec.usage)), *spec.parameters]
    values = {name: answers[name].strip() for name in dict.fromkeys(order) if name in spec.parameters and answers.get(name, "").strip()}
    return command_text(spec.name, values)


def _chosen_service(spec: CommandSpec, given: Mapping[str, str], services: Sequence[str]) -> str | None:
    name = next((name for name, parameter in spec.parameters.items() if parameter.type == "service"), None)
    wanted = given.get(name, "").lower() if name else ""
    if wanted in services:
        return wanted
    return services[0] if len(services) == 1 else None


def _field(
    name: str,
    parameter: ParameterLike,
    optional: bool,
    given: Mapping[str, str],
    vocabulary: Vocabulary,
    services: Sequence[str],
    service: str | None,
    parameters: dict[str, ParameterLike],
) -> FormField:
    label, hint = _label(name), parameter.help
    initial = given.get(name) or (str(parameter.default) if parameter.default is not None else None)
    if parameter.type == "service":
        return FormField(name, "service", label, hint, optional, service, tuple(services), refreshes=True)
    if parameter.type == "env":
        envs = tuple(vocabulary.environments.get(service, ())) if service else ()
        chosen = (given.get(name) or "").lower()
        start = chosen if chosen in envs else vocabulary.default_envs.get(service or "") or (envs[0] if len(envs) == 1 else None)
        versions_follow = any(other.type == "version" for other in parameters.values())
        return FormField(name, "env", label, hint, optional, start, envs, refreshes=versions_follow)
    if parameter.type == "int":
        return FormField(name, "number", label, hint, optional, initial, minimum=parameter.min, maximum=parameter.max)
    if parameter.type == "choice":
        return FormField(name, "choice", label, hint, optional, initial, tuple(parameter.choices or ()))
    if parameter.type == "version":
        return FormField(name, "version", label, hint, optional, initial, pattern=parameter.pattern)
    if parameter.type == "duration":
        hint = hint or "like 30m, 2h or 1d"
    return FormField(name, "text", label, hint, optional, initial, pattern=parameter.pattern)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()
