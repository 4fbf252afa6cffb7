"""The shell's loop: read a line, act as the current user, print what Slack would have shown.

Scripted use (stdin is not a terminal) waits for each command's background work before
reading the next line, so a transcript is deterministic: the tests drive ``opsbot demo``
exactly like this.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Protocol, TextIO

from bot.audit.events import Actor
from bot.catalog.catalog import Catalog
from bot.errors import OpsbotError, UsageError
from bot.messages import Button, Message, MessageRef
from bot.requests.front_door import FrontDoor
from bot.requests.invocation import Click, Invocation
from bot.shell.prompts import Ask, fill_in, pick_runbook, read_answer
from bot.shell.render import render_message
from commands.partial import bind_partially

SHELL_HELP = """\
Shell commands:
  /ops <command>      run an opsbot command (the /ops is optional)
  /as <user>          act as another user (a Slack user id or a name from users: in the config)
  /in <channel>       type in another channel
  /click <n>          press button n
  /wait               wait for running work to finish
  /users              list the users the config knows
  /quit               leave (also Ctrl-D)"""


class UnknownUser(OpsbotError):
    """``--user``/``/as`` named someone the config does not know: acting as them would test nothing real."""


class ShellCore(Protocol):
    """What the shell drives: the front door, the catalog (for names), and a way to wait for work (``OpsbotCore`` has all three)."""

    @property
    def catalog(self) -> Catalog: ...
    @property
    def front_door(self) -> FrontDoor: ...
    def wait_idle(self, timeout: float | None = None) -> bool: ...


@dataclass
class _ButtonTarget:
    button: Button
    message: MessageRef


class ShellNotifier:
    """Prints messages; remembers buttons so ``/click n`` can press them."""

    def __init__(self, output: TextIO, name_of: dict[str, str]) -> None:
        self._output = output
        self._names = name_of
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._button_numbers = itertools.count(1)
        self.buttons: dict[int, _ButtonTarget] = {}
        self._numbers: dict[tuple[MessageRef, str], int] = {}
        self._last_lines: dict[MessageRef, list[str]] = {}
        self.prompt: str | None = None
        """Set while an interactive shell waits for input: output then clears the line and redraws it."""

    def post(self, channel: str, message: Message, *, thread: MessageRef | None = None) -> MessageRef | None:
        ref = MessageRef(channel=channel, ts=f"{next(self._ts)}.000")
        where = f"[#{channel}{' thread' if thread else ''}]"
        self._print(ref, message, where)
        return ref

    def update(self, ref: MessageRef, message: Message) -> None:
        self._print(ref, message, f"[#{ref.channel} updated]", only_changes=True)

    def upload(self, channel: str, title: str, content: str | bytes, *, thread: MessageRef | None = None) -> None:
        if isinstance(content, bytes):
            with self._lock:
                self._write([f"[#{channel} file] {title} ({len(content):,} bytes; shown in Slack as a picture)"])
            return
        with self._lock:
            self._write([f"[#{channel} file] {title} ({len(content)} characters)", *content.splitlines()[:40]])

    def private(self, message: Message) -> None:
        with self._lock:
            lines = render_message(message, self.name, [])
            self._write([f"(only you) {lines[0]}", *lines[1:]])

    def name(self, user_id: str) -> str:
        return self._names.get(user_id, user_id)

    def _print(self, ref: MessageRef, message: Message, where: str, *, only_changes: bool = False) -> None:
        """Print a message; an update prints its title and only the lines that changed."""
        with self._lock:
            numbers = [self._number(ref, button) for button in message.buttons]
            lines = render_message(message, self.name, numbers)
            previous = self._last_lines.get(ref, [])
            self._last_lines[ref] = lines
            body = [line for line in lines[1:] if line not in previous] if only_changes else lines[1:]
            if only_changes and not body and previous[:1] == lines[:1]:
                return
            self._write([f"{where} {lines[0]}", *(f"    {line}" for line in body)])

    def _number(self, ref: MessageRef, button: Button) -> int:
        """A button keeps its number for the life of its message, so scripts can rely on it."""
        key = (ref, str(button.action))
        if key not in self._numbers:
            self._numbers[key] = next(self._button_numbers)
        number = self._numbers[key]
        self.buttons[number] = _ButtonTarget(button, ref)
        return number

    def _write(self, lines: list[str]) -> None:
        prompt = self.prompt
        # A run's updates arrive while the person sits at the prompt: clear it, print, draw it again.
        prefix, suffix = ("\r\x1b[K", prompt) if prompt is not None else ("", "")
        self._output.write(prefix + "\n".join(lines) + "\n" + suffix)
        self._output.flush()

    def show_prompt(self, prompt: str) -> None:
        with self._lock:
            self.prompt = prompt
            self._output.write(prompt)
            self._output.flush()

    def hide_prompt(self) -> None:
        with self._lock:
            self.prompt = None


class ShellReplier:
    """Private replies go to the same terminal, marked as such."""

    def __init__(self, notifier: ShellNotifier) -> None:
        self._notifier = notifier

    def private(self, message: Message) -> None:
        self._notifier.private(message)


class ShellSession:
    """One person at a terminal, able to become anyone the config knows."""

    def __init__(self, core: ShellCore, notifier: ShellNotifier, *, user: str | None, channel: str, output: TextIO) -> None:
        self.core = core
        self.notifier = notifier
        self.output = output
        self.channel = channel
        self.actor = self._actor(user) if user else self._first_user()
        self.replier = ShellReplier(notifier)
        self._ask: Ask | None = None

    def banner(self) -> str:
        """Who you are and what to try, with this config's own services and people."""
        lines = [f"You are {self.actor.name} in #{self.channel}. Try:", "  /ops help"]
        lines += suggested_steps(self.core.catalog, self.actor)
        lines.append("/help lists the shell commands; /quit leaves.")
        return "\n".join(lines) + "\n"

    def run(self, source: TextIO) -> None:
        interactive = source.isatty()
        self._ask = read_answer(source, self.output, echo=not interactive)
        while True:
            if interactive:
                self.notifier.show_prompt(f"{self.actor.name}@#{self.channel}> ")
            line = source.readline()
            self.notifier.hide_prompt()
            if not line:
                break
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not interactive:
                self.output.write(f"{self.actor.name}@#{self.channel}> {line}\n")
            if not self.handle(line):
                break
            if not interactive:
                self.core.wait_idle(timeout=300)

    def handle(self, line: str) -> bool:
        """Act on one line; False means quit."""
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("/quit", "/exit"):
            return False
        if word == "/help":
            self._say(SHELL_HELP)
        elif word == "/as":
            try:
                self.actor = self._actor(rest)
            except UnknownUser as error:
                self._say(error.user_message)
            else:
                self._say(f"You are now {self.actor.name} ({self.actor.user_id}).")
        elif word == "/in":
            self.channel = rest.lstrip("#") or self.channel
            self._say(f"You are now in #{self.channel}.")
        elif word == "/click":
            self._click(rest)
        elif word == "/wait":
            self.core.wait_idle(timeout=600)
        elif word == "/users":
            users = self.core.catalog.config.users
            self._say("\n".join(f"{name} ({user_id})" for user_id, name in users.items()) or "No users in the config.")
        else:
            text = rest if word == "/ops" else line
            completed = self._completed(text)
            if completed is not None:
                self.core.front_door.handle_command(Invocation(self.actor, self.channel, completed), self.replier)
        return True

    def _completed(self, text: str) -> str | None:
        """``ops`` alone or ``ops deploy checkout``: the form's questions, then the command they make (else ``text``).

        Only while reading from a source (``run``); a usage error the form cannot finish goes to the front door as typed.
        """
        ask = self._ask
        if ask is None:
            return text
        forms, catalog = self.core.front_door.forms, self.core.catalog
        try:
            if not text.strip():
                return fill_in(
                    forms,
                    catalog,
                    self.actor,
                    self.channel,
                    pick_runbook(forms, self.actor, self.channel, ask, self._say),
                    {},
                    ask,
                    self._say,
                )
            try:
                catalog.parse(text)
            except UsageError:
                partial = bind_partially(text, catalog.commands, catalog.vocabulary)
                if partial is not None:
                    return fill_in(forms, catalog, self.actor, self.channel, partial.command, partial.given, ask, self._say)
        except OpsbotError as error:  # cancelled, or the policy leaves nothing to choose
            self._say(error.user_message)
            return None
        return text

    def _click(self, number_text: str) -> None:
        if not number_text.isdigit() or int(number_text) not in self.notifier.buttons:
            self._say(f"There is no button {number_text!r}; buttons are numbered in [brackets].")
            return
        target = self.notifier.buttons[int(number_text)]
        click = Click(self.actor, target.message.channel, target.button.action, target.button.value, target.message)
        self.core.front_door.handle_click(click, self.replier)

    def _actor(self, wanted: str) -> Actor:
        """A user the config knows, by name or id (a member id of a group counts); anyone else is refused."""
        config = self.core.catalog.config
        for user_id, name in config.users.items():
            if wanted in (user_id, name):
                return Actor(user_id=user_id, name=name)
        if any(wanted in members for members in config.groups.values()) and wanted.startswith("U"):
            return Actor(user_id=wanted, name=wanted)
        names = ", ".join(config.users.values()) or "none (add users: to the config)"
        raise UnknownUser(
            f"The config does not know the user {wanted!r}; known users: {names}. Use a name or a U… id from users: or groups:."
        )

    def _first_user(self) -> Actor:
        for user_id, name in self.core.catalog.config.users.items():
            return Actor(user_id=user_id, name=name)
        return Actor(user_id="U0LOCAL", name="local")

    def _say(self, text: str) -> None:
        self.output.write(text + "\n")
        self.output.flush()


