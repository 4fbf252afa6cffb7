"""The fake API's Jobs, CronJobs and pod logs, driven over HTTP by the official client and by real kubectl.

What a client may rely on: Status bodies for 404/409/422, dry runs that store nothing, a Job
whose pod runs over (simulated) time and ends Complete or Failed with the real conditions and
counts, ``tailLines``, ``propagationPolicy``, and ``ttlSecondsAfterFinished``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from fakes.kubernetes import FakeKubernetesServer

IMAGE = "registry.example.com/shop/migrate:3.2"


@pytest.fixture
def fake() -> Iterator[FakeKubernetesServer]:
    with FakeKubernetesServer(auto_tick=False) as server:
        server.add_cronjob(
            cluster="staging", namespace="shop", name="migrate", image=IMAGE, command=["migrate"], args=["up"],
            env={"FAKE_JOB_LINES": "4", "FAKE_JOB_TICKS": "2"},
        )  # fmt: skip
        yield server


@pytest.fixture
def kubeconfig(fake: FakeKubernetesServer, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig", contexts=["staging"], current="staging", namespace="shop")


@pytest.fixture
def batch(kubeconfig: Path) -> Iterator[k8s.BatchV1Api]:
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(kubeconfig), context="staging")  # type: ignore[no-untyped-call]
    yield k8s.BatchV1Api(api)
    api.close()  # type: ignore[no-untyped-call]


def job_body(name: str, *, exit_code: int = 0, restart: str = "Never", **spec: Any) -> Any:
    """A Job as a plain dict (the client sends dicts as they are; ``Any`` because its stubs ask for ``V1Job``)."""
    env = [{"name": "FAKE_JOB_EXIT", "value": str(exit_code)}, {"name": "FAKE_JOB_TICKS", "value": "1"}]
    container = {"name": "main", "image": IMAGE, "command": ["migrate", "up"], "env": env}
    return {"metadata": {"name": name}, "spec": {"template": {"spec": {"restartPolicy": restart, "containers": [container]}}, **spec}}


def conditions(job: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c.get("reason", "") for c in job.get("status", {}).get("conditions") or [] if c["status"] == "True"}


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "{}")
    return body


def test_a_job_runs_its_pod_over_time_and_completes(fake: FakeKubernetesServer, batch: k8s.BatchV1Api) -> None:
    batch.create_namespaced_job("shop", job_body("once"))

    fake.tick()
    running = fake.jobs("staging", "shop")[0]
    fake.tick(3)
    [job] = fake.jobs("staging", "shop")

    assert running["status"]["active"] == 1 and conditions(running) == {}
    assert conditions(job) == {"SuccessCriteriaMet": "CompletionsReached", "Complete": "CompletionsReached"}
    assert job["status"]["succeeded"] == 1 and "completionTime" in job["status"]
    [pod] = fake.pods("staging", "shop", f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["labels"]["job-name"] == "once"


def test_a_failing_pod_is_retried_up_to_the_backoff_limit(fake: FakeKubernetesServer, batch: k8s.BatchV1Api) -> None:
    batch.create_namespaced_job("shop", job_body("flaky", exit_code=2, backoffLimit=1))

    fake.tick(10)

    [job] = fake.jobs("staging", "shop")
    assert conditions(job) == {"FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}
    assert job["status"]["failed"] == 2, "one pod, then one retry"


def test_errors_are_status_bodies(fake: FakeKubernetesServer, batch: k8s.BatchV1Api) -> None:
    with pytest.raises(ApiException) as invalid:
        batch.create_namespaced_job("shop", job_body("bad", restart="Always"))
    batch.create_namespaced_job("shop", job_body("taken"))
    with pytest.raises(ApiException) as taken:
        batch.create_namespaced_job("shop", job_body("taken"))
    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_cron_job("nightly", "shop")

    assert invalid.value.status == 422
    assert status_of(invalid.value)["reason"] == "Invalid"
    assert status_of(invalid.value)["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    assert (taken.value.status, status_of(taken.value)["message"]) == (409, 'jobs.batch "taken" already exists')
    assert (missing.value.status, status_of(missing.value)["message"]) == (404, 'cronjobs.batch "nightly" not found')


def test_a_dry_run_stores_nothing(fake: FakeKubernetesServer, batch: k8s.BatchV1Api) -> None:
    body = job_body("")
    body["metadata"] = {"generateName": "preview-"}

    preview: Any = batch.create_namespaced_job("shop", body, dry_run="All")

    assert preview.metadata.name.startswith("preview-")
    assert preview.spec.backoff_limit == 6, "defaulted as the API server would"
    assert fake.jobs("staging") == []


def test_deleting_with_background_propagation_removes_the_pods(fake: FakeKubernetesServer, batch: k8s.BatchV1Api) -> None:
    batch.create_namespaced_job("shop", job_body("doomed"))
    fake.tick()

    batch.delete_namespaced_job("doomed", "shop", propagation_policy="Background")

    assert fake.jobs("staging", "shop") == []
    assert fake.pods("staging", "shop") == []


def test_a_finished_job_is_removed_after_its_ttl(fake: FakeKubernetesServer, batch: k8s.BatchV1Api) -> None:
    batch.create_namespaced_job("shop", job_body("brief", ttlSecondsAfterFinished=30))

    fake.tick(3)
    finished = fake.jobs("staging", "shop")
    fake.tick(4)  # 10 s of cluster time a tick

    assert conditions(finished[0])["Complete"] == "CompletionsReached"
    assert fake.jobs("staging", "shop") == [] and fake.pods("staging", "shop") == []


def test_pod_logs_honour_tail_lines(fake: FakeKubernetesServer, kubeconfig: Path) -> None:
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(kubeconfig), context="staging")  # type: ignore[no-untyped-call]
    body: Any = {"metadata": {"name": "m"}, "spec": _cronjob_job_spec(fake)}
    k8s.BatchV1Api(api).create_namespaced_job("shop", body)
    fake.tick()
    [pod] = fake.pods("staging", "shop")
    core = k8s.CoreV1Api(api)
    with pytest.raises(ApiException) as waiting:
        core.read_namespaced_pod_log(pod["metadata"]["name"], "shop")
    fake.tick(3)

    tail = core.read_namespaced_pod_log(pod["metadata"]["name"], "shop", tail_lines=2)
    api.close()  # type: ignore[no-untyped-call]

    assert waiting.value.status == 400 and "is waiting to start: ContainerCreating" in status_of(waiting.value)["message"]
    assert tail.splitlines() == ["output line 3 of 4", "output line 4 of 4"]


def test_kubectl_creates_a_job_from_a_cronjobs_template_lists_it_and_reads_its_logs(
    fake: FakeKubernetesServer, kubeconfig: Path, kubectl_binary: Path, tmp_path: Path
) -> None:
    """What a person does by hand: read the CronJob, create a Job from its template, watch it, read its logs.

    ``kubectl create -f`` sends JSON, which the fake speaks; ``kubectl create job --from=cronjob``
    (kubectl 1.36+) sends protobuf, which it does not: it answers 415 as an API server does
    for a media type it cannot decode.
    """

    def kubectl(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(kubectl_binary), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert (done.returncode == 0) == ok, done.stderr
        return done

    cronjob = json.loads(kubectl("get", "cronjob", "migrate", "-o", "json").stdout)
    manifest = tmp_path / "job.json"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate-by-hand"}, "spec": cronjob["spec"]["jobTemplate"]["spec"]}
    manifest.write_text(json.dumps(job))
    # --validate=false: kubectl would first fetch /openapi/v3 to validate client-side, which the fake does not serve.
    created = kubectl("create", "--validate=false", "-f", str(manifest)).stdout
    fake.tick(4)
    listed = kubectl("get", "jobs").stdout
    logs = kubectl("logs", "job/migrate-by-hand").stdout
    protobuf = kubectl("create", "job", "--from=cronjob/migrate", "other", ok=False)

    assert created.strip() == "job.batch/migrate-by-hand created"
    assert "migrate-by-hand" in listed
    assert logs.splitlines() == ["$ migrate up", "output line 1 of 4", "output line 2 of 4", "output line 3 of 4", "output line 4 of 4"]
    assert "accepted media types include: application/json" in protobuf.stderr


def _cronjob_job_spec(fake: FakeKubernetesServer) -> dict[str, Any]:
    [cronjob] = fake.cronjobs("staging", "shop")
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]
    return spec
