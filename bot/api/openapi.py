"""``GET /api/v1/openapi.json``: OpenAPI 3.1, its schemas generated from the pydantic models in ``bot.api.models``.

The models validate the bodies, so the description cannot drift from what the server accepts;
the paths, security schemes and problem answers are written here once.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from bot.api.models import Accepted, AlertmanagerNotification, HookAnswer, Problem, RequestStatus, RunbookRequest

REF = "#/components/schemas/{model}"
MODELS = (RunbookRequest, Accepted, RequestStatus, AlertmanagerNotification, HookAnswer, Problem)


@functools.cache
def document() -> dict[str, Any]:
    _, schemas = models_json_schema([(model, "validation") for model in MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "opsbot inbound API",
            "version": "1",
            "description": "Ask for runbooks from CI and open incidents from Alertmanager, under the same policy, approvals "
            "and audit as Slack. See docs/api.md.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"hmac": []}],
        "paths": {
            "/requests": {
                "post": {
                    "summary": "Ask for a runbook; its approval message is posted in the channel",
                    "parameters": [_header("Idempotency-Key", "Required for bearer clients: the same value when retrying.")],
                    "requestBody": _json("RunbookRequest"),
                    "responses": {
                        "202": {**_json("Accepted"), "description": "Handed to opsbot; follow it at Location."},
                        **_problems(400, 401, 403, 409, 413, 422, 429, 503),
                    },
                }
            },
            "/requests/{id}": {
                "get": {
                    "summary": "The request's state, plan, approvals and outcome",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {**_json("RequestStatus"), "description": "The request."}, **_problems(401, 403, 404, 429)},
                }
            },
            "/hooks/alertmanager": {
                "post": {
                    "summary": "Alertmanager webhook (version 4): firing alerts open incidents, resolved ones recover them",
                    "requestBody": _json("AlertmanagerNotification"),
                    "responses": {
                        "200": {**_json("HookAnswer"), "description": "What opsbot acts on."},
                        **_problems(401, 403, 409, 413, 422, 429, 503),
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token whose SHA-256 is in api.clients.<name>.token_sha256.",
                },
                "hmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Opsbot-Signature",
                    "description": 'v1=hex(HMAC-SHA256(key, "v1:{X-Opsbot-Timestamp}:{body}")), '
                    "with X-Opsbot-Client and X-Opsbot-Timestamp.",
                },
            },
        },
    }


def _json(model: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": {"type": "string"}}


def _problems(*statuses: int) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    return {str(status): {"description": "A problem (RFC 9457) with opsbot's message.", "content": problem} for status in statuses}
