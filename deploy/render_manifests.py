"""Render deploy/manifests/ from the Helm chart, for teams that deploy opsbot without Helm.

    .venv/bin/python deploy/render_manifests.py          # rewrite deploy/manifests/*.yaml
    .venv/bin/python deploy/render_manifests.py --check  # exit 1 when they differ from the chart

Rendering runs Helm's own template engine (the Helm v4 Go SDK, through helm-python-sdk, a
``dev`` dependency), so the output is what ``helm template opsbot deploy/helm/opsbot
--namespace opsbot -f deploy/manifests-values.yaml`` prints, split in two files: the
migration Job (a Helm hook; without Helm, apply it before each upgrade) and the rest, in
Helm's install order. tests/unit/test_deploy_manifests.py runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
CHART = DEPLOY / "helm" / "opsbot"
VALUES = DEPLOY / "manifests-values.yaml"
OUTPUT = DEPLOY / "manifests"
RELEASE = "opsbot"
NAMESPACE = "opsbot"
APP_FILE = "opsbot.yaml"
MIGRATION_FILE = "migrate-job.yaml"

# Helm's install order (pkg/release/util/kind_sorter.go), for the kinds this chart renders and their neighbours.
INSTALL_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
]

HEADER = """\
# GENERATED from the Helm chart deploy/helm/opsbot with deploy/manifests-values.yaml by
# deploy/render_manifests.py: change the chart or the values and re-render, or copy this
# file into your own repository and adapt it there. Walkthrough: deploy/manifests/README.md.
"""


def render_chart(values: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """The chart's templates rendered by Helm: template path → manifest text (NOTES.txt and partials dropped)."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    return {path: text for path, text in sorted(rendered.items()) if path.endswith((".yaml", ".yml"))}


def documents(rendered: dict[str, str]) -> list[str]:
    """Every non-empty YAML document of the rendered templates, as text (comments kept)."""
    found: list[str] = []
    for text in rendered.values():
        for chunk in text.split("\n---\n"):
            document = chunk.strip("\n")
            if document.startswith("---\n"):
                document = document[4:]
            if yaml.safe_load(document) is not None:
                found.append(document.strip("\n") + "\n")
    return found


def plain_manifests(values: dict[str, Any]) -> dict[str, str]:
    """File name → content of deploy/manifests/ for these values."""
    app: list[tuple[int, str, str]] = []
    hooks: list[str] = []
    for document in documents(render_chart(values)):
        obj = yaml.safe_load(document)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if "helm.sh/hook" in annotations:
            hooks.append(document)
            continue
        kind = str(obj.get("kind"))
        rank = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
        place = f"{(obj.get('metadata') or {}).get('namespace', '')}/{(obj.get('metadata') or {}).get('name', '')}"
        app.append((rank, place, document))
    app.sort(key=lambda item: (item[0], item[1]))
    return {
        APP_FILE: HEADER + "---\n" + "---\n".join(document for _, _, document in app),
        MIGRATION_FILE: HEADER
        + "# Apply and wait for it before applying opsbot.yaml, on install and on every upgrade.\n---\n"
        + "---\n".join(hooks),
    }


def load_values() -> dict[str, Any]:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    assert isinstance(values, dict), f"{VALUES} must hold a mapping"
    return values


def stale_files(expected: dict[str, str]) -> list[str]:
    """Names of files in deploy/manifests/ that differ from ``expected`` (or are missing)."""
    return [
        name
        for name, content in expected.items()
        if not (OUTPUT / name).is_file() or (OUTPUT / name).read_text(encoding="utf-8") != content
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render deploy/manifests/ from the Helm chart.")
    parser.add_argument("--check", action="store_true", help="Only compare; exit 1 if deploy/manifests/ is out of date.")
    arguments = parser.parse_args(argv)
    expected = plain_manifests(load_values())
    stale = stale_files(expected)
    if arguments.check:
        for name in stale:
            print(f"deploy/manifests/{name} differs from the chart; run: python deploy/render_manifests.py", file=sys.stderr)
        return 1 if stale else 0
    OUTPUT.mkdir(exist_ok=True)
    for name in stale:
        (OUTPUT / name).write_text(expected[name], encoding="utf-8")
        print(f"wrote deploy/manifests/{name}")
    if not stale:
        print("deploy/manifests/ is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
