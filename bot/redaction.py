"""Secret redaction for everything opsbot writes: logs, replies and the audit log.

One function, so a token shape added here is scrubbed everywhere at once.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(r"token|secret|password|passwd|credential|api[_-]?key|private[_-]?key|authorization", re.I)
_SECRET_VALUE = re.compile(
    r"xox[a-z]-[A-Za-z0-9-]+"  # Slack bot, user, app-config (xoxe-) and client (xoxc-) tokens
    r"|xapp-[A-Za-z0-9-]+"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids, long-lived and STS
    r"|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # a JWT (bearer tokens, service-account tokens)
    r"|(?<=Bearer )[A-Za-z0-9._~+/-]{8,}=*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
# scheme://user:password@host — the password may itself hold '@', so it runs to the last '@' before the path.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s/]*@")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy with secret-looking keys and token-shaped strings replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {str(key): REDACTED if _SECRET_KEY.search(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """``text`` with tokens, keys and URL passwords replaced by ``[redacted]``."""
    return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", _SECRET_VALUE.sub(REDACTED, text))


def redact_known_secret(text: str, secret: str) -> str:
    """``text`` without ``secret`` or any piece of it that a parser may have split off (at '@', ':' or '/')."""
    if not secret:
        return text
    pieces = {secret, *re.split(r"[@:/]", secret)}
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 3:
            text = text.replace(piece, REDACTED)
    return text
