"""The Helm chart and the plain manifests: valid Kubernetes, least privilege, secrets by reference.

The chart is rendered by Helm's own engine (helm-python-sdk binds the Helm v4 Go SDK; no
``helm`` binary needed), then every object is checked against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict: unknown fields are errors) of the oldest Kubernetes
the chart supports and the newest the validator knows. deploy/manifests/ must be exactly
what the chart renders with deploy/manifests-values.yaml.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from bot.requests.builtins import BUILTIN_SPECS

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "opsbot"
MANIFESTS = DEPLOY / "manifests"

pytest.importorskip("helm_python", reason="helm-python-sdk (the `dev` extra) renders the chart: pip install -e '.[dev]'")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is in the `dev` extra: pip install -e '.[dev]'"
)

KUBERNETES_VERSIONS = ["1.25.0", "1.37.0"]
"""Chart.yaml's kubeVersion floor, and the newest schemas kubernetes-validate ships."""

RUNBOOK_RULES = {
    ("apps", "deployments"): {"get", "list", "watch", "patch"},
    ("apps", "deployments/scale"): {"get", "patch"},
    ("apps", "replicasets"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
}
"""Everything the runbook actions do in Kubernetes (bot/backends/kubernetes/client.py), and nothing more."""
JOB_RULES = {
    ("batch", "jobs"): {"create", "get", "delete"},
    ("batch", "cronjobs"): {"get"},
    ("", "pods/log"): {"get"},
}
"""What ``kubernetes.job`` adds (its ``cluster_access``), only where a runbook runs Jobs."""

SECRET_FILES = {
    "SLACK_BOT_TOKEN_FILE": ("slack", "SLACK_BOT_TOKEN"),
    "SLACK_SIGNING_SECRET_FILE": ("slack", "SLACK_SIGNING_SECRET"),
    "SLACK_APP_TOKEN_FILE": ("slack", "SLACK_APP_TOKEN"),
    "OPSBOT_DATABASE_URL_FILE": ("database", "OPSBOT_DATABASE_URL"),
}
"""Each secret setting's ``*_FILE`` variable → (the values section naming its Secret, the key in it)."""


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_manifests", DEPLOY / "render_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


renderer = _load_renderer()
BASE_VALUES: dict[str, Any] = renderer.load_values()

VARIANTS: dict[str, dict[str, Any]] = {
    "manifests": {},
    "socket-mode": {"slackMode": "socket", "ingress": {"enabled": False}},
    "cluster-wide": {"rbac": {"targets": [], "namespaces": [], "clusterWide": True}},
    "whole-namespaces": {"rbac": {"targets": [], "namespaces": ["shop", "payments"]}, "networkPolicy": {"enabled": False}},
    "kubeconfig-runbooks-owner-role": {
        "kubeconfig": {"existingSecret": "opsbot-kubeconfig"},
        "runbooks": {"files": {"deploy.yaml": (REPO / "runbooks" / "deploy.yaml").read_text(encoding="utf-8")}},
        "migrations": {"existingSecret": "opsbot-database-owner"},
        "image": {"digest": "sha256:" + "ab" * 32},
        "replicaCount": 3,
    },
    "one-replica-no-rbac": {"replicaCount": 1, "rbac": {"create": False, "namespaces": []}, "ingress": {"enabled": False}},
    "socket-mode-kubeconfig-only": {
        "slackMode": "socket",
        "ingress": {"enabled": False},
        "kubeconfig": {"existingSecret": "opsbot-kubeconfig"},
        "rbac": {"create": False, "targets": []},
        "serviceAccount": {"automountToken": False},
    },
    "impersonate": {"rbac": {"impersonate": {"enabled": True, "users": [], "groups": ["opsbot:developers", "opsbot:platform-oncall"]}}},
    "whole-namespaces-jobs": {"rbac": {"targets": [], "namespaces": ["shop"], "jobs": True}, "ingress": {"api": True}},
    "cluster-wide-jobs": {"rbac": {"targets": [], "namespaces": [], "clusterWide": True, "jobs": True}},
    "targets-without-jobs": {"rbac": {"targets": [{"namespace": "shop", "deployments": ["checkout"]}]}},
}
"""Value sets that switch every branch of the templates, each on top of deploy/manifests-values.yaml."""


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in override.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [yaml.safe_load(document) for document in renderer.documents(renderer.render_chart(values))]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(merged(BASE_VALUES, override)) for name, override in VARIANTS.items()}


