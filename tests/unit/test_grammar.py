"""The /ops grammar: what people type, what they get back."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.catalog.catalog import Catalog
from commands.errors import UsageError
from commands.parser import CommandRequest, parse_command


def parse(catalog: Catalog, text: str) -> CommandRequest:
    return parse_command(text, catalog.commands, catalog.vocabulary)


def usage_error(catalog: Catalog, text: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse(catalog, text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "command", "params"),
    [
        ("deploy checkout 1.4.2 to production", "deploy", {"service": "checkout", "version": "1.4.2", "env": "production"}),
        ("deploy checkout 1.4.2", "deploy", {"service": "checkout", "version": "1.4.2", "env": "staging"}),
        ("rollback checkout in production", "rollback", {"service": "checkout", "env": "production", "revision": None, "commit": None}),
        ("rollback checkout in production to 7", "rollback", {"service": "checkout", "env": "production", "revision": 7, "commit": None}),
        (
            "rollback checkout in production at 1a2b3c4",
            "rollback",
            {"service": "checkout", "env": "production", "revision": None, "commit": "1a2b3c4"},
        ),
        ("scale checkout 6 in staging", "scale", {"service": "checkout", "replicas": 6, "env": "staging"}),
        ("restart checkout in staging", "restart", {"service": "checkout", "env": "staging"}),
        ("status checkout", "status", {"service": "checkout", "env": "staging"}),
        ("status search", "status", {"service": "search", "env": "production"}),
        ("deploy checkout version=1.4.2 env=production", "deploy", {"service": "checkout", "version": "1.4.2", "env": "production"}),
        ("DEPLOY Checkout 1.4.2 TO Production", "deploy", {"service": "checkout", "version": "1.4.2", "env": "production"}),
        ("deploy checkout --version 2.0.0", "deploy", {"service": "checkout", "version": "2.0.0", "env": "staging"}),
    ],
)
def test_runbook_commands_parse_to_typed_parameters(example_catalog: Catalog, text: str, command: str, params: dict[str, object]) -> None:
    parsed = parse(example_catalog, text)
    assert parsed.command == command
    assert parsed.params == params
    assert not parsed.builtin


def test_lock_takes_a_quoted_reason_with_smart_quotes(example_catalog: Catalog) -> None:
    plain = parse(example_catalog, 'lock checkout in production --reason "db migration"')
    smart = parse(example_catalog, "lock checkout in production for 2h reason=“db migration”")
    assert plain.params["reason"] == "db migration"
    assert smart.params["reason"] == "db migration"
    assert smart.params["duration"] == 7_200


def test_empty_text_is_help(example_catalog: Catalog) -> None:
    assert parse(example_catalog, "   ") == CommandRequest(command="help", builtin=True)


def test_unknown_command_suggests_the_closest(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploi checkout 1.4.2")
    assert "Unknown command 'deploi'" in error.user_message
    assert "Did you mean `deploy`?" in error.user_message


def test_unknown_service_lists_the_known_ones(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploy chekout 1.4.2")
    assert "Unknown service 'chekout'" in error.user_message
    assert "Did you mean checkout?" in error.user_message
    assert "billing, checkout, payments, search, storefront, workers" in error.user_message


def test_unknown_env_names_the_services_envs(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploy checkout 1.4.2 to prod")
    assert "Did you mean production?" in error.user_message
    assert "checkout has environments: production, staging" in error.user_message


def test_replicas_out_of_range_shows_the_range(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "scale checkout 200 in staging")
    assert error.user_message == "replicas 200 is out of range; allowed 0–100."
    assert error.usage == "scale {service} {replicas} [in {env}]"


def test_missing_argument_names_it_and_shows_usage(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploy checkout")
    assert error.user_message == "Missing version."
    assert error.usage == "deploy {service} {version} [to {env}]"


def test_in_and_to_both_name_the_env_in_every_runbook(example_catalog: Catalog) -> None:
    assert example_catalog.parse("deploy checkout 1.4.2 in production").params["env"] == "production"
    assert example_catalog.parse("restart checkout to staging").params["env"] == "staging"
    # rollback uses `to` for its revision, so `to` there stays the revision's word.
    assert example_catalog.parse("rollback checkout in production to 7").params["revision"] == 7


def test_wrong_word_before_the_env_says_what_was_expected(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploy checkout 1.4.2 at production")
    assert "Did not understand 'at' here; expected 'to'" in error.user_message


def test_version_with_shell_metacharacters_is_refused_by_its_pattern(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploy checkout '1.4.2; rm -rf /' to production")
    assert "version '1.4.2; rm -rf /' is not valid" in error.user_message


def test_unknown_key_suggests_the_parameter(example_catalog: Catalog) -> None:
    error = usage_error(example_catalog, "deploy checkout vresion=1")
    assert "deploy has no parameter 'vresion'. Did you mean version?" in error.user_message


def test_unclosed_quote_is_a_usage_error(example_catalog: Catalog) -> None:
    assert "quote is not closed" in usage_error(example_catalog, 'lock checkout --reason "db').user_message


def test_control_characters_are_refused(example_catalog: Catalog) -> None:
    assert "control characters" in usage_error(example_catalog, "status checkout\x00").user_message


def test_given_twice_is_refused(example_catalog: Catalog) -> None:
    assert "env is given twice" in usage_error(example_catalog, "status checkout env=staging env=production").user_message


def test_history_without_env_means_every_env(example_catalog: Catalog) -> None:
    assert parse(example_catalog, "history checkout").params == {"service": "checkout", "env": None, "limit": 10}


def test_every_runbook_example_parses(example_catalog: Catalog) -> None:
    for runbook in example_catalog.runbooks.values():
        assert runbook.examples, f"{runbook.name} has no examples"
        for example in runbook.examples:
            assert parse(example_catalog, example).command == runbook.name


WORDS = st.sampled_from(
    ["deploy", "rollback", "scale", "status", "lock", "help", "checkout", "production", "staging", "to", "in", "for",
     "--reason", "env=", "version=1.2", "7", "-1", "99999999999", '"', "'", "“", "=", "{", "}", "[", "]", "<!channel>"]
)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.one_of(st.text(max_size=300), st.lists(WORDS, max_size=12).map(" ".join)))
def test_parser_only_ever_raises_usage_error(example_catalog: Catalog, text: str) -> None:
    try:
        result = parse(example_catalog, text)
    except UsageError as error:
        assert error.user_message
    else:
        assert result.command in example_catalog.commands


def test_an_env_without_a_service_lists_every_env_instead_of_crashing() -> None:
    """A runbook with an ``env`` but no ``service`` (a whole-env job): leaving the env out names the choices."""
    from commands.parser import parse_command
    from commands.spec import CommandSpec, Param
    from commands.vocabulary import Vocabulary

    spec = CommandSpec(name="drain", description="Drain an environment", usage="drain [in {env}]", parameters={"env": Param(type="env")})
    vocabulary = Vocabulary(environments={"checkout": ("staging", "production"), "search": ("production",)})
    with pytest.raises(UsageError) as caught:
        parse_command("drain", {"drain": spec}, vocabulary)
    message = str(caught.value)
    assert "Say which environment" in message and "production" in message and "staging" in message
    assert parse_command("drain in staging", {"drain": spec}, vocabulary).params["env"] == "staging"
