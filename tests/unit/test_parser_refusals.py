"""What a mistyped ``/ops`` command gets back: what was wrong, what is allowed, and the usage line.

Slack shows these texts in the ack, so each refusal is asserted whole, with the usage line it
carries (``None`` where there is no one command to show). The cases are grouped by what the
person got wrong; the accepted spellings at the end are the ones the refusals must not catch.
"""

from __future__ import annotations

import pytest

from bot.catalog.catalog import Catalog
from commands.errors import UsageError
from commands.parser import CommandRequest, parse_command
from commands.spec import CommandSpec, Param
from commands.vocabulary import Vocabulary

DEPLOY = "deploy {service} {version} [to {env}]"
MIGRATE = "migrate {service} to {version} [in {env}]"
ROLLBACK = "rollback {service} [in {env}] [to {revision}] [at {commit}]"
STATUS = "status {service} [in {env}]"
LOCK = "lock {service} [in {env}] [for {duration}] [--reason {reason}]"
CAN_I = "can-i {command}"
EVERY_COMMAND = (
    "approvals, can-i, cancel, deploy, digest, help, history, insights, lock, migrate, restart, rollback, scale, show, status, … and 1 more"
)
RUNBOOKS = "deploy, migrate, restart, rollback, scale, status"

Refusal = tuple[str, str, str | None]
"""The text typed, the message the person reads, the usage line shown under it."""


def refusal(catalog: Catalog, text: str) -> tuple[str, str | None]:
    with pytest.raises(UsageError) as caught:
        parse_command(text, catalog.commands, catalog.vocabulary)
    return caught.value.user_message, caught.value.usage


def check(catalog: Catalog, case: Refusal) -> None:
    text, message, usage = case
    assert refusal(catalog, text) == (message, usage)


MISSING: list[Refusal] = [
    ("deploy", "Missing service, version.", DEPLOY),
    ("deploy checkout", "Missing version.", DEPLOY),
    # A word of the command is never read as a value: `deploy checkout in` is not a deploy of version "in" (or "to").
    ("deploy checkout in", "Missing version before 'in'.", DEPLOY),
    ("deploy checkout to production", "Missing version before 'to'.", DEPLOY),
    ("deploy checkout in production", "Missing version before 'in'.", DEPLOY),
    ("migrate checkout to in staging", "Missing version before 'in'.", MIGRATE),
    ("deploy version=1.4.2", "Missing service.", DEPLOY),
    ("migrate checkout", "Missing version.", MIGRATE),
    ("show", "Missing request.", "show {request}"),
]