@pytest.fixture(scope="module")
def committed() -> list[dict[str, Any]]:
    return [obj for path in sorted(MANIFESTS.glob("*.yaml")) for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")) if obj]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def server_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(container for container in containers if container["name"] == "opsbot")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}


# -- the plain manifests ----------------------------------------------------------------------


def test_plain_manifests_are_exactly_what_the_chart_renders() -> None:
    stale = renderer.stale_files(renderer.plain_manifests(BASE_VALUES))
    assert stale == [], f"deploy/manifests/{stale} differ from the chart: run `.venv/bin/python deploy/render_manifests.py`"


def test_plain_manifests_hold_the_app_and_the_migration_job_apart(committed: list[dict[str, Any]]) -> None:
    app = [obj for obj in yaml.safe_load_all((MANIFESTS / "opsbot.yaml").read_text(encoding="utf-8")) if obj]
    migration = [obj for obj in yaml.safe_load_all((MANIFESTS / "migrate-job.yaml").read_text(encoding="utf-8")) if obj]
    assert [obj["kind"] for obj in migration] == ["Job"]
    assert sorted({obj["kind"] for obj in app}) == sorted(
        {"NetworkPolicy", "PodDisruptionBudget", "ServiceAccount", "ConfigMap", "Role", "RoleBinding", "Service", "Deployment", "Ingress"}
    )
    assert all(obj["metadata"].get("namespace") for obj in committed), "every object names its namespace"


def test_plain_manifest_config_is_a_valid_opsbot_config_with_rbac_for_every_in_cluster_target(
    committed: list[dict[str, Any]], tmp_path: Path
) -> None:
    from bot.catalog.catalog import check_files

    config_text = one(committed, "ConfigMap")["data"]["opsbot.yaml"]
    (tmp_path / "opsbot.yaml").write_text(config_text, encoding="utf-8")
    result = check_files(tmp_path / "opsbot.yaml", REPO / "runbooks", builtins=BUILTIN_SPECS)
    assert result.problems == []
    assert result.config is not None
    in_cluster_namespaces = {
        environment.kubernetes.namespace
        for service in result.config.services.values()
        for environment in service.environments.values()
        if environment.kubernetes is not None and environment.kubernetes.context is None
    }
    assert in_cluster_namespaces <= {role["metadata"]["namespace"] for role in of_kind(committed, "Role")}


# -- Kubernetes schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_kubernetes(rendered: dict[str, list[dict[str, Any]]], version: str) -> None:
    problems = []
    for variant, objects in rendered.items():
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{variant}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert problems == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_committed_manifest_is_valid_kubernetes(committed: list[dict[str, Any]], version: str) -> None:
    for obj in committed:
        kubernetes_validate.validate(obj, version, strict=True)


def test_yaml_files_pass_yamllint_relaxed() -> None:
    yamllint_config = pytest.importorskip("yamllint.config", reason="yamllint is in the `dev` extra")
    from yamllint import linter

    config = yamllint_config.YamlLintConfig("extends: relaxed")
    files = [CHART / "Chart.yaml", CHART / "values.yaml", DEPLOY / "manifests-values.yaml", *sorted(MANIFESTS.glob("*.yaml"))]
    errors = [
        f"{path.relative_to(REPO)}:{problem.line}: {problem.message}"
        for path in files
        for problem in linter.run(path.read_text(encoding="utf-8"), config)
        if problem.level == "error"
    ]
    assert errors == []


def test_helm_lint_finds_nothing_but_the_missing_icon() -> None:
    import helm_python as helm

    report = helm.lint(CHART, BASE_VALUES, strict=True)
    findings = [message for message in report["messages"] if message["error"] != "icon is recommended"]
    assert report["errors"] == [] and findings == []


# -- RBAC ---------------------------------------------------------------------------------------


def rule_set(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, f"unexpected rule fields (nonResourceURLs…): {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def runs_jobs(values: dict[str, Any], namespace: str | None) -> bool:
    """Whether the values grant Jobs in ``namespace`` (None: the ClusterRole or every namespace of ``rbac.namespaces``)."""
    rbac = values["rbac"]
    if rbac["targets"]:
        return any(target.get("jobs", False) for target in rbac["targets"] if target["namespace"] == namespace)
    return bool(rbac.get("jobs", False))


def test_roles_grant_exactly_what_the_runbooks_need(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for variant, objects in rendered.items():
        values = merged(BASE_VALUES, VARIANTS[variant])
        for role in of_kind(objects, "Role") + of_kind(objects, "ClusterRole"):
            if role["metadata"]["name"].endswith("-impersonate"):
                continue  # its own test below
            expected = RUNBOOK_RULES | (JOB_RULES if runs_jobs(values, role["metadata"].get("namespace")) else {})
            assert rule_set(role) == expected, f"{variant}: {role['kind']} {role['metadata']['name']}"


def test_job_rules_come_only_with_a_runbook_that_runs_jobs_and_name_only_its_cronjobs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for role in of_kind(rendered["manifests"], "Role"):
        cronjob_rules = [rule for rule in role["rules"] if rule["resources"] == ["cronjobs"]]
        assert cronjob_rules == [{"apiGroups": ["batch"], "resources": ["cronjobs"], "resourceNames": ["db-migrate"], "verbs": ["get"]}]
    for variant in ("targets-without-jobs", "whole-namespaces", "cluster-wide"):
        for role in of_kind(rendered[variant], "Role") + of_kind(rendered[variant], "ClusterRole"):
            assert not any("batch" in rule["apiGroups"] or "pods/log" in rule["resources"] for rule in role["rules"]), variant


def test_opsbot_rbac_grants_jobs_only_when_a_runbook_runs_them(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli.main import main

    config = tmp_path / "opsbot.yaml"
    config.write_text(BASE_VALUES["config"]["opsbotYaml"], encoding="utf-8")
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    for runbook in sorted((REPO / "runbooks").glob("*.yaml")):
        if runbook.name != "migrate.yaml":
            (runbooks / runbook.name).write_text(runbook.read_text(encoding="utf-8"), encoding="utf-8")
    env = {"OPSBOT_CONFIG": str(config), "OPSBOT_RUNBOOKS_DIR": str(runbooks)}

    without = yaml.safe_load(CliRunner().invoke(main, ["rbac", "--format", "values"], env=env).output)
    assert all(set(target) == {"namespace", "deployments"} for target in without["rbac"]["targets"])

    (runbooks / "migrate.yaml").write_text((REPO / "runbooks" / "migrate.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    printed = [doc for doc in yaml.safe_load_all(CliRunner().invoke(main, ["rbac"], env=env).output) if doc]
    for role in of_kind(printed, "Role"):
        assert rule_set(role) == RUNBOOK_RULES | JOB_RULES
    with_jobs = yaml.safe_load(CliRunner().invoke(main, ["rbac", "--format", "values"], env=env).output)
    assert all(target["jobs"] is True and target["cronjobs"] == ["db-migrate"] for target in with_jobs["rbac"]["targets"])


def test_opsbot_rbac_refuses_a_catalog_whose_runbooks_do_not_load(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli.main import main

    config = tmp_path / "opsbot.yaml"
    config.write_text(BASE_VALUES["config"]["opsbotYaml"], encoding="utf-8")
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "broken.yaml").write_text("name: broken\nsteps: []\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["rbac"], env={"OPSBOT_CONFIG": str(config), "OPSBOT_RUNBOOKS_DIR": str(runbooks)})
    assert result.exit_code != 0
    assert "broken.yaml" in result.output and "Traceback" not in result.output


def test_the_impersonate_grant_names_exactly_the_groups_and_the_request_extra(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["impersonate"]
    role = next(obj for obj in of_kind(objects, "ClusterRole") if obj["metadata"]["name"] == "opsbot-impersonate")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
        {
            "apiGroups": [""],
            "resources": ["groups"],
            "verbs": ["impersonate"],
            "resourceNames": ["opsbot:developers", "opsbot:platform-oncall"],
        },
        {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/opsbot-request"], "verbs": ["impersonate"]},
    ]
    binding = next(obj for obj in of_kind(objects, "ClusterRoleBinding") if obj["metadata"]["name"] == "opsbot-impersonate")
    assert binding["subjects"][0]["kind"] == "ServiceAccount"
    assert all("impersonate" not in obj["metadata"]["name"] for obj in rendered["manifests"]), "off unless asked for"


def test_roles_exist_in_each_target_namespace_bound_to_the_service_account(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["manifests"]
    account = one(objects, "ServiceAccount")["metadata"]
    targets = {target["namespace"] for target in BASE_VALUES["rbac"]["targets"]}
    assert {role["metadata"]["namespace"] for role in of_kind(objects, "Role")} == targets
    assert of_kind(objects, "ClusterRole") == [] and of_kind(objects, "ClusterRoleBinding") == []
    for binding in of_kind(objects, "RoleBinding"):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "opsbot-runbooks"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


def test_patch_reaches_only_the_deployments_the_catalog_names(rendered: dict[str, list[dict[str, Any]]]) -> None:
    wanted = {target["namespace"]: set(target["deployments"]) for target in BASE_VALUES["rbac"]["targets"]}
    for role in of_kind(rendered["manifests"], "Role"):
        for rule in role["rules"]:
            if "patch" in rule["verbs"] or ("get" in rule["verbs"] and "deployments" in rule["resources"]):
                assert set(rule.get("resourceNames", [])) == wanted[role["metadata"]["namespace"]], rule


def test_opsbot_rbac_prints_the_charts_roles_and_the_values_that_make_them(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from bot.cli.main import main

    config = tmp_path / "opsbot.yaml"
    config.write_text(BASE_VALUES["config"]["opsbotYaml"], encoding="utf-8")
    env = {"OPSBOT_CONFIG": str(config)}
    printed = [doc for doc in yaml.safe_load_all(CliRunner().invoke(main, ["rbac"], env=env).output) if doc]
    values = yaml.safe_load(CliRunner().invoke(main, ["rbac", "--format", "values"], env=env).output)

    chart_roles = {role["metadata"]["namespace"]: role["rules"] for role in of_kind(rendered["manifests"], "Role")}
    assert {role["metadata"]["namespace"]: role["rules"] for role in of_kind(printed, "Role")} == chart_roles
    assert values["rbac"]["targets"] == BASE_VALUES["rbac"]["targets"], "deploy/manifests-values.yaml carries `opsbot rbac --format values`"
    for obj in printed:
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)


def test_no_service_account_token_when_every_target_uses_a_kubeconfig(tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]) -> None:
    from click.testing import CliRunner

    from bot.cli.main import main

    config = tmp_path / "opsbot.yaml"
    config.write_text(
        "services:\n  web:\n    environments:\n      prod:\n        kubernetes: {context: prod, namespace: web, deployment: web}\n",
        encoding="utf-8",
    )
    (tmp_path / "runbooks").mkdir()  # the built-in commands only
    env = {"OPSBOT_CONFIG": str(config), "OPSBOT_RUNBOOKS_DIR": str(tmp_path / "runbooks")}
    result = CliRunner().invoke(main, ["rbac", "--format", "values", "--context", "prod"], env=env)
    assert yaml.safe_load(result.output)["serviceAccount"] == {"automountToken": False}
    spec = one(rendered["socket-mode-kubeconfig-only"], "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert one(rendered["socket-mode-kubeconfig-only"], "ServiceAccount")["automountServiceAccountToken"] is False


# -- network policy -----------------------------------------------------------------------------


def test_network_policy_lets_in_only_the_ingress_controller_and_monitoring(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policy = one(rendered["manifests"], "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    sources = [(rule["from"][0]["namespaceSelector"]["matchLabels"], rule["ports"]) for rule in policy["ingress"]]
    assert sources == [
        ({"kubernetes.io/metadata.name": "ingress-nginx"}, [{"port": "http", "protocol": "TCP"}]),
        ({"opsbot.io/scrape": "true"}, [{"port": "http", "protocol": "TCP"}]),
    ]


def test_network_policy_lets_out_only_dns_the_database_the_api_servers_and_https(rendered: dict[str, list[dict[str, Any]]]) -> None:
    egress = one(rendered["manifests"], "NetworkPolicy")["spec"]["egress"]
    ports = [sorted((port["port"], port["protocol"]) for port in rule["ports"]) for rule in egress]
    assert ports == [[(53, "TCP"), (53, "UDP")], [(5432, "TCP")], [(443, "TCP"), (6443, "TCP")], [(443, "TCP")]]
    assert egress[0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_socket_mode_lets_nothing_in_but_monitoring(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policy = one(rendered["socket-mode"], "NetworkPolicy")["spec"]
    assert [rule["from"][0]["namespaceSelector"]["matchLabels"] for rule in policy["ingress"]] == [{"opsbot.io/scrape": "true"}]


def test_cluster_wide_rbac_is_one_cluster_role_and_no_namespaced_roles(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["cluster-wide"]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"][0]["kind"] == "ServiceAccount"
    assert of_kind(objects, "Role") == []


def test_no_role_at_all_when_rbac_is_off(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {obj["kind"] for obj in rendered["one-replica-no-rbac"]}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PodDisruptionBudget"}


# -- probes, rollout, Service ------------------------------------------------------------------


def test_probes_point_at_healthz_and_readyz_on_the_served_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    from bot.serve.readiness import READINESS_TIMEOUT_SECONDS

    for variant, objects in rendered.items():
        container = server_container(objects)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports == {"http": 3000}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, variant
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, variant
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, variant
        # /readyz waits up to READINESS_TIMEOUT_SECONDS for the database before it answers 503.
        assert container["readinessProbe"]["timeoutSeconds"] > READINESS_TIMEOUT_SECONDS
        assert env_of(container)["OPSBOT_PORT"]["value"] == "3000"


def test_two_replicas_roll_out_one_at_a_time_behind_a_disruption_budget(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["manifests"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_service_and_ingress_reach_the_pods_and_expose_only_slack_events(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["manifests"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = one(objects, "Ingress")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert [(path["path"], path["backend"]["service"]["name"]) for path in paths] == [("/slack/events", service["metadata"]["name"])]
    assert ingress["spec"]["tls"][0]["secretName"] == "opsbot-tls"


def test_the_inbound_api_is_routed_only_when_asked_for(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ingress = one(rendered["whole-namespaces-jobs"], "Ingress")
    paths = [(path["path"], path["pathType"]) for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert paths == [("/slack/events", "Exact"), ("/api/v1/", "Prefix")]


def test_service_links_are_off_so_a_service_named_opsbot_cannot_override_opsbot_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for variant, objects in rendered.items():
        for name, spec in pod_specs(objects):
            assert spec["enableServiceLinks"] is False, f"{variant}: {name}"


def test_a_config_change_restarts_the_pods() -> None:
    first = render(BASE_VALUES)
    second = render(merged(BASE_VALUES, {"config": {"opsbotYaml": BASE_VALUES["config"]["opsbotYaml"] + "\n# changed\n"}}))
    annotation = "checksum/config"
    before = one(first, "Deployment")["spec"]["template"]["metadata"]["annotations"][annotation]
    after = one(second, "Deployment")["spec"]["template"]["metadata"]["annotations"][annotation]
    assert before != after


# -- secrets ------------------------------------------------------------------------------------


def test_no_secret_object_and_no_secret_value_anywhere(rendered: dict[str, list[dict[str, Any]]], committed: list[dict[str, Any]]) -> None:
    looks_secret = re.compile(r"xox[abp]-|xapp-|://[^/\s:@]+:[^/\s@]+@|-----BEGIN")
    for variant, objects in [*rendered.items(), ("committed", committed)]:
        assert of_kind(objects, "Secret") == [], variant
        assert not looks_secret.search(yaml.safe_dump_all(objects)), f"{variant}: a credential-like value is inlined"


def test_secrets_are_mounted_files_read_through_file_variables(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for variant, objects in rendered.items():
        values = merged(BASE_VALUES, VARIANTS[variant])
        container = server_container(objects)
        env = env_of(container)
        spec = one(objects, "Deployment")["spec"]["template"]["spec"]
        for plain in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "OPSBOT_DATABASE_URL"):
            assert plain not in env, f"{variant}: {plain} is set directly; it would shadow {plain}_FILE"
        assert not any("secretKeyRef" in str(item.get("valueFrom", "")) for item in env.values()), "secrets go in files, not env"
        expected = {"SLACK_BOT_TOKEN_FILE", "OPSBOT_DATABASE_URL_FILE"}
        expected.add("SLACK_APP_TOKEN_FILE" if values["slackMode"] == "socket" else "SLACK_SIGNING_SECRET_FILE")
        assert {name for name in env if name in SECRET_FILES} == expected, variant
        for name in expected:
            section, key = SECRET_FILES[name]
            secret_name = values[section]["existingSecret"]
            assert_file_comes_from_secret(spec, container, env[name]["value"], secret_name, key)


def test_the_migration_job_reads_the_owner_role_url_when_given(rendered: dict[str, list[dict[str, Any]]]) -> None:
    job = one(rendered["kubeconfig-runbooks-owner-role"], "Job")
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    path = env_of(container)["OPSBOT_DATABASE_URL_FILE"]["value"]
    assert_file_comes_from_secret(spec, container, path, "opsbot-database-owner", "OPSBOT_DATABASE_URL")
    server = one(rendered["kubeconfig-runbooks-owner-role"], "Deployment")["spec"]["template"]["spec"]
    assert_file_comes_from_secret(
        server, server_container(rendered["kubeconfig-runbooks-owner-role"]), path, "opsbot-database", "OPSBOT_DATABASE_URL"
    )


def assert_file_comes_from_secret(spec: dict[str, Any], container: dict[str, Any], path: str, secret_name: str, key: str) -> None:
    directory, _, file_name = path.rpartition("/")
    mount = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == directory)
    assert mount.get("readOnly") is True
    volume = next(volume for volume in spec["volumes"] if volume["name"] == mount["name"])
    assert volume["secret"]["secretName"] == secret_name
    assert {"key": key, "path": file_name} in volume["secret"]["items"]
    assert volume["secret"]["defaultMode"] == 0o440


# -- the container runs as nobody in particular ----------------------------------------------


def test_every_container_runs_as_the_images_non_root_user_on_a_read_only_root(rendered: dict[str, list[dict[str, Any]]]) -> None:
    uid = int(re.search(r"^ARG OPSBOT_UID=(\d+)$", (REPO / "Dockerfile").read_text(encoding="utf-8"), re.MULTILINE).group(1))  # type: ignore[union-attr]
    for variant, objects in rendered.items():
        for name, spec in pod_specs(objects):
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid and pod["fsGroup"] == uid
            assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, f"{variant}: {name}"
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"] == {"drop": ["ALL"]}
                assert context["seccompProfile"] == {"type": "RuntimeDefault"}
                tmp = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp")
                assert "emptyDir" in next(volume for volume in spec["volumes"] if volume["name"] == tmp["name"])


def test_metrics_directory_is_a_writable_empty_dir(rendered: dict[str, list[dict[str, Any]]]) -> None:
    container = server_container(rendered["manifests"])
    directory = env_of(container)["PROMETHEUS_MULTIPROC_DIR"]["value"]
    mount = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == directory)
    spec = one(rendered["manifests"], "Deployment")["spec"]["template"]["spec"]
    assert "emptyDir" in next(volume for volume in spec["volumes"] if volume["name"] == mount["name"])


# -- migrations, modes, options ---------------------------------------------------------------


def test_migrations_run_as_a_pre_install_pre_upgrade_hook_outside_the_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["manifests"]
    job = one(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["args"] == ["db", "upgrade"]
    assert spec["containers"][0]["image"] == server_container(objects)["image"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    for selector in (one(objects, "Service")["spec"]["selector"], one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= job_labels.items(), "the migration pod must not receive Slack traffic or count for the PDB"


def test_socket_mode_serves_over_a_websocket_with_the_app_token(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["socket-mode"]
    container = server_container(objects)
    assert container["args"] == ["serve", "--socket-mode"]
    assert of_kind(objects, "Ingress") == []


def test_kubeconfig_runbooks_and_digest_options(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["kubeconfig-runbooks-owner-role"]
    container = server_container(objects)
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert container["image"] == "registry.example.com/platform/opsbot@sha256:" + "ab" * 32
    assert_file_comes_from_secret(spec, container, env_of(container)["KUBECONFIG"]["value"], "opsbot-kubeconfig", "config")
    runbooks = next(item for item in of_kind(objects, "ConfigMap") if item["metadata"]["name"].endswith("-runbooks"))
    assert set(runbooks["data"]) == {"deploy.yaml"}
    mount = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == env_of(container)["OPSBOT_RUNBOOKS_DIR"]["value"])
    assert (
        next(volume for volume in spec["volumes"] if volume["name"] == mount["name"])["configMap"]["name"] == runbooks["metadata"]["name"]
    )
    assert yaml.safe_load(runbooks["data"]["deploy.yaml"])["name"] == "deploy"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"config": {"opsbotYaml": ""}}, "--set-file config.opsbotYaml=opsbot.yaml"),
        ({"slackMode": "socket"}, "Socket Mode needs no public URL"),
        ({"slack": {"existingSecret": ""}}, "slack.existingSecret is empty"),
        ({"rbac": {"clusterWide": True}}, "choose a ClusterRole or Roles"),
        ({"replicaCont": 3}, "additional properties 'replicaCont' not allowed"),
        ({"slackMode": "websocket"}, "slackMode"),
    ],
)
def test_the_chart_refuses_broken_values_with_a_sentence(override: dict[str, Any], message: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmError) as raised:
        render(merged(BASE_VALUES, override))
    assert message in str(raised.value)


def test_chart_app_version_is_the_package_version() -> None:
    import tomllib

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["appVersion"] == project["version"]
