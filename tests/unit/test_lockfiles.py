"""requirements/*.lock against pyproject.toml, and the venv the suite runs in against the locks.

The suite must run on exactly the locked versions (the image installs the same
runtime.lock), and a dependency added to pyproject.toml without ``./scripts/lock`` (or to
a lock by hand) must fail with what to run, before pip gets to reject anything. The check
itself is scripts/lockfiles.py, run here the way ./scripts/test runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = ("build", "runtime", "dev", "sbom")


def locked_pins(text: str) -> dict[str, str]:
    """name -> version for every ``name==version`` line (PEP 503 names)."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\]+)", text, re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def lock_text(name: str, root: Path = REPO) -> str:
    return (root / "requirements" / f"{name}.lock").read_text(encoding="utf-8")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The files the lock check and ./scripts/test's first step read, in a scratch copy."""
    for relative in ("pyproject.toml", "scripts/lockfiles.py", "scripts/test", "scripts/venv", *(f"requirements/{n}.lock" for n in LOCKS)):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, tmp_path / relative)
    return tmp_path


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "lockfiles.py"), "check", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- the venv ---------------------------------------------------------------------------------


def test_the_venv_running_the_suite_holds_exactly_the_locked_versions() -> None:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    expected = locked_pins(lock_text("build")) | locked_pins(lock_text("dev"))
    installed = locked_pins(frozen)
    assert {name: version for name, version in installed.items() if expected.get(name) != version} == {}, "installed but not locked"
    assert {name: version for name, version in expected.items() if installed.get(name) != version} == {}, "locked but not installed"
    # opsbot itself: this checkout, editable, never a copy from an index.
    assert "(opsbot==0.1.0)" in frozen or re.search(r"^-e .*opsbot", frozen, re.MULTILINE), frozen


def test_the_suite_runs_on_the_locked_runtime_versions_the_image_installs() -> None:
    runtime, dev = locked_pins(lock_text("runtime")), locked_pins(lock_text("dev"))
    assert runtime and {name: dev.get(name) for name in runtime} == runtime


def test_every_lock_pins_every_file_by_hash() -> None:
    for name in LOCKS:
        entries = re.split(r"\n(?=[A-Za-z0-9])", lock_text(name).split("\n", 3)[3])
        pinned = [entry for entry in entries if "==" in entry.split("\n", 1)[0]]
        assert pinned and all(re.search(r"--hash=sha256:[0-9a-f]{64}", entry) for entry in pinned), name


# -- pyproject.toml and the locks --------------------------------------------------------------


def test_the_checked_in_locks_match_pyproject_toml() -> None:
    result = check(REPO)
    assert result.returncode == 0, result.stderr


def test_a_dependency_added_to_pyproject_only_stops_scripts_test_with_what_to_run(checkout: Path) -> None:
    edit(checkout / "pyproject.toml", '    "tzdata>=2024.1",\n', '    "tzdata>=2024.1",\n    "toolz>=0.12",\n')
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / "test")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 1
    assert "pyproject.toml asks for toolz (the image: [project] dependencies); requirements/runtime.lock does not pin it" in result.stderr
    assert "Run ./scripts/lock" in result.stderr and "Traceback" not in result.stderr
    assert not (checkout / ".venv").exists(), "nothing installed from a stale lock"


def test_a_dev_dependency_added_to_pyproject_only_names_the_dev_lock(checkout: Path) -> None:
    edit(checkout / "pyproject.toml", '    "yamllint>=1.35",\n', '    "yamllint>=1.35",\n    "tabulate>=0.9",\n')
    result = check(checkout)
    assert result.returncode == 1
    assert (
        "pyproject.toml asks for tabulate (./scripts/test: dependencies plus the dev and demo extras); requirements/dev.lock"
        in result.stderr
    )
    assert "runtime.lock" not in result.stderr.split("Run ./scripts/lock")[0]


def test_a_package_added_to_a_lock_by_hand_is_refused(checkout: Path) -> None:
    runtime = checkout / "requirements" / "runtime.lock"
    runtime.write_text(lock_text("runtime") + f"left-pad==1.3.0 \\\n    --hash=sha256:{'0' * 64}\n    # via opsbot (pyproject.toml)\n")
    result = check(checkout)
    assert result.returncode == 1
    assert "requirements/runtime.lock pins left-pad as a direct requirement; pyproject.toml does not ask for it" in result.stderr


def test_a_package_nothing_needs_is_refused(checkout: Path) -> None:
    dev = checkout / "requirements" / "dev.lock"
    dev.write_text(lock_text("dev") + f"left-pad==1.3.0 \\\n    --hash=sha256:{'0' * 64}\n    # via leftpad-cli\n")
    result = check(checkout)
    assert result.returncode == 1
    assert "requirements/dev.lock pins left-pad, which nothing that pyproject.toml asks for needs" in result.stderr


def test_a_dependency_dropped_from_pyproject_is_noticed(checkout: Path) -> None:
    edit(checkout / "pyproject.toml", '    "prometheus-client>=0.20",\n', "")
    result = check(checkout)
    assert result.returncode == 1
    assert "requirements/runtime.lock pins prometheus-client as a direct requirement; pyproject.toml does not ask for it" in result.stderr


def test_a_changed_version_range_is_noticed(checkout: Path) -> None:
    edit(checkout / "pyproject.toml", '"click>=8.1,<9"', '"click>=8.1,<8.2"')
    result = check(checkout)
    assert result.returncode == 1
    assert "pyproject.toml's requirements for requirements/runtime.lock" in result.stderr and "changed since it was locked" in result.stderr


def test_dev_and_runtime_locks_that_disagree_are_refused(checkout: Path) -> None:
    version = locked_pins(lock_text("runtime"))["click"]
    edit(checkout / "requirements" / "dev.lock", f"\nclick=={version} ", "\nclick==0.0.1 ")
    result = check(checkout)
    assert result.returncode == 1
    assert f"requirements/dev.lock pins click==0.0.1 but requirements/runtime.lock pins click=={version}" in result.stderr


def test_a_lock_left_conflicted_by_a_merge_is_named_and_relocked_from_our_side(checkout: Path) -> None:
    runtime = checkout / "requirements" / "runtime.lock"
    ours = lock_text("runtime")
    first, rest = ours.split("\n", 1)
    runtime.write_text(f"<<<<<<< HEAD\n{first}\n=======\n# theirs\n>>>>>>> other-branch\n{rest}", encoding="utf-8")
    result = check(checkout)
    assert result.returncode == 1 and "requirements/runtime.lock has merge conflict markers" in result.stderr
    subprocess.run(
        [sys.executable, str(checkout / "scripts" / "lockfiles.py"), "take-ours", "--root", str(checkout)], check=True, timeout=60
    )
    assert runtime.read_text(encoding="utf-8") == ours
