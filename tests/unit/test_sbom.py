"""./scripts/sbom: the CycloneDX SBOM of the image's Python environment, from runtime.lock.

A security review reads the copy the image ships (/usr/share/opsbot/sbom.cdx.json, copied
from requirements/sbom.cdx.json), so it must be a valid CycloneDX document, list every
package the image installs with the hashes the build checked, and be current: the command
is reproducible, so a checked-in copy that differs from a fresh run is stale.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "requirements" / "sbom.cdx.json"
# ./scripts/sbom's own venv (requirements/sbom.lock): cyclonedx-python-lib's validator with the
# CycloneDX JSON schemas it ships lives there, not in the test venv.
SBOM_TOOL_PYTHON = REPO / ".venv" / "sbom-tool" / "bin" / "python"
VALIDATE = """
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1], encoding="utf-8").read())
print(getattr(error.data, "message", error) if error else "valid")
"""


def locked_hashes(lock: Path) -> dict[tuple[str, str], set[str]]:
    """(name, version) -> the sha256 hashes a lock allows for it."""
    found: dict[tuple[str, str], set[str]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8")):
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\]+)", entry)
        if pin:
            name = re.sub(r"[-_.]+", "-", pin.group(1)).lower()
            found[(name, pin.group(2))] = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return found


# The first run creates .venv/sbom-tool (a real install of ~30 wheels).
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    output = tmp_path_factory.mktemp("sbom") / "sbom.cdx.json"
    result = subprocess.run([str(REPO / "scripts" / "sbom"), str(output)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return output, json.loads(output.read_text(encoding="utf-8"))


def test_the_sbom_is_a_valid_cyclonedx_1_6_document(fresh: tuple[Path, dict[str, Any]]) -> None:
    path, document = fresh
    validated = subprocess.run([str(SBOM_TOOL_PYTHON), "-c", VALIDATE, str(path)], capture_output=True, text=True, timeout=120, check=True)
    assert validated.stdout.strip() == "valid", validated.stdout
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"


def test_the_sbom_lists_every_locked_runtime_package_with_the_hashes_the_build_checks(fresh: tuple[Path, dict[str, Any]]) -> None:
    _, document = fresh
    locked = locked_hashes(REPO / "requirements" / "runtime.lock")
    listed: dict[tuple[str, str], set[str]] = {}
    for component in document["components"]:
        name = re.sub(r"[-_.]+", "-", component["name"]).lower()
        assert component["type"] == "library" and component["purl"] == f"pkg:pypi/{name}@{component['version']}"
        hashes = {digest["content"] for reference in component.get("externalReferences", []) for digest in reference.get("hashes", [])}
        listed[(name, component["version"])] = hashes
    assert listed == locked


def test_the_sbom_describes_opsbot_itself(fresh: tuple[Path, dict[str, Any]]) -> None:
    _, document = fresh
    root = document["metadata"]["component"]
    assert (root["name"], root["version"], root["type"]) == ("opsbot", "0.1.0", "application")
    assert "serialNumber" not in document and "timestamp" not in document["metadata"], "reproducible: no random or dated fields"


def test_the_checked_in_sbom_is_current(fresh: tuple[Path, dict[str, Any]]) -> None:
    path, _ = fresh
    stale = "requirements/sbom.cdx.json is stale: run ./scripts/sbom (./scripts/lock does)"
    assert CHECKED_IN.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), stale
