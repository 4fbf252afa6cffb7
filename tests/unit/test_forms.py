"""Runbooks as forms: the generated views (golden files), answers read back as the typed command, field errors, suggestions.

Set ``OPSBOT_UPDATE_GOLDEN=1`` to rewrite the golden views after an intended change, then read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.audit.binding import params_hash
from bot.catalog.catalog import Catalog, load_catalog
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.forms import FormState, RunbookChoice, RunbookPicker, answers_text, check_answers, runbook_form
from bot.slack.modals import form_view, picker_view, read_submission, suggestion_options
from commands.partial import bind_partially
from tests.conftest import REPO

GOLDEN = Path(__file__).parent.parent / "golden" / "views"
SHIPPED = sorted(path.stem for path in (REPO / "runbooks").glob("*.yaml"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(REPO / "opsbot.example.yaml", REPO / "runbooks", builtins=BUILTIN_SPECS)


def example_view(catalog: Catalog, runbook: str) -> dict[str, Any]:
    """The form of a shipped runbook as a person who may act everywhere sees it, opened on checkout with two past versions."""
    form = runbook_form(
        catalog.commands[runbook], catalog.vocabulary, services=catalog.vocabulary.services, given={"service": "checkout"},
        channel="C0OPS", versions=("1.4.2", "1.4.1"),
    )  # fmt: skip
    return form_view(form)


@pytest.mark.parametrize("runbook", SHIPPED)
def test_each_shipped_runbooks_form_matches_its_golden_view(catalog: Catalog, runbook: str) -> None:
    view = example_view(catalog, runbook)
    View(**view).validate_json()  # slack_sdk's own checks of Slack's documented limits
    golden = GOLDEN / f"{runbook}.json"
    if os.environ.get("OPSBOT_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(view, indent=2, ensure_ascii=False) + "\n")
    assert view == json.loads(golden.read_text()), f"{golden} differs; rerun with OPSBOT_UPDATE_GOLDEN=1 if intended"


def test_the_picker_matches_its_golden_view(catalog: Catalog) -> None:
    picker = RunbookPicker(tuple(RunbookChoice(name, catalog.runbooks[name].description) for name in SHIPPED), channel="C0OPS")
    view = picker_view(picker)
    View(**view).validate_json()
    golden = GOLDEN / "picker.json"
    if os.environ.get("OPSBOT_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(view, indent=2, ensure_ascii=False) + "\n")
    assert view == json.loads(golden.read_text())


def test_a_form_asks_per_parameter_type(catalog: Catalog) -> None:
    deploy = example_view(catalog, "deploy")["blocks"]
    scale = example_view(catalog, "scale")["blocks"]
    kinds = {block["block_id"]: block["element"]["type"] for block in deploy + scale if block["type"] == "input"}

    assert kinds == {
        "service": "static_select", "version~checkout": "external_select", "env~checkout": "static_select",
        "replicas": "number_input", "channel": "conversations_select",
    }  # fmt: skip
    replicas = next(block for block in scale if block["block_id"] == "replicas")["element"]
    assert (replicas["min_value"], replicas["max_value"]) == ("0", "100")
    env = next(block for block in deploy if block["block_id"] == "env~checkout")
    assert [option["value"] for option in env["element"]["options"]] == ["staging", "production"]
    assert env["dispatch_action"] is True, "changing the env redraws the form (its versions differ)"


def test_a_forms_answers_make_the_same_request_as_the_typed_command(catalog: Catalog) -> None:
    spec = catalog.commands["deploy"]
    typed = catalog.parse("deploy checkout 1.4.2 to production")

    from_form = catalog.parse(answers_text(spec, {"env": "production", "version": "1.4.2", "service": "checkout"}))

    assert from_form == typed
    assert params_hash(dict(from_form.params)) == params_hash(dict(typed.params))


def test_wrong_answers_get_a_message_each_beside_their_field(catalog: Catalog) -> None:
    errors = check_answers(catalog.commands["scale"], {"service": "checkout", "replicas": "500", "env": "moon"}, catalog.vocabulary)

    assert errors == {
        "replicas": "replicas 500 is out of range; allowed 0–100.",
        "env": "Unknown environment 'moon'. checkout has environments: production, staging.",
    }
    assert check_answers(catalog.commands["deploy"], {"service": "checkout"}, catalog.vocabulary) == {"version": "Version is needed."}


def test_answers_with_spaces_and_quotes_reach_their_field_intact(catalog: Catalog) -> None:
    spec = catalog.commands["lock"]
    text = answers_text(spec, {"service": "checkout", "env": "production", "reason": 'the "big" migration'})

    assert catalog.parse(text).params["reason"] == 'the "big" migration'


@pytest.mark.parametrize(
    ("typed", "given", "missing"),
    [
        ("deploy checkout", {"service": "checkout"}, ("version",)),
        ("deploy version=1.4.2", {"version": "1.4.2"}, ("service",)),
        ("deploy checkout to production", {"service": "checkout", "env": "production"}, ("version",)),
        ("scale", {}, ("service", "replicas")),
    ],
)
def test_a_command_missing_values_is_read_as_a_form_to_finish(
    catalog: Catalog, typed: str, given: dict[str, str], missing: tuple[str, ...]
) -> None:
    partial = bind_partially(typed, catalog.commands, catalog.vocabulary)

    assert partial is not None
    assert (partial.given, partial.missing) == (given, missing)


@pytest.mark.parametrize("typed", ["deploy checkout 1.4.2 extra words", "deploy chekout", "help", "can-i deploy checkout", "nosuch thing"])
def test_other_usage_errors_are_not_forms(catalog: Catalog, typed: str) -> None:
    assert bind_partially(typed, catalog.commands, catalog.vocabulary) is None


def test_version_suggestions_match_what_is_typed_and_offer_a_new_version(catalog: Catalog) -> None:
    state = FormState(runbook="deploy", channel="C0OPS", versions=("1.4.2", "1.4.1", "1.3.0"))
    pattern = catalog.commands["deploy"].parameters["version"].pattern

    assert [option["value"] for option in suggestion_options(state, "1.4", pattern)] == ["1.4", "1.4.2", "1.4.1"]
    assert [option["value"] for option in suggestion_options(state, "", pattern)] == ["1.4.2", "1.4.1", "1.3.0"]
    assert [option["value"] for option in suggestion_options(state, "no spaces allowed", pattern)] == []


def test_a_long_history_is_cut_to_fit_slacks_metadata_limit() -> None:
    state = FormState(runbook="deploy", channel="C0OPS", versions=tuple(f"1.0.{n}-{'x' * 40}" for n in range(200)))

    encoded = state.encode()
    decoded = FormState.decode(encoded)

    assert len(encoded) <= 3_000
    assert decoded is not None and decoded.versions == state.versions[: len(decoded.versions)] and decoded.versions


def test_a_submitted_view_is_read_back_by_action_id(catalog: Catalog) -> None:
    view = example_view(catalog, "deploy")
    view["state"] = {
        "values": {
            "service": {"opsbot_form:service": {"type": "static_select", "selected_option": {"value": "checkout"}}},
            "version~checkout": {"opsbot_form:version": {"type": "external_select", "selected_option": {"value": "1.4.2"}}},
            "channel": {"opsbot_form:channel": {"type": "conversations_select", "selected_conversation": "C0DEPLOY"}},
        }
    }

    submission = read_submission(view)

    assert submission is not None
    assert submission.answers == {"service": "checkout", "version": "1.4.2", "env": "staging"}, "env left as drawn keeps its value"
    assert submission.channel == "C0DEPLOY"
    assert submission.block_ids["version"] == "version~checkout"
