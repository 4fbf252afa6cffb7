"""The wheel the Docker image is built from, installed into a clean venv like the image's.

No Docker engine runs here, so this does what the Dockerfile's build stage does: copy the
same files (read from its COPY lines), pin pip and the build backend from
requirements/build.lock, install requirements/runtime.lock into a venv without pip with
``--require-hashes --no-deps --only-binary=:all:``, build opsbot's wheel with the locked
setuptools and no build isolation, install it with ``--no-deps``, ``pip check``, make the
tree read-only to all but its owner; then run the installed ``opsbot`` outside the
repository. A module, migration or data file missing from the wheel, a lock that does not
satisfy opsbot's own requirements, or a locked package without a wheel, fails here.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from bot.cli.main import main as opsbot_cli

REPO = Path(__file__).resolve().parents[2]
# Setting up the venv is a real install of ~50 wheels (from pip's cache after the first run):
# on a busy 2-core machine that can outlast the suite's default per-test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path

    @property
    def opsbot(self) -> str:
        return str(self.venv / "bin" / "opsbot")

    def run(self, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("OPSBOT_", "SLACK_", "PYTHON", "PROMETHEUS_"))}
        return subprocess.run(
            [self.opsbot, *arguments],
            cwd=self.workdir,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def build_stage_sources() -> list[str]:
    """What the Dockerfile's build stage copies into the wheel's source tree."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    build_stage = text.split(" AS runtime", 1)[0]
    sources: list[str] = []
    for line in build_stage.splitlines():
        match = re.match(r"COPY (?!--)(.+) \S+$", line.strip())
        if match:
            sources.extend(part.rstrip("/") for part in match.group(1).split())
    return sources


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    workdir = tmp_path_factory.mktemp("packaging-work")
    root = _shared_directory(tmp_path_factory)
    # Under pytest-xdist the tests of this module may land on several workers: the first one
    # builds, the others wait for the lock and reuse its venv instead of building their own.
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            _build_and_install(root)
            (root / "done").write_text("ok\n", encoding="utf-8")
    yield Installed(wheel=next((root / "dist").glob("opsbot-*.whl")), venv=root / "venv", workdir=workdir)


def _shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # xdist: each worker's basetemp is <session dir>/popen-gwN; the session dir is common to all workers.
    session = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = session / "opsbot-packaging"
    root.mkdir(exist_ok=True)
    return root


