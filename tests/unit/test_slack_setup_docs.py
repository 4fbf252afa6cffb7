"""The Slack setup a newcomer follows: a Socket Mode manifest ready to paste, ids and tunnels explained."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO


def manifest(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_socket_mode_manifest_is_ready_to_paste_and_matches_the_http_one() -> None:
    http, socket_mode = manifest("slack-app-manifest.yaml"), manifest("slack-app-manifest-socket-mode.yaml")
    assert socket_mode["settings"]["socket_mode_enabled"] is True
    assert "example.com" not in (REPO / "slack-app-manifest-socket-mode.yaml").read_text()
    assert "url" not in socket_mode["features"]["slash_commands"][0]
    assert "request_url" not in socket_mode["settings"]["interactivity"]
    assert socket_mode["oauth_config"] == http["oauth_config"]
    assert socket_mode["features"]["slash_commands"][0]["command"] == http["features"]["slash_commands"][0]["command"]


def test_slack_docs_explain_ids_and_a_tunnel() -> None:
    text = (REPO / "docs" / "slack.md").read_text()
    assert "Copy member ID" in text and "About" in text
    assert "slack-app-manifest-socket-mode.yaml" in text
    assert "Trying HTTP mode on your laptop through a tunnel" in text
