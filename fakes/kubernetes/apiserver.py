"""The fake kube-apiserver process: HTTP plumbing plus the test-facing facade.

:class:`FakeKubernetesServer` owns the store, the simulated controllers, the
HTTP listener on ``127.0.0.1`` and the knobs tests turn (RBAC denials,
transport faults, image health). The request handler only adapts sockets to
:class:`~fakes.kubernetes.api.KubeApi`; all Kubernetes behaviour lives there
and in the store/controller modules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from fakes.kubernetes.api import DEFAULT_USER, KubeApi
from fakes.kubernetes.controller import ControllerManager
from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.faults import AccessPolicy, Fault, FaultPlan, ForbidRule, Interposition, validate_fault_kind
from fakes.kubernetes.jobs import CRONJOBS, JOBS, pod_log_lines
from fakes.kubernetes.json_values import JsonObject, deep_copy, dig
from fakes.kubernetes.kubeconfig import DEFAULT_TOKEN, build_kubeconfig, cluster_url, write_kubeconfig
from fakes.kubernetes.object_store import DEPLOYMENTS, PODS, REPLICASETS, ObjectStore, SimulatedClock
from fakes.kubernetes.pod_simulator import ImageHealth
from fakes.kubernetes.rbac import RbacModel
from fakes.kubernetes.recording import Dispatcher, RecordedRequest
from fakes.kubernetes.selectors import matches, parse_label_selector
from fakes.kubernetes.statuses import generic
from fakes.kubernetes.strategy import default_deployment, validate_deployment

logger = logging.getLogger(__name__)


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that can drop its live keep-alive connections on stop."""

    request_queue_size = 512  # a real API server does not reset connections under a burst

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dispatcher: Dispatcher) -> None:
        super().__init__(address, _Handler)
        self.dispatcher = dispatcher
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            live = list(self._connections)
        for connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Adapts one HTTP/1.1 connection to the dispatcher; keeps no logic."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK adds ~40 ms a request.
    disable_nagle_algorithm = True
    server_version = "opsbot-fake-kube-apiserver"
    timeout = 60

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _handle(self) -> None:
        dispatcher = cast(_HTTPServer, self.server).dispatcher
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        repeated: dict[str, tuple[str, ...]] = {}
        for name, value in self.headers.items():
            repeated[name.lower()] = (*repeated.get(name.lower(), ()), value)
        request = dispatcher.record(self.command, self.path, headers, body, repeated)
        change = dispatcher.faults.interposed(self.command, self.path)
        if change is not None:
            change()
        fault = dispatcher.faults.take(self.command, self.path)
        if fault is not None and fault.status_code is None:
            self._misbehave(fault, dispatcher.stopping)
            return
        if fault is not None and fault.status_code is not None:
            error = generic(fault.status_code)
            self._send(ApiResponse(error.code, error.to_status(), error.headers))
            return
        self._send(dispatcher.api.handle(request))

    def _misbehave(self, fault: Fault, stopping: threading.Event) -> None:
        """Hang and/or drop the connection without writing a response."""
        self.close_connection = True
        if fault.kind == "timeout":
            stopping.wait(fault.hang_seconds)
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _send(self, response: ApiResponse) -> None:
        plain = response.text is not None
        payload = response.text.encode() if response.text is not None else json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "text/plain" if plain else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class FakeKubernetesServer:
    """A fake Kubernetes API server with a simulated deployment controller.

    ``auto_tick`` runs the controller every ``tick_seconds`` of real time in a
    background thread (for demos); tests usually pass ``auto_tick=False`` and
    call :meth:`tick` for deterministic progress. Each tick is
    ``seconds_per_tick`` of simulated cluster time, which is what progress
    deadlines and timestamps are measured in.
    """

    def __init__(
        self,
        *,
        tick_seconds: float = 0.05,
        auto_tick: bool = True,
        seconds_per_tick: float = 10.0,
        crash_interval_ticks: int = 3,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = DEFAULT_USER,
        token: str | None = None,
        seed: int = 0,
    ) -> None:
        self.tick_seconds = tick_seconds
        self.auto_tick = auto_tick
        self.token = token
        self._address = (host, port)
        self.clock = SimulatedClock()
        self.store = ObjectStore(self.clock, seed=seed)
        self.policy = AccessPolicy()
        self.rbac = RbacModel()
        """RBAC for impersonated requests (``rbac.grant(Grant(...))``); opsbot's own account keeps ``policy``."""
        self.faults = FaultPlan()
        self.controllers = ControllerManager(self.store, seconds_per_tick=seconds_per_tick, crash_interval_ticks=crash_interval_ticks)
        self.api = KubeApi(self.store, self.policy, user=user, token=token, server_address=self._host_port, rbac=self.rbac)
        self._stopping = threading.Event()
        self._dispatcher = Dispatcher(self.api, self.faults, self._stopping)
        self._httpd: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeKubernetesServer:
        """Bind the port and start serving (and ticking, if ``auto_tick``)."""
        if self._httpd is not None:
            raise RuntimeError("the fake Kubernetes server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(self._address, self._dispatcher)
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube-apiserver", daemon=True)
        self._threads = [serve]
        if self.auto_tick:
            self._threads.append(threading.Thread(target=self._tick_forever, name="fake-kube-controller", daemon=True))
        for thread in self._threads:
            thread.start()
        logger.info("fake Kubernetes API listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop ticking, close connections (including hung ones) and free the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeKubernetesServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    def _tick_forever(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            try:
                self.controllers.tick()
            except Exception:  # keep the demo alive; the failure is logged with its traceback
                logger.exception("simulated controller tick failed")

    # -- addresses and kubeconfig ------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("the fake Kubernetes server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43121``."""
        return f"http://{self._address[0]}:{self.port}"

    def _host_port(self) -> str:
        return f"{self._address[0]}:{self.port}" if self._httpd else f"{self._address[0]}:0"

    def cluster_url(self, cluster: str) -> str:
        """The server URL for one fake cluster."""
        return cluster_url(self.url, cluster)

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        contexts: Sequence[str] = ("default",),
        current: str | None = None,
        *,
        namespace: str | None = None,
    ) -> Path:
        """Write a kubeconfig whose contexts are independent fake clusters."""
        for name in contexts:
            self.add_cluster(name)
        config = build_kubeconfig(self.url, list(contexts), current=current, namespace=namespace, token=self.token or DEFAULT_TOKEN)
        return write_kubeconfig(path, config)

    # -- seeding state -------------------------------------------------------------

    def add_cluster(self, name: str) -> None:
        """Create an empty cluster (idempotent)."""
        self.store.add_cluster(name)

    def add_namespace(self, cluster: str, namespace: str) -> None:
        """Create a namespace (and the cluster) if missing."""
        self.store.add_cluster(cluster)
        self.store.add_namespace(cluster, namespace)

    def add_deployment(
        self,
        *,
        cluster: str,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 1,
        container: str | None = None,
        labels: Mapping[str, str] | None = None,
        progress_deadline_seconds: int = 600,
        extra_containers: Iterable[Mapping[str, Any]] = (),
        strategy: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
        min_ready_seconds: int = 0,
    ) -> JsonObject:
        """Create a Deployment that is already fully rolled out (revision 1).

        Raises ``ValueError`` with the apiserver's 422 message if the
        arguments would not pass validation.
        """
        self.add_namespace(cluster, namespace)
        selector_labels = dict(labels or {"app": name})
        containers = [{"name": container or name, "image": image}, *(dict(c) for c in extra_containers)]
        spec: JsonObject = {
            "replicas": replicas,
            "selector": {"matchLabels": dict(selector_labels)},
            "template": {"metadata": {"labels": dict(selector_labels)}, "spec": {"containers": containers}},
            "progressDeadlineSeconds": progress_deadline_seconds,
        }
        if strategy is not None:
            spec["strategy"] = deep_copy(dict(strategy))
        if min_ready_seconds:
            spec["minReadySeconds"] = min_ready_seconds
        metadata: JsonObject = {"name": name, "namespace": namespace, "labels": dict(selector_labels)}
        if annotations:
            metadata["annotations"] = dict(annotations)
        deployment: JsonObject = {"metadata": metadata, "spec": spec, "status": {}}
        default_deployment(deployment)
        errors = validate_deployment(deployment)
        if errors:
            raise ValueError(f'Deployment.apps "{name}" is invalid: ' + ", ".join(str(e) for e in errors))
        with self.store.lock:
            if self.store.get(cluster, DEPLOYMENTS, namespace, name) is not None:
                raise ValueError(f'deployments.apps "{name}" already exists')
            self.store.create(cluster, DEPLOYMENTS, deployment)
            self.controllers.materialize(cluster, namespace, name)
        return self.deployment(cluster, namespace, name)

    def add_cronjob(
        self,
        *,
        cluster: str,
        namespace: str,
        name: str,
        image: str,
        command: Sequence[str] = (),
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        schedule: str = "0 3 * * *",
    ) -> JsonObject:
        """Create a CronJob through the API (so it is defaulted and validated as a client's would be); ``ValueError`` on a 4xx.

        ``env`` may carry the ``FAKE_JOB_*`` variables that decide what its Jobs' pods do (fakes/kubernetes/jobs.py).
        """
        self.add_namespace(cluster, namespace)
        container: JsonObject = {"name": name, "image": image}
        if command:
            container["command"] = list(command)
        if args:
            container["args"] = list(args)
        if env:
            container["env"] = [{"name": key, "value": value} for key, value in env.items()]
        template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
        body = {
            "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"backoffLimit": 0, "template": template}}},
        }
        request = ApiRequest(
            "POST", f"/apis/batch/v1/namespaces/{namespace}/cronjobs", cluster=cluster,
            headers={"content-type": "application/json"}, body=json.dumps(body).encode(),
        )  # fmt: skip
        answer = self.api.handle(request)
        if answer.status >= 400:
            raise ValueError(answer.body.get("message"))
        return answer.body

    # -- inspection ----------------------------------------------------------------

    def jobs(self, cluster: str, namespace: str | None = None) -> list[JsonObject]:
        """Stored Jobs of a cluster (one namespace or all)."""
        return self.store.list(cluster, JOBS, namespace)

    def cronjobs(self, cluster: str, namespace: str | None = None) -> list[JsonObject]:
        return self.store.list(cluster, CRONJOBS, namespace)

    def pod_log(self, cluster: str, namespace: str, pod: str) -> list[str]:
        """The lines a pod's container has printed so far."""
        return pod_log_lines(self.store, cluster, namespace, pod)

    def deployment(self, cluster: str, namespace: str, name: str) -> JsonObject:
        """The stored Deployment (a copy); ``KeyError`` if missing."""
        found = self.store.get(cluster, DEPLOYMENTS, namespace, name)
        if found is None:
            raise KeyError(f"deployment {namespace}/{name} not found in cluster {cluster}")
        return found

    def deployments(self, cluster: str, namespace: str | None = None) -> list[JsonObject]:
        """Stored Deployments of a cluster (one namespace or all)."""
        return self.store.list(cluster, DEPLOYMENTS, namespace)

    def replicasets(self, cluster: str, namespace: str, label_selector: str | None = None) -> list[JsonObject]:
        """Stored ReplicaSets, optionally filtered by a label selector string."""
        return self._select(self.store.list(cluster, REPLICASETS, namespace), label_selector)

    def pods(self, cluster: str, namespace: str, label_selector: str | None = None) -> list[JsonObject]:
        """Stored Pods, optionally filtered by a label selector string."""
        return self._select(self.store.list(cluster, PODS, namespace), label_selector)

    @staticmethod
    def _select(items: list[JsonObject], label_selector: str | None) -> list[JsonObject]:
        requirements = parse_label_selector(label_selector)
        return [i for i in items if matches(requirements, dig(i, "metadata", "labels"))]

    # -- controlling time and behaviour --------------------------------------------

    def tick(self, n: int = 1) -> None:
        """Advance the simulated controllers by ``n`` ticks."""
        for _ in range(n):
            self.controllers.tick()

    def set_image_behaviour(self, is_healthy: ImageHealth) -> None:
        """Decide per image whether new pods become ready (``True``) or crash-loop."""
        self.controllers.pods.image_health = is_healthy

    def forbid(self, verb: str, resource: str, cluster: str | None = None, namespace: str | None = None) -> None:
        """Make matching requests fail with an RBAC-style 403 Forbidden."""
        self.policy.forbid(ForbidRule(verb, resource, cluster, namespace))

    def allow_all(self) -> None:
        """Remove every :meth:`forbid` rule."""
        self.policy.clear()

    def inject_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int | None = 1,
        hang_seconds: float = 30.0,
        during_rollout: bool = False,
    ) -> None:
        """Make the next ``times`` matching requests fail at the transport level.

        ``kind`` is ``"timeout"``, ``"reset"`` or an HTTP code like ``"500"``.
        ``path_contains`` is matched against the raw request target,
        including the ``/clusters/<name>`` prefix and the query string.
        ``during_rollout``: never on a dry run, and only from the first real PATCH on.
        """
        fault = Fault(validate_fault_kind(kind), method, path_contains, times, hang_seconds, during_rollout=during_rollout)
        self.faults.add(fault)

    def before_next(self, method: str, path_contains: str, change: Callable[[], None]) -> None:
        """Make ``change`` (another client's write, e.g. through :meth:`handle`) just before the next matching request.

        Only real requests match, never a dry run: ``before_next("PATCH", "/deployments/checkout", …)``
        lands between opsbot's plan check and its PATCH.
        """
        self.faults.interpose(Interposition(change, method, path_contains))

    def clear_faults(self) -> None:
        """Drop pending faults."""
        self.faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        return self._dispatcher.recorded()

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        self._dispatcher.clear()

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Serve a request in-process, bypassing HTTP (handy in unit tests)."""
        return self.api.handle(request)
