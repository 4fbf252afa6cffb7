"""What the fake API server received: every request recorded for tests, and handed to the API.

The request log is how tests assert on the wire ("every PATCH of that request carried the
impersonation headers"): method, path, cluster, query, body, and the headers, with every value
of a repeated header (``Impersonate-Group`` comes once per group) in ``header_lists``. Each
entry carries the wall-clock time it arrived (``received_at``), so a benchmark in another
process can time a click to the PATCH it caused (benchmarks/click_latency.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.kubernetes.api import KubeApi
from fakes.kubernetes.exchange import ApiRequest
from fakes.kubernetes.faults import FaultPlan

_CLUSTER_PREFIX = "/clusters/"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, for assertions in tests."""

    method: str
    path: str
    cluster: str | None
    query: dict[str, str]
    content_type: str | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw_path: str = ""
    header_lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)


def split_cluster(path: str) -> tuple[str | None, str]:
    """``/clusters/prod/apis/...`` -> (``"prod"``, ``"/apis/..."``)."""
    if not path.startswith(_CLUSTER_PREFIX):
        return None, path
    rest = path[len(_CLUSTER_PREFIX) :]
    cluster, _, api_path = rest.partition("/")
    return cluster, "/" + api_path


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


class Dispatcher:
    """What the HTTP handler needs: the API, the fault plan and the recorder."""

    def __init__(self, api: KubeApi, faults: FaultPlan, stopping: threading.Event) -> None:
        self.api = api
        self.faults = faults
        self.stopping = stopping
        self._lock = threading.Lock()
        self._recorded: list[RecordedRequest] = []

    def record(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, repeated: Mapping[str, tuple[str, ...]]
    ) -> ApiRequest:
        split = urlsplit(target)
        cluster, api_path = split_cluster(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        request = ApiRequest(method, api_path, cluster, query, dict(headers), body, dict(repeated))
        entry = RecordedRequest(
            method=method,
            path=api_path,
            cluster=cluster,
            query={k: v[-1] for k, v in query.items()},
            content_type=headers.get("content-type"),
            body=_parse_body(body),
            headers=dict(headers),
            raw_path=target,
            header_lists=dict(repeated),
        )
        with self._lock:
            self._recorded.append(entry)
        return request

    def recorded(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._recorded)

    def clear(self) -> None:
        with self._lock:
            self._recorded.clear()