def suggested_steps(catalog: Catalog, actor: Actor) -> list[str]:
    """A request from the runbooks' own examples, and who may approve it, for the banner."""
    config = catalog.config
    candidates = [spec for name, spec in sorted(catalog.commands.items()) if not spec.builtin and spec.examples]
    candidates.sort(key=lambda spec: spec.name != "deploy")
    for spec in candidates:
        for example in spec.examples:
            try:
                request = catalog.parse(example)
            except OpsbotError:
                continue
            service, env = request.service, request.env
            if service is None or env is None:
                continue
            steps: list[tuple[str, str]] = [(f"/ops {example}", "")]
            rule = next((rule for rule in config.policy.rules if rule.matches(spec.name, service, env)), None)
            group = rule.approvals.approvers[0] if rule is not None and rule.approvals and rule.approvals.count else None
            approver = next((user for user in config.groups.get(group or "", []) if user != actor.user_id and user in config.users), None)
            if group is not None and approver is not None:
                name = config.users[approver]
                steps = [(steps[0][0], f"(needs an approval from @{group})"), (f"/as {name}", f"({name} is in @{group})")]
                steps.append(("/click 1", "(Approve, then watch it run)"))
            steps.append((f"/ops history {service}", ""))
            width = max(len(command) for command, _ in steps) + 3
            return [f"  {command:<{width}}{note}".rstrip() for command, note in steps]
    return []
