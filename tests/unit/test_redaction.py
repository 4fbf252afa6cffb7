"""Redaction covers every secret shape opsbot may meet, in logs, replies (``Message``) and the audit log."""

from __future__ import annotations

import pytest

from bot.messages import Message
from bot.redaction import redact, redact_known_secret

SECRETS = [
    ("AWS STS key ASIAABCDEFGHIJKLMNOP in a message", "ASIAABCDEFGHIJKLMNOP"),
    ("long-lived AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
    ("refresh token xoxe-1-AbCdEf0123", "xoxe-1-AbCdEf0123"),
    ("client token xoxc-12345-abcdef", "xoxc-12345-abcdef"),
    ("bot token xoxb-1-2-abc", "xoxb-1-2-abc"),
    ("connect to postgresql://opsbot:s3cretpw@db:5432/opsbot failed", "s3cretpw"),
    ("url https://deploy:pa@ss@word@git.example.com/repo.git", "pa@ss@word"),
    ("Authorization: Bearer abcdefgh12345678.tokenpart", "abcdefgh12345678.tokenpart"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here", "eyJzdWIiOiJ4In0"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secret_shapes_are_redacted(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "[redacted]" in redact(text)


def test_ordinary_text_is_left_alone() -> None:
    text = "deploy checkout 1.4.2 to production at https://example.com/runbooks (see ASIA region notes)"
    assert redact(text) == text


def test_every_reply_is_redacted_whatever_builds_it() -> None:
    message = Message(text="failed: ASIAABCDEFGHIJKLMNOP", sections=("token xoxe-1-abc",), fields=(("url", "https://u:pw12345@h/x"),))
    assert "ASIA" not in message.text and "xoxe" not in message.sections[0] and "pw12345" not in message.fields[0][1]


def test_a_password_split_at_an_at_sign_is_never_printed_in_part() -> None:
    shown = redact_known_secret("failed to resolve host 'ter2PW@127.0.0.1'", "ter1@ter2PW")
    assert shown == "failed to resolve host '[redacted]@127.0.0.1'"


def test_audit_tail_says_error_kinds_in_words() -> None:
    from bot.cli.audit_lines import readable_outcome

    assert readable_outcome("TemporaryActionError") == "temporary error"
    assert readable_outcome("StepTimeout") == "timed out"
    assert readable_outcome("KubernetesApiError") == "kubernetes api"
    assert readable_outcome("no_approval_needed") == "no approval needed"
