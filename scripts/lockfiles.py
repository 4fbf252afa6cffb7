"""The lock files in requirements/ and the pyproject.toml they are made from.

``check`` says whether the locks still match pyproject.toml and names what to run when they
do not; ``./scripts/test`` runs it before anything is installed, so a dependency added on a
branch without re-locking fails in one readable paragraph instead of a resolver or hash
traceback half-way through an install. ``stamp`` writes into each lock the digest of the
pyproject.toml lines it was made from (``./scripts/lock`` calls it after uv), ``uv-lines``
prints the locked uv so ``./scripts/lock`` can install the very uv it pinned, and ``prune``
lists what a venv holds beyond the locks.

Standard library only, on purpose: it runs before the venv has anything in it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

RELOCK = "./scripts/lock"
ROOT_MARKERS = ("opsbot (pyproject.toml)", "-r -")  # uv's '# via' for what pyproject.toml asks for
STAMP_PREFIX = "# inputs-sha256: "
REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
VENV_LOCKS = ("build", "dev")  # what .venv holds; sbom.lock goes into a venv of its own
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


@dataclass(frozen=True)
class LockSpec:
    """One lock file: where it lives, what it is for, which pyproject.toml lines make it."""

    name: str
    purpose: str
    requirements: tuple[str, ...]
    requires_python: str

    @property
    def path(self) -> str:
        return f"requirements/{self.name}.lock"

    def digest(self) -> str:
        normalized = {
            "requires-python": self.requires_python,
            "requirements": sorted(re.sub(r"\s+", "", requirement) for requirement in self.requirements),
        }
        return hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()

    def direct_names(self) -> set[str]:
        return {requirement_name(requirement) for requirement in self.requirements}


@dataclass
class Pin:
    name: str
    version: str
    via: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lock:
    path: str
    pins: dict[str, Pin]
    stamp: str | None
    conflicted: bool


def specs(pyproject: Path) -> list[LockSpec]:
    """The locks, in the order ./scripts/lock makes them (build, runtime and dev constrain the next)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data["project"]
    requires_python = project.get("requires-python", "")
    runtime = tuple(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    dev = runtime + tuple(extras.get("dev", [])) + tuple(extras.get("demo", []))
    # pip is locked with the build backend: the installer that checks every other hash is pinned too.
    build = (*data.get("build-system", {}).get("requires", []), "pip")
    return [
        LockSpec("build", "pip and the build backend: [build-system] requires", build, requires_python),
        LockSpec("runtime", "the image: [project] dependencies", runtime, requires_python),
        LockSpec("dev", "./scripts/test: dependencies plus the dev and demo extras", dev, requires_python),
        LockSpec("sbom", "./scripts/sbom's own venv: the sbom extra", tuple(extras.get("sbom", [])), requires_python),
    ]


def normalize(name: str) -> str:
    """PEP 503: 'PyYAML', 'pyyaml' and 'py_yaml' are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = REQUIREMENT_NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


def read_lock(path: Path, label: str | None = None) -> Lock:
    """Pins, their '# via' annotations (uv's split style) and the inputs stamp of one lock file."""
    text = path.read_text(encoding="utf-8")
    pins: dict[str, Pin] = {}
    stamp: str | None = None
    current: Pin | None = None
    in_via = False
    for line in text.splitlines():
        if line.startswith(STAMP_PREFIX):
            stamp = line.removeprefix(STAMP_PREFIX).strip()
            continue
        match = PIN.match(line)
        if match:
            current = Pin(normalize(match.group(1)), match.group(2))
            pins[current.name] = current
            in_via = False
            continue
        stripped = line.strip()
        if current is None or not stripped.startswith("#"):
            in_via = False
            continue
        comment = stripped.removeprefix("#").strip()
        if comment.startswith("via"):
            inline = comment.removeprefix("via").strip()
            if inline:
                current.via.append(inline)
            in_via = not inline
        elif in_via and comment:
            current.via.append(comment)
    conflicted = any(line.startswith(("<<<<<<<", ">>>>>>>")) or line == "=======" for line in text.splitlines())
    return Lock(label or str(path), pins, stamp, conflicted)


def problems(root: Path) -> list[str]:
    """Everything that makes the locks disagree with pyproject.toml or with each other."""
    found: list[str] = []
    locks: dict[str, Lock] = {}
    for spec in specs(root / "pyproject.toml"):
        lock_path = root / spec.path
        if not lock_path.exists():
            found.append(f"{spec.path} does not exist ({spec.purpose})")
            continue
        lock = read_lock(lock_path, spec.path)
        if lock.conflicted:
            found.append(f"{spec.path} has merge conflict markers: take either side (git checkout --theirs {spec.path})")
            continue
        locks[spec.name] = lock
        found.extend(_disagreements(spec, lock))
    found.extend(_cross_lock_disagreements(locks))
    return found


def _disagreements(spec: LockSpec, lock: Lock) -> list[str]:
    found: list[str] = []
    wanted = spec.direct_names()
    for name in sorted(wanted - lock.pins.keys()):
        found.append(f"pyproject.toml asks for {name} ({spec.purpose}); {spec.path} does not pin it")
    direct = {name for name, pin in lock.pins.items() if not pin.via or any(via in ROOT_MARKERS for via in pin.via)}
    for name in sorted(direct - wanted):
        found.append(f"{spec.path} pins {name} as a direct requirement; pyproject.toml does not ask for it ({spec.purpose})")
    for name in sorted(_unreachable(lock, direct & wanted) - direct):
        found.append(f"{spec.path} pins {name}, which nothing that pyproject.toml asks for needs")
    if not found and lock.stamp != spec.digest():
        found.append(
            f"pyproject.toml's requirements for {spec.path} ({spec.purpose}) changed since it was locked "
            "(a version range, an extra or a marker)"
        )
    return found


def _unreachable(lock: Lock, roots: set[str]) -> set[str]:
    reached = set(roots)
    changed = True
    while changed:
        changed = False
        for name, pin in lock.pins.items():
            if name not in reached and any(normalize(via) in reached for via in pin.via):
                reached.add(name)
                changed = True
    return set(lock.pins) - reached


def _cross_lock_disagreements(locks: dict[str, Lock]) -> list[str]:
    """The suite must run what the image runs, and the tools must not fight the dependencies."""
    found: list[str] = []
    for lower, upper in (("runtime", "dev"), ("build", "runtime"), ("build", "dev")):
        if lower not in locks or upper not in locks:
            continue
        for name, pin in sorted(locks[lower].pins.items()):
            other = locks[upper].pins.get(name)
            if lower == "runtime" and other is None:
                found.append(f"{locks[upper].path} does not pin {name}, which {locks[lower].path} pins ({pin.version})")
            elif other is not None and other.version != pin.version:
                found.append(f"{locks[upper].path} pins {name}=={other.version} but {locks[lower].path} pins {name}=={pin.version}")
    return found


def report(found: Iterable[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in found)
    return (
        "requirements/ is out of date with pyproject.toml:\n"
        f"{lines}\n"
        f"Run {RELOCK} (it keeps every other pin, adds or drops what pyproject.toml changed, and\n"
        "rewrites requirements/sbom.cdx.json), then commit pyproject.toml and requirements/ together.\n"
        "To move one dependency on purpose: ./scripts/lock --upgrade-package NAME (CONTRIBUTING.md)."
    )


def take_ours(path: Path) -> None:
    """A lock left with merge conflict markers, as our side: uv re-locks from it, keeping its pins."""
    if not path.exists() or not read_lock(path).conflicted:
        return
    kept: list[str] = []
    side = "both"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("<<<<<<<"):
            side = "ours"
        elif line.startswith("|||||||") and side == "ours":
            side = "base"
        elif line == "=======" and side in ("ours", "base"):
            side = "theirs"
        elif line.startswith(">>>>>>>") and side == "theirs":
            side = "both"
        elif side in ("both", "ours"):
            kept.append(line)
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"{path}: merge conflict resolved to our side; re-locking from it", file=sys.stderr)


def stamp(root: Path) -> None:
    """Put each lock's inputs digest and purpose on top of what uv wrote."""
    for spec in specs(root / "pyproject.toml"):
        path = root / spec.path
        body = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith(("# inputs-sha256:", "# opsbot:"))]
        header = [
            f"# opsbot: {spec.purpose}; CPython 3.11 on linux x86_64, every file hash-pinned.",
            f"# opsbot: made from pyproject.toml by {RELOCK}; do not edit by hand.",
            f"{STAMP_PREFIX}{spec.digest()}",
        ]
        path.write_text("\n".join(header + body) + "\n", encoding="utf-8")


def uv_lines(root: Path) -> str:
    """uv's own entry in requirements/dev.lock, hashes included, as a requirements file."""
    path = root / "requirements" / "dev.lock"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: install uv into .venv by hand once (pip install uv), then run {RELOCK}")
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.startswith("uv=="):
            block = [line]
            for following in lines[index + 1 :]:
                if not following.strip().startswith("--hash="):
                    break
                block.append(following)
            return "\n".join(block).rstrip(" \\") + "\n"
    raise SystemExit(f"{path} pins no uv: keep uv in the dev extra, install it into .venv by hand once, run {RELOCK}")


def prune(root: Path, frozen: str) -> list[str]:
    """Distributions in a venv (``pip freeze --all`` output) that no lock pins."""
    locked: set[str] = {"opsbot"}
    for spec in specs(root / "pyproject.toml"):
        if spec.name in VENV_LOCKS:
            locked |= read_lock(root / spec.path).pins.keys()
    extra = []
    for line in frozen.splitlines():
        match = PIN.match(line)
        if match and normalize(match.group(1)) not in locked:
            extra.append(match.group(1))
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["check", "inputs", "take-ours", "stamp", "uv-lines", "prune"])
    parser.add_argument("lock", nargs="?", choices=["build", "runtime", "dev", "sbom"], help="for inputs: which lock")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    arguments = parser.parse_args(argv)
    root: Path = arguments.root
    if arguments.command == "check":
        found = problems(root)
        if found:
            print(report(found), file=sys.stderr)
            return 1
        return 0
    if arguments.command == "inputs":
        chosen = next(spec for spec in specs(root / "pyproject.toml") if spec.name == arguments.lock)
        print("\n".join(chosen.requirements))
    elif arguments.command == "take-ours":
        for spec in specs(root / "pyproject.toml"):
            take_ours(root / spec.path)
    elif arguments.command == "stamp":
        stamp(root)
    elif arguments.command == "uv-lines":
        sys.stdout.write(uv_lines(root))
    else:
        print("\n".join(prune(root, sys.stdin.read())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
