"""The /ops parser under thousands of hostile inputs: SQL metacharacters, Slack markup, odd quoting.

Whatever is typed, the parser answers with a typed request whose every value obeys its
parameter's declared type and pattern, or with a ``UsageError`` whose text, as Slack shows
it in the ack, carries no live mention, link or channel ping (``<`` ``>`` ``&`` escaped).
Seeded (``derandomize=True``), so a failure reproduces on every machine.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.catalog.catalog import Catalog
from bot.errors import UsageError
from bot.messages import code
from bot.slack.listeners import usage_reply
from commands.parser import CommandRequest
from commands.spec import CommandSpec

INJECTIONS = [
    "'; DROP TABLE requests; --",
    '"; DROP TABLE requests; --',
    '" OR 1=1 --',
    "' OR '1'='1",
    "1; DELETE FROM audit_events",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0ALICE>",
    "<#C0OPS>",
    "<!subteam^S0ONCALL>",
    "<https://evil.example|click here>",
    "<mailto:a@b.c|mail>",
    "*bold*",
    "_it_",
    "~strike~",
    "`code`",
    "```fence```",
    "&",
    "&amp;",
    "&lt;!channel&gt;",
    "%s%n",
    "${jndi:ldap://x}",
    "\\",
    "\u202e",
    "é",
]
COMMAND_WORDS = [
    "deploy", "rollback", "scale", "restart", "status", "lock", "unlock", "help", "history", "show", "cancel", "digest",
    "approvals", "checkout", "search", "production", "staging", "to", "in", "for", "--reason", "--version", "version=",
    "reason=", "env=", "limit=", "1.4.2", "7", "0", "-1", "99999999999999999999", "2h", "30m", '"', "'", "“", "”", "=",
]  # fmt: skip
WORDS = st.sampled_from(COMMAND_WORDS + INJECTIONS)
QUOTED = st.tuples(st.sampled_from(['"', "'", "“"]), st.sampled_from(INJECTIONS)).map(lambda pair: f"{pair[0]}{pair[1]}{pair[0]}")
TEXT = st.one_of(
    st.lists(st.one_of(WORDS, QUOTED), max_size=10).map(" ".join),
    st.tuples(
        st.sampled_from(
            ["deploy checkout", "lock checkout in staging --reason", "lock checkout --reason", "scale checkout", "help", "show",
             "history checkout limit=", "digest", "rollback checkout in production to"]
        ),
        st.one_of(QUOTED, WORDS, st.text(max_size=40)),
    ).map(" ".join),
    st.text(max_size=200),
)  # fmt: skip
ENTITY = re.compile(r"&(amp|lt|gt);")


def parse(catalog: Catalog, text: str) -> CommandRequest:
    return catalog.parse(text)


def assert_values_obey_their_parameters(catalog: Catalog, request: CommandRequest) -> None:
    spec: CommandSpec = catalog.commands[request.command]
    services = catalog.config.services
    for name, value in request.params.items():
        parameter = spec.parameters.get(name)
        assert parameter is not None, f"{request.command} got an undeclared parameter {name}"
        if value is None:
            continue
        if parameter.type == "service":
            assert value in services
        elif parameter.type == "env":
            service = request.service
            allowed = services[service].environments if service else {env for s in services.values() for env in s.environments}
            assert value in allowed
        elif parameter.type in ("int", "duration"):
            assert isinstance(value, int)
            assert parameter.min is None or value >= parameter.min
            assert parameter.max is None or value <= parameter.max
        elif parameter.type == "choice":
            assert value in (parameter.choices or [])
        else:
            assert isinstance(value, str) and len(value) <= 200
            if parameter.pattern is not None:
                assert re.fullmatch(parameter.pattern, value), f"{name}={value!r} slipped past {parameter.pattern}"


def assert_inert_in_slack(text: str) -> None:
    """No ``<…>`` can reach Slack, and every ``&`` starts one of the three entities."""
    bare = ENTITY.sub("", text)
    assert "<" not in bare and ">" not in bare and "&" not in bare, text


@settings(max_examples=3_000, derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_hostile_text_parses_to_valid_values_or_an_inert_usage_error(example_catalog: Catalog, text: str) -> None:
    try:
        request = parse(example_catalog, text)
    except UsageError as error:
        assert error.user_message.strip()
        assert_inert_in_slack(usage_reply(error))
    else:
        assert_values_obey_their_parameters(example_catalog, request)
        assert_inert_in_slack(code(text))


def test_sql_metacharacters_are_refused_by_a_parameter_pattern_with_a_clear_message(example_catalog: Catalog) -> None:
    for attempt in ('deploy checkout "\'; DROP TABLE requests; --"', "deploy checkout '\" OR 1=1 --'"):
        try:
            parse(example_catalog, attempt)
        except UsageError as error:
            assert "version" in error.user_message and "is not valid" in error.user_message
            assert error.usage == "deploy {service} {version} [to {env}]"
        else:
            raise AssertionError(f"{attempt!r} was accepted")


def test_markup_in_a_free_text_reason_is_kept_verbatim_for_the_view_to_escape(example_catalog: Catalog) -> None:
    reason = "<!channel> <@U0ALICE> <https://evil.example|click> *bold* & '; DROP TABLE requests; --"

    request = parse(example_catalog, f'lock checkout in staging --reason "{reason}"')

    assert request.params["reason"] == reason, "the parser neither strips nor escapes: escaping is the renderer's job"
