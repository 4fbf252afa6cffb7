"""Secret redaction for everything opsbot writes: logs, replies and the audit log.

One function, so a token shape added here is scrubbed everywhere at once.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(r"token|secret|password|passwd|credential|api[_-]?key|private[_-]?key|authorization", re.I)
_SECRET_VALUE = re.compile(r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy with secret-looking keys and token-shaped strings replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {str(key): REDACTED if _SECRET_KEY.search(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value
