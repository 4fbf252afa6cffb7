"""The request and response values passed between the HTTP layer and the API.

Keeping these free of ``http.server`` types lets the API logic be driven
directly in unit tests and keeps the socket handler a thin adapter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fakes.kubernetes.json_values import JsonObject
from fakes.kubernetes.statuses import ApiError, FieldError, GoRepr, bad_request, invalid_object, unsupported_media_type

PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_MEDIA_TYPES = ("application/json", "application/yaml")


@dataclass(frozen=True)
class ApiRequest:
    """One API call: method, API path (cluster prefix removed), query, body."""

    method: str
    path: str
    cluster: str | None = None
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    repeated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Every value of each header, lower-case names (``Impersonate-Group`` comes once per group)."""

    def param(self, name: str) -> str | None:
        """The last value of a query parameter, or ``None``."""
        values = self.query.get(name)
        return values[-1] if values else None

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower())

    def header_lists(self) -> Mapping[str, tuple[str, ...]]:
        """All values per header: ``repeated`` when the HTTP layer gave it, else one value each."""
        return self.repeated or {name: (value,) for name, value in self.headers.items()}

    @property
    def content_type(self) -> str:
        """The media type without parameters (``; charset=utf-8`` removed)."""
        raw = self.header("content-type") or ""
        return raw.split(";", 1)[0].strip().lower()

    def decoded_body(self) -> Any:
        """The body as JSON, or raise the 400 the apiserver sends for bad JSON."""
        return decode_json(self.body)

    def object_body(self, kind: str) -> JsonObject:
        """A JSON object body for create/update, with the apiserver's 400s.

        The fake speaks JSON only. Newer kubectl sends built-in objects as protobuf; an API
        server that cannot decode a media type answers 415, and client-go then sends JSON.
        """
        if self.content_type == PROTOBUF:
            raise unsupported_media_type(JSON_MEDIA_TYPES)
        try:
            value = decode_json(self.body)
        except ApiError as error:
            raise bad_request(f"couldn't get version/kind; json parse error: {error.message}") from None
        if not isinstance(value, dict):
            raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: body must be a JSON object')
        return value

    def dry_run(self, options_kind: str, extra: Sequence[str] = ()) -> bool:
        """Whether ``dryRun=All`` was requested; other values are 422 like upstream."""
        values = [*self.query.get("dryRun", ()), *extra]
        for value in values:
            if value != "All":
                rendered = "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"
                error = FieldError("not_supported", "dryRun", 'supported values: "All"', GoRepr(rendered))
                raise invalid_object("meta.k8s.io", options_kind, "", [error])
        return bool(values)


@dataclass(frozen=True)
class ApiResponse:
    """A JSON response: status code, body and any extra headers; ``text`` replaces the body (a pod's log is plain text)."""

    status: int
    body: JsonObject
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None


def decode_json(raw: bytes) -> Any:
    """Parse JSON with Go-flavoured error text (``unexpected end of JSON input``)."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise bad_request("unexpected end of JSON input")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        char = text[error.pos] if error.pos < len(text) else ""
        if not char:
            raise bad_request("unexpected end of JSON input") from None
        raise bad_request(f"invalid character '{char}' looking for beginning of value") from None
