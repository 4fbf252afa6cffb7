"""The inbound API's pure parts: clients as policy principals, credentials, the grammar of a body, which alerts count."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from bot.api.alerts import sort_alerts
from bot.api.credentials import ClientDirectory, sign
from bot.api.models import AlertmanagerNotification, RunbookRequest
from bot.api.parsing import command_of, command_text
from bot.api.problems import ApiProblem
from bot.audit.events import SYSTEM, Actor, ActorKind
from bot.catalog.catalog import Catalog
from bot.catalog.config import AccessRule, Allow, ApiClient, OpsbotConfig
from bot.cli.main import main
from bot.messages import mention
from bot.requests.groups import GroupDirectory
from bot.requests.policy import Subject, evaluate
from commands.errors import UsageError
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "a-token-only-ci-knows"
KEY = b"0123456789abcdef0123456789abcdef"


# -- clients in the policy -----------------------------------------------------------------------


def with_rule(catalog: Catalog, allow: Allow) -> OpsbotConfig:
    rule = AccessRule(name="ci", runbooks=["deploy"], envs=["production"], allow=allow)
    return catalog.config.model_copy(update={"policy": catalog.config.policy.model_copy(update={"rules": [rule]})})


def allowed(config: OpsbotConfig, user_id: str) -> tuple[bool, str]:
    decision = evaluate(
        config, GroupDirectory(config), command="deploy", runbook=None, service="checkout", env="production", params={},
        subject=Subject(user_id, "C0OPS"), now=NOON,
    )  # fmt: skip
    return decision.allowed, decision.reason


def test_a_client_is_allowed_only_where_a_rule_names_it(example_catalog: Catalog) -> None:
    named = with_rule(example_catalog, Allow(clients=["ci-release"]))
    assert allowed(named, Actor.client("ci-release").user_id) == (True, "allowed by ci")
    assert allowed(named, Actor.client("ci-other").user_id) == (
        False,
        "API client `ci-other` may not run `deploy` in production: ci does not list it under allow.clients.",
    )


def test_anyone_means_any_person_never_a_program(example_catalog: Catalog) -> None:
    anyone = with_rule(example_catalog, Allow(users=["*"]))
    assert allowed(anyone, "U0ALICE")[0]
    assert not allowed(anyone, Actor.client("ci-release").user_id)[0]


def test_a_rule_naming_only_clients_lets_no_person_in(example_catalog: Catalog) -> None:
    assert not allowed(with_rule(example_catalog, Allow(clients=["ci-release"])), "U0ALICE")[0]


def test_an_actor_says_what_kind_it_is_and_a_client_is_never_shown_as_a_mention() -> None:
    client = Actor.client("ci-release")
    assert (client.user_id, client.name, client.kind) == ("client:ci-release", "ci-release", ActorKind.CLIENT)
    assert Actor("U0ALICE", "alice").kind == ActorKind.PERSON
    assert SYSTEM.kind == ActorKind.SYSTEM
    assert mention(client.user_id) == "API client `ci-release`"


# -- the config and validate ------------------------------------------------------------------------


def test_a_client_needs_exactly_one_credential_and_a_real_digest() -> None:
    with pytest.raises(ValidationError, match="exactly one of token_sha256"):
        ApiClient()
    with pytest.raises(ValidationError, match="exactly one of token_sha256"):
        ApiClient(token_sha256="0" * 64, hmac_key_file="/run/key")
    with pytest.raises(ValidationError, match="64 lower-case hex digits"):
        ApiClient(token_sha256=TOKEN)


def test_validate_names_the_file_and_line_of_an_unknown_client_in_a_rule(tmp_path: Path) -> None:
    config = tmp_path / "opsbot.yaml"
    text = EXAMPLE_CONFIG.read_text()
    old = "envs: [staging]\n      allow: {groups: [developers, platform-oncall]}"
    assert old in text
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    text = text.replace(old, "envs: [staging]\n      allow: {groups: [developers, platform-oncall], clients: [ci-relase]}", 1)
    config.write_text(text + f"api:\n  clients:\n    ci-release: {{token_sha256: {digest}}}\n")
    result = CliRunner().invoke(main, ["validate", "--config", str(config), "--runbooks", str(RUNBOOKS)])

    assert result.exit_code == 1
    line = next(number for number, content in enumerate(config.read_text().splitlines(), start=1) if "ci-relase" in content)
    assert (
        f"{config}:{line}: policy.rules[2].allow.clients[0]: unknown API client 'ci-relase' (declare it under api.clients); "
        "did you mean ci-release?"
    ) in result.output


# -- credentials ------------------------------------------------------------------------------------


def directory(tmp_path: Path, *, now: float = 1_800_000_000) -> ClientDirectory:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    clients = {
        "ci-release": ApiClient(token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest()),
        "ci-signed": ApiClient(hmac_key_file=str(key_file)),
    }
    return ClientDirectory(clients, clock=lambda: now)


def test_a_bearer_token_is_matched_by_its_digest(tmp_path: Path) -> None:
    clients = directory(tmp_path)
    assert clients.authenticate({"authorization": f"Bearer {TOKEN}"}, b"").name == "ci-release"
    with pytest.raises(ApiProblem) as refused:
        clients.authenticate({"authorization": "Bearer nope"}, b"")
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signature_is_checked_over_timestamp_and_body_within_five_minutes(tmp_path: Path) -> None:
    now = 1_800_000_000
    clients = directory(tmp_path, now=now)
    body = b'{"runbook": "deploy"}'

    def headers(stamp: int, signature: str) -> dict[str, str]:
        return {"x-opsbot-client": "ci-signed", "x-opsbot-timestamp": str(stamp), "x-opsbot-signature": signature}

    caller = clients.authenticate(headers(now, sign(KEY, now, body)), body)
    assert (caller.name, caller.signs, caller.replay_digest is not None) == ("ci-signed", True, True)
    for stamp, signature, body_sent in (
        (now - 301, sign(KEY, now - 301, body), body),  # too old
        (now, sign(KEY, now, body), body + b" "),  # another body
        (now, sign(KEY[::-1], now, body), body),  # another key
    ):
        with pytest.raises(ApiProblem):
            clients.authenticate(headers(stamp, signature), body_sent)


def test_a_token_read_from_its_file_is_matched_like_a_configured_digest(tmp_path: Path) -> None:
    token = "t" * 40
    (tmp_path / "token").write_text(token + "\n")
    clients = ClientDirectory({"ci-file": ApiClient(token_file=str(tmp_path / "token"))})

    assert clients.authenticate({"authorization": f"Bearer {token}"}, b"").name == "ci-file"
    with pytest.raises(ValidationError, match="exactly one of token_sha256 or token_file"):
        ApiClient(token_file=str(tmp_path / "token"), token_sha256="0" * 64)


def test_a_short_signing_key_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"short")
    with pytest.raises(ValueError, match="the secret must be at least 32 bytes"):
        ClientDirectory({"ci": ApiClient(hmac_key_file=str(tmp_path / "short"))})


# -- the body's grammar -------------------------------------------------------------------------------


def parse(catalog: Catalog, **body: Any) -> RunbookRequest:
    return RunbookRequest.model_validate({"channel": "C0OPS", **body})


def test_args_and_text_parse_to_the_same_command(example_catalog: Catalog) -> None:
    by_args = parse(example_catalog, runbook="deploy", args={"service": "checkout", "version": "1.4.2", "env": "production"})
    by_text = parse(example_catalog, runbook="deploy", text="checkout 1.4.2 to production")

    first = command_of(by_args, example_catalog.commands, example_catalog.vocabulary)
    second = command_of(by_text, example_catalog.commands, example_catalog.vocabulary)
    assert first == second
    assert command_text(by_args) == "deploy service=checkout version=1.4.2 env=production"


def test_an_argument_with_spaces_stays_one_value_and_is_checked_by_the_runbook(example_catalog: Catalog) -> None:
    body = parse(example_catalog, runbook="deploy", args={"service": "checkout", "version": "1.4.2 env=staging", "env": "production"})
    with pytest.raises(UsageError):
        command_of(body, example_catalog.commands, example_catalog.vocabulary)


def test_a_body_gives_args_or_text_not_both_and_a_builtin_is_no_runbook(example_catalog: Catalog) -> None:
    with pytest.raises(ValidationError, match="exactly one of args"):
        parse(example_catalog, runbook="deploy", args={}, text="checkout 1.4.2")
    with pytest.raises(UsageError, match="There is no runbook 'lock'"):
        command_of(parse(example_catalog, runbook="lock", text="checkout"), example_catalog.commands, example_catalog.vocabulary)


# -- which alerts count ---------------------------------------------------------------------------------


def test_alerts_name_a_target_by_their_labels_or_the_common_ones(example_catalog: Catalog) -> None:
    def alert(fingerprint: str, **labels: str) -> dict[str, Any]:
        return {"status": "firing", "labels": labels, "startsAt": "2026-12-05T08:00:00Z", "fingerprint": fingerprint}

    notification = AlertmanagerNotification.model_validate(
        {
            "version": "4", "status": "firing", "commonLabels": {"env": "production"},
            "alerts": [alert("a1", alertname="Down", service="checkout"), alert("a2", service="nope"), alert("a3", alertname="X")],
        }
    )  # fmt: skip
    notices, ignored = sort_alerts(notification, example_catalog.config)

    assert [(n.fingerprint, n.service, n.env, n.summary) for n in notices] == [("a1", "checkout", "production", "Down")]
    assert [(i.fingerprint, i.reason) for i in ignored] == [
        ("a2", "'nope' is not a service in the catalog"),
        ("a3", "no 'service' and 'env' labels"),
    ]