@pytest.mark.parametrize("case", MISSING, ids=[case[0] for case in MISSING])
def test_a_missing_value_is_named_with_the_usage_line(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


ENDED_EARLY: list[Refusal] = [
    ("deploy checkout 1.4.2 to", "The command ended early; expected <env>.", DEPLOY),
    ("migrate checkout to", "The command ended early; expected <version>.", MIGRATE),
    ("rollback checkout to", "The command ended early; expected <revision>.", ROLLBACK),
]


@pytest.mark.parametrize("case", ENDED_EARLY, ids=[case[0] for case in ENDED_EARLY])
def test_a_command_that_stops_after_a_word_says_what_should_follow_it(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


OUT_OF_PLACE: list[Refusal] = [
    ("status checkout staging", "Did not understand 'staging' here; expected 'in' or the end of the command.", STATUS),
    ("migrate checkout 5", "Did not understand '5' here; expected 'to'.", MIGRATE),
    ("status checkout in staging extra", "Did not understand 'extra' here; expected the end of the command.", STATUS),
    ("approvals =mine", "Did not understand '=mine' here; expected the end of the command.", "approvals"),
    ("deploy checkout 1.4.2 --", "Did not understand '--' here; expected 'to' or the end of the command.", DEPLOY),
    ("deploy checkout 1.4.2 =production", "Did not understand '=production' here; expected 'to' or the end of the command.", DEPLOY),
    # A quoted word is a value, never the `in` that stands for the usage's `to`.
    ('deploy checkout 1.4.2 "in" production', "Did not understand 'in' here; expected 'to' or the end of the command.", DEPLOY),
    # The word quoted is the one typed, though `in` was read as deploy's `to`.
    ("deploy checkout 1.4.2 to production in staging", "Did not understand 'in' here; expected the end of the command.", DEPLOY),
    # No quoting hint: `--env=production` is a whole value, not the start of one with spaces.
    ("deploy checkout --env=production 1.4.2 now", "Did not understand 'now' here; expected the end of the command.", DEPLOY),
]


@pytest.mark.parametrize("case", OUT_OF_PLACE, ids=[case[0] for case in OUT_OF_PLACE])
def test_a_word_out_of_place_is_quoted_with_what_was_expected_there(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


LOCK_STRAY = "Did not understand 'migration' here; expected 'for' or 'in' or the end of the command."
QUOTING: list[Refusal] = [
    (
        "lock checkout in staging --reason db migration",
        "Did not understand 'migration' here; expected 'for' or the end of the command."
        ' A value with spaces needs quotes: --reason "db migration".',
        LOCK,
    ),
    ("lock checkout reason=db migration now", f'{LOCK_STRAY} A value with spaces needs quotes: reason="db migration now".', LOCK),
    ("lock checkout --reason=db migration now", f'{LOCK_STRAY} A value with spaces needs quotes: --reason="db migration now".', LOCK),
    ("lock service=checkout reason=db migration", f'{LOCK_STRAY} A value with spaces needs quotes: reason="db migration".', LOCK),
    ("lock --reason db migration service=checkout", f'{LOCK_STRAY} A value with spaces needs quotes: --reason "db migration".', LOCK),
    # The suggested value stops before the next quoted word, named value or flag.
    ('lock checkout --reason db migration "now"', f'{LOCK_STRAY} A value with spaces needs quotes: --reason "db migration".', LOCK),
    (
        "lock checkout --reason db migration env=staging",
        "Did not understand 'migration' here; expected 'for' or the end of the command."
        ' A value with spaces needs quotes: --reason "db migration".',
        LOCK,
    ),
    (
        "lock checkout --reason db migration --duration 2h",
        "Did not understand 'migration' here; expected 'in' or the end of the command."
        ' A value with spaces needs quotes: --reason "db migration".',
        LOCK,
    ),
    (
        "lock checkout env=staging --reason db migration",
        "Did not understand 'migration' here; expected 'for' or the end of the command."
        ' A value with spaces needs quotes: --reason "db migration".',
        LOCK,
    ),
    # Only the first `=` separates the name from the value.
    (
        "lock checkout in staging reason=ticket=OPS-12 db migration",
        "Did not understand 'db' here; expected 'for' or the end of the command."
        ' A value with spaces needs quotes: reason="ticket=OPS-12 db migration".',
        LOCK,
    ),
]


@pytest.mark.parametrize("case", QUOTING, ids=[case[0] for case in QUOTING])
def test_words_after_a_named_value_suggest_quoting_the_whole_value(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


DEPLOY_PARAMETERS = "Parameters: env, service, version."
NAMED: list[Refusal] = [
    ("deploy checkout version=1 version=2", "version is given twice.", DEPLOY),
    ("deploy checkout 1.4.2 env=production --env staging", "env is given twice.", DEPLOY),
    ("deploy checkout --version", "--version needs a value after it.", DEPLOY),
    ("deploy checkout vresion=1", f"deploy has no parameter 'vresion'. Did you mean version? {DEPLOY_PARAMETERS}", DEPLOY),
    ("deploy checkout 1.4.2 --e-nv production", f"deploy has no parameter 'e_nv'. Did you mean env? {DEPLOY_PARAMETERS}", DEPLOY),
    ("deploy checkout 1.4.2 --x", f"deploy has no parameter 'x'. {DEPLOY_PARAMETERS}", DEPLOY),
    ("deploy checkout 1.4.2 colour=blue", f"deploy has no parameter 'colour'. {DEPLOY_PARAMETERS}", DEPLOY),
    ("approvals mine=yes", "approvals has no parameter 'mine'. Parameters: none.", "approvals"),
]


@pytest.mark.parametrize("case", NAMED, ids=[case[0] for case in NAMED])
def test_a_wrong_named_value_is_refused_with_the_parameters_allowed(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


WRONG_VALUE: list[Refusal] = [
    ("show abc", "request must be a whole number 1–2000000000; got 'abc'.", "show {request}"),
    ("cancel 0", "request 0 is out of range; allowed 1–2000000000.", "cancel {request}"),
    (
        "deploy checkout 1.4.2 to prod",
        "Unknown environment 'prod'. Did you mean production? checkout has environments: production, staging.",
        DEPLOY,
    ),
]


@pytest.mark.parametrize("case", WRONG_VALUE, ids=[case[0] for case in WRONG_VALUE])
def test_a_value_of_the_wrong_kind_shows_the_commands_usage_line(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


UNKNOWN: list[Refusal] = [
    ("zzz", f"Unknown command 'zzz'. Commands: {EVERY_COMMAND}. Try `help`.", None),
    ("deploi checkout 1.4.2", f"Unknown command 'deploi'. Did you mean `deploy`? Commands: {EVERY_COMMAND}. Try `help`.", None),
]


@pytest.mark.parametrize("case", UNKNOWN, ids=[case[0] for case in UNKNOWN])
def test_an_unknown_command_lists_the_commands(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


CAN_I_REFUSALS: list[Refusal] = [
    ("can-i", "`can-i` needs a runbook command after it.", CAN_I),
    ("can-i help", "`can-i` asks about a runbook; `help` is a built-in command.", CAN_I),
    ("can-i deploi checkout", f"Unknown command 'deploi'. Did you mean `deploy`? Commands: {RUNBOOKS}. Try `help`.", None),
    ("can-i deploy checkout", "Missing version.", DEPLOY),
]


@pytest.mark.parametrize("case", CAN_I_REFUSALS, ids=[case[0] for case in CAN_I_REFUSALS])
def test_can_i_without_a_runbook_command_says_what_it_needs(example_catalog: Catalog, case: Refusal) -> None:
    check(example_catalog, case)


# -- what the refusals must let through -------------------------------------------------------


def test_can_i_carries_the_runbook_command_it_asks_about(example_catalog: Catalog) -> None:
    parsed = parse_command("can-i DEPLOY checkout 1.4.2 to production", example_catalog.commands, example_catalog.vocabulary)
    deploy = CommandRequest(command="deploy", params={"service": "checkout", "version": "1.4.2", "env": "production"})
    assert parsed == CommandRequest(command="can-i", params={"command": "deploy"}, builtin=True, subject=deploy)


def test_a_built_in_command_is_marked_built_in_so_it_runs_without_a_runbook(example_catalog: Catalog) -> None:
    parsed = parse_command("history checkout", example_catalog.commands, example_catalog.vocabulary)
    assert parsed == CommandRequest(command="history", params={"service": "checkout", "env": None, "limit": 10}, builtin=True)


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("deploy checkout --version=Rel-2", {"service": "checkout", "version": "Rel-2", "env": "staging"}),
        ("deploy checkout VERSION=Rel-2", {"service": "checkout", "version": "Rel-2", "env": "staging"}),
        ("deploy checkout --version 2.0.0 to production", {"service": "checkout", "version": "2.0.0", "env": "production"}),
        ("deploy checkout 1.4.2 --ENV production", {"service": "checkout", "version": "1.4.2", "env": "production"}),
        ("lock checkout --reason=a=b", {"service": "checkout", "env": "staging", "duration": 3_600, "reason": "a=b"}),
        ("lock checkout reason=a=b", {"service": "checkout", "env": "staging", "duration": 3_600, "reason": "a=b"}),
    ],
)
def test_a_named_value_keeps_what_was_typed_after_the_first_equals_sign(
    example_catalog: Catalog, text: str, params: dict[str, object]
) -> None:
    assert parse_command(text, example_catalog.commands, example_catalog.vocabulary).params == params


# -- usage lines the shipped commands do not write, but a runbook may ------------------------

SHOP = Vocabulary(environments={"checkout": ("staging", "production"), "search": ("production",)})
SERVICE = Param(type="service")
ENV = Param(type="env")


def test_a_flag_the_usage_requires_is_read_in_its_place() -> None:
    usage = "note {service} --reason {reason}"
    note = CommandSpec(name="note", description="Leave a note", usage=usage, parameters={"service": SERVICE, "reason": Param()})
    parsed = parse_command('note checkout --REASON "db migration"', {"note": note}, SHOP)
    assert parsed.params == {"service": "checkout", "reason": "db migration"}
    with pytest.raises(UsageError) as caught:
        parse_command("note checkout", {"note": note}, SHOP)
    assert (caught.value.user_message, caught.value.usage) == ("Missing reason.", usage)


def test_an_env_written_before_the_service_is_checked_against_that_service() -> None:
    failover = CommandSpec(
        name="failover", description="Fail over", usage="failover {env} {service}", parameters={"env": ENV, "service": SERVICE}
    )
    assert parse_command("failover production search", {"failover": failover}, SHOP).params == {"env": "production", "service": "search"}
    with pytest.raises(UsageError) as caught:
        parse_command("failover prod checkout", {"failover": failover}, SHOP)
    assert caught.value.user_message == (
        "Unknown environment 'prod'. Did you mean production? checkout has environments: production, staging."
    )
    with pytest.raises(UsageError) as caught:
        parse_command("failover staging search", {"failover": failover}, SHOP)
    assert caught.value.user_message == "Unknown environment 'staging'. search has environments: production."


def test_in_stands_for_to_only_where_to_names_an_environment() -> None:
    promote = CommandSpec(
        name="promote",
        description="Promote a build",
        usage="promote {service} to {stage}",
        parameters={"service": SERVICE, "stage": Param(type="choice", choices=["canary", "stable"])},
    )
    assert parse_command("promote checkout to canary", {"promote": promote}, SHOP).params == {"service": "checkout", "stage": "canary"}
    with pytest.raises(UsageError) as caught:
        parse_command("promote checkout in canary", {"promote": promote}, SHOP)
    assert caught.value.user_message == "Did not understand 'in' here; expected 'to'."


def test_values_come_in_the_order_the_usage_writes_them_whatever_order_they_are_declared_in() -> None:
    """A request's title lists its values in this order (``#12 rollback checkout 7 1a2b3c4 in production``)."""
    rollback = CommandSpec(
        name="rollback",
        description="Roll back",
        usage="rollback {service} [to {revision}] [at {commit}]",
        parameters={"commit": Param(), "revision": Param(type="int"), "service": SERVICE, "note": Param(default="-")},
    )
    parsed = parse_command("rollback checkout to 7 at 1a2b3c4", {"rollback": rollback}, SHOP)
    assert list(parsed.params.items()) == [("service", "checkout"), ("revision", 7), ("commit", "1a2b3c4"), ("note", "-")]


def test_a_quoted_word_of_the_command_is_a_value(example_catalog: Catalog) -> None:
    parsed = parse_command('deploy checkout "to" in staging', example_catalog.commands, example_catalog.vocabulary)
    assert (parsed.params["version"], parsed.env) == ("to", "staging")


def test_every_value_that_could_stand_before_a_word_of_the_command_is_named() -> None:
    usage = "copy {service} [{source}] {target} [in {env}]"
    copy = CommandSpec(
        name="copy",
        description="Copy a build",
        usage=usage,
        parameters={"service": SERVICE, "source": Param(), "target": Param(), "env": ENV},
    )
    assert parse_command("copy checkout b1 b2 in staging", {"copy": copy}, SHOP).params["target"] == "b2"
    with pytest.raises(UsageError) as caught:
        parse_command("copy checkout in staging", {"copy": copy}, SHOP)
    assert (caught.value.user_message, caught.value.usage) == ("Missing source, target before 'in'.", usage)
