"""A runbook's form as terminal prompts: the fields a command left out, asked in order, choices numbered.

The same form model as the Slack modal (``bot.requests.forms``, built by the core's ``Forms``
with the policy's filter and the target's past versions), and the same end: the answers become
the command text the front door parses, so a prompted request is the typed one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TextIO

from bot.audit.events import Actor
from bot.catalog.catalog import Catalog
from bot.errors import OpsbotError
from bot.requests.form_desk import Forms
from bot.requests.forms import FormField, RunbookForm, answers_text, check_answers

Ask = Callable[[str], str | None]
"""Show a prompt, return the line typed (None at end of input)."""


class FormCancelled(OpsbotError):
    """Input ended (Ctrl-D) in the middle of a form: nothing is requested."""


def pick_runbook(forms: Forms, actor: Actor, channel: str, ask: Ask, say: Callable[[str], None]) -> str:
    """``/ops`` alone: the runbooks the person may run, numbered; the one chosen."""
    picker = forms.picker(actor, channel)
    say("Which runbook?")
    say("\n".join(f"  {number}) {choice.name} — {choice.description}" for number, choice in enumerate(picker.runbooks, 1)))
    names = tuple(choice.name for choice in picker.runbooks)
    while True:
        answer = _chosen(_ask_or_cancel(ask, "runbook> "), names)
        if answer in names:
            return answer
        say(f"Choose a number from 1 to {len(names)}, or a runbook's name.")


def fill_in(
    forms: Forms, catalog: Catalog, actor: Actor, channel: str, runbook: str, given: Mapping[str, str], ask: Ask, say: Callable[[str], None]
) -> str:
    """Ask every field the command left out, in the form's order; the command text the answers make."""
    answers = dict(given)
    spec = catalog.commands[runbook]
    form = forms.form(runbook, actor, channel, answers)
    say(f"{runbook}: {form.description} (Ctrl-D cancels)")
    asked: set[str] = set()
    while (field := _next_question(form, answers, asked)) is not None:
        if field.kind == "version":
            form = forms.with_versions(form)
        answers[field.name] = _ask_field(field, form, ask, say, functools.partial(_error, catalog, spec.name, dict(answers), field.name))
        asked.add(field.name)
        if field.refreshes:  # the service's envs (and the target's versions) follow the answer
            form = forms.form(runbook, actor, channel, answers)
    return answers_text(spec, answers)


def _next_question(form: RunbookForm, answers: Mapping[str, str], asked: set[str]) -> FormField | None:
    for field in form.fields:
        if field.name in asked or answers.get(field.name):
            continue
        if field.kind == "env" and field.initial is not None:
            continue  # the service's default env, as typed text would take it
        return field
    return None


def _ask_field(field: FormField, form: RunbookForm, ask: Ask, say: Callable[[str], None], error: Callable[[str], str | None]) -> str:
    choices = field.options or (form.versions[:9] if field.kind == "version" else ())
    about = [field.hint] if field.hint else []
    if field.minimum is not None and field.maximum is not None:
        about.append(f"{field.minimum}–{field.maximum}")
    elif field.minimum is not None or field.maximum is not None:
        about.append(f"≥ {field.minimum}" if field.minimum is not None else f"≤ {field.maximum}")
    details = f" ({', '.join(about)})" if about else ""
    say(f"{field.label}{details}:")
    if choices:
        say("  " + "  ".join(f"{number}) {choice}" for number, choice in enumerate(choices, 1)))
    default = field.initial or ""
    suffix = f" [{default}]" if default else (" (Enter to skip)" if field.optional else "")
    while True:
        typed = _ask_or_cancel(ask, f"{field.label.lower()}{suffix}> ").strip()
        value = _chosen(typed, choices) if typed else default
        if not value and field.optional:
            return ""
        problem = error(value)
        if problem is None:
            return value
        say(problem)


def _error(catalog: Catalog, runbook: str, answers: Mapping[str, str], name: str, value: str) -> str | None:
    """The form's own check of one answer (the grammar's conversions), or None when it is fine."""
    errors = check_answers(catalog.commands[runbook], {**answers, name: value}, catalog.vocabulary)
    return errors.get(name)


def _chosen(typed: str, choices: tuple[str, ...]) -> str:
    """``2`` is the second choice; anything else is taken as typed."""
    if typed.isdigit() and 1 <= int(typed) <= len(choices):
        return choices[int(typed) - 1]
    return typed


def _ask_or_cancel(ask: Ask, prompt: str) -> str:
    line = ask(prompt)
    if line is None:
        raise FormCancelled("Form cancelled; nothing was requested.")
    return line


def read_answer(source: TextIO, output: TextIO, *, echo: bool) -> Ask:
    """An ``Ask`` over the shell's input: a scripted transcript echoes each answer after its prompt."""

    def ask(prompt: str) -> str | None:
        output.write(prompt)
        output.flush()
        line = source.readline()
        if not line:
            output.write("\n")
            return None
        if echo:
            output.write(line if line.endswith("\n") else line + "\n")
        return line.rstrip("\n")

    return ask