def _build_and_install(root: Path) -> None:
    source = root / "src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir()
    for name in build_stage_sources():
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    quiet = ["--quiet", "--disable-pip-version-check"]
    # The image's first step pins pip, setuptools and wheel to requirements/build.lock; the venv
    # running this test holds exactly those (./scripts/venv installs build.lock, and
    # tests/unit/test_lockfiles.py compares its pip freeze with the locks), so its pip plays the part.
    pip = [sys.executable, "-m", "pip"]
    locks = source / "requirements"
    assert f"pip=={importlib.metadata.version('pip')} " in (locks / "build.lock").read_text(encoding="utf-8")
    # The Dockerfile's two RUN steps of the build stage, flag for flag.
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    into_venv = [*pip, "--python", str(venv / "bin" / "python")]
    dependencies = ["install", *quiet, "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", str(locks / "runtime.lock")]
    subprocess.run([*into_venv, *dependencies], check=True, timeout=600)
    dist = root / "dist"
    subprocess.run(
        [*pip, "wheel", *quiet, "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(source)],
        check=True,
        timeout=180,
        cwd=source,
    )
    wheel = str(next(dist.glob("opsbot-*.whl")))
    subprocess.run([*into_venv, "install", *quiet, "--no-deps", "--no-index", wheel], check=True, timeout=300)
    subprocess.run([*into_venv, "check"], check=True, timeout=120, capture_output=True)
    subprocess.run(["chmod", "-R", "go-w", str(venv)], check=True, timeout=60)
    frozen = subprocess.run([*into_venv, "freeze", "--all"], check=True, timeout=120, capture_output=True, text=True)
    (root / "freeze.txt").write_text(frozen.stdout, encoding="utf-8")


def locked_pins(lock: Path) -> dict[str, str]:
    """name -> version of every package a lock file pins (PEP 503 names)."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", lock.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_image_tree_holds_exactly_the_runtime_lock_and_opsbot(installed: Installed) -> None:
    freeze = installed.venv.parent / "freeze.txt"
    frozen = locked_pins(freeze)
    assert frozen == locked_pins(REPO / "requirements" / "runtime.lock")
    assert any(line.startswith(f"opsbot @ file://{installed.wheel}") for line in freeze.read_text(encoding="utf-8").splitlines())
    assert "pip" not in frozen and "setuptools" not in frozen, "no installer and no build backend in the image's venv"


def test_nothing_in_the_installed_tree_is_writable_but_by_its_owner(installed: Installed) -> None:
    writable = [path for path in [installed.venv, *installed.venv.rglob("*")] if not path.is_symlink() and path.stat().st_mode & 0o022]
    assert writable == []


def test_wheel_holds_the_packages_and_the_migrations_and_nothing_else(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.startswith("opsbot-")}
    assert top_level == {"bot", "commands", "migrations"}
    assert "migrations/env.py" in names and "migrations/script.py.mako" in names
    revisions = sorted(path.name for path in (REPO / "migrations" / "versions").glob("[0-9]*.py"))
    assert revisions and all(f"migrations/versions/{name}" in names for name in revisions)
    assert "bot/py.typed" in names


def test_installed_opsbot_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    result = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
        cwd=installed.workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(result.stdout.strip()).is_relative_to(installed.venv)


def test_help_lists_every_subcommand(installed: Installed) -> None:
    result = installed.run("--help")
    assert result.returncode == 0, result.stderr
    commands_section = result.stdout.split("\nCommands:\n", 1)[1]
    listed = set(re.findall(r"^  ([\w-]+)\s", commands_section, re.MULTILINE))
    assert listed == set(opsbot_cli.list_commands(click.Context(opsbot_cli)))  # imported only when run
    assert {"serve", "validate", "db", "audit"} <= listed


def test_validate_passes_on_the_shipped_runbooks_and_example_config(installed: Installed) -> None:
    result = installed.run("validate", "--config", str(REPO / "opsbot.example.yaml"), "--runbooks", str(REPO / "runbooks"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")


def test_db_upgrade_creates_the_schema_from_the_installed_migrations(installed: Installed) -> None:
    url = f"sqlite:///{installed.workdir / 'opsbot.db'}"
    upgraded = installed.run("db", "upgrade", OPSBOT_DATABASE_URL=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith("Schema upgraded from empty to ")
    assert installed.run("db", "upgrade", OPSBOT_DATABASE_URL=url).stdout.startswith("Schema already at ")
    current = installed.run("db", "current", OPSBOT_DATABASE_URL=url)
    assert current.returncode == 0, current.stdout + current.stderr
    checked = installed.run("db", "check", OPSBOT_DATABASE_URL=url)
    assert checked.returncode == 0, checked.stderr
    verified = installed.run("audit", "verify", OPSBOT_DATABASE_URL=url)
    assert verified.returncode == 0 and verified.stdout.startswith("OK: 0 events"), verified.stdout + verified.stderr


def test_database_url_is_read_from_a_file_as_kubernetes_mounts_it(installed: Installed) -> None:
    secret = installed.workdir / "database-url"
    secret.write_text(f"sqlite:///{installed.workdir / 'from-file.db'}\n", encoding="utf-8")
    result = installed.run("db", "upgrade", OPSBOT_DATABASE_URL_FILE=str(secret))
    assert result.returncode == 0, result.stderr
    assert (installed.workdir / "from-file.db").exists()


def test_serve_refuses_to_start_without_slack_credentials(installed: Installed) -> None:
    result = installed.run("serve", OPSBOT_DATABASE_URL=f"sqlite:///{installed.workdir / 'serve.db'}")
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in result.stderr and "opsbot serve did not start." in result.stderr


def test_the_image_has_no_fakes_and_demo_says_it_needs_a_checkout(installed: Installed) -> None:
    result = installed.run("demo")
    assert result.returncode != 0
    assert "needs the fakes package of a source checkout" in result.stderr
    assert "Traceback" not in result.stderr
