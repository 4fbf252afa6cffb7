"""Mutation testing of opsbot's critical core: mutmut, one module at a time, each with its own tests.

Called by ``./scripts/mutation`` (docs/testing.md says when and how). For each module it lays out a
scratch project in ``.mutation/<module>/`` (links to the checkout plus a ``setup.cfg`` holding the
mutmut settings), runs ``mutmut run`` there, then prints the score and every surviving mutant that
``tests/mutation-equivalents.toml`` does not explain. The exit status is 1 when a module scores
below ``THRESHOLD`` or leaves an unexplained survivor.

Why a scratch project per module rather than one ``[tool.mutmut]`` table: mutmut keeps its state
(which tests reach which function, each mutant's verdict) in one ``mutants/`` folder and throws it
all away when the test selection changes, so modules with different tests cannot share one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRATCH = REPO / ".mutation"
EQUIVALENTS = REPO / "tests" / "mutation-equivalents.toml"
THRESHOLD = 0.90

# What the mutated copy needs besides the code: tests read the example config and runbooks, the
# store migrates with the Alembic scripts, integration tests start the fakes.
LINKED = ["bot", "commands", "fakes", "migrations", "tests", "runbooks", "opsbot.example.yaml", "alembic.ini", "pyproject.toml"]
ALSO_COPY = ["fakes", "migrations", "runbooks", "opsbot.example.yaml", "alembic.ini"]


@dataclass(frozen=True)
class Target:
    """A critical module and the tests that are meant to catch its bugs (kept narrow: a run is minutes)."""

    source: str
    tests: tuple[str, ...]


# In the order docs/testing.md lists them. The tests are the files written for the module; mutmut
# then runs, for each mutant, only those of them that reached the mutated function.
TARGETS: dict[str, Target] = {
    "approvals": Target(
        "bot/requests/approvals.py", ("tests/integration/test_approvals_sql.py", "tests/integration/test_approval_decisions.py")
    ),
    "policy": Target("bot/requests/policy.py", ("tests/unit/test_policy.py",)),
    "requests": Target(
        "bot/store/requests.py",
        (
            "tests/integration/test_request_store.py",
            "tests/integration/test_approval_decisions.py",
            "tests/integration/test_target_locks.py",
        ),
    ),
    "locks": Target("bot/store/locks.py", ("tests/integration/test_target_locks.py",)),
    "replays": Target("bot/store/replays.py", ("tests/integration/test_replay_sql.py",)),
    "slots": Target("bot/store/slots.py", ("tests/integration/test_slot_store.py",)),
    "audit-store": Target(
        "bot/store/audit.py",
        ("tests/integration/test_audit_sql.py", "tests/integration/test_audit_anchors.py", "tests/unit/test_audit_chain.py"),
    ),
    "audit-chain": Target(
        "bot/audit/chain.py",
        ("tests/unit/test_audit_chain.py", "tests/integration/test_audit_sql.py", "tests/integration/test_audit_anchors.py"),
    ),
    "rollout": Target("bot/backends/kubernetes/rollout.py", ("tests/unit/test_kube_rollout.py",)),
    "signatures": Target("bot/slack/signatures.py", ("tests/unit/test_signature_refusals.py",)),
    "claims": Target("bot/runs/claims.py", ("tests/integration/test_target_locks.py",)),
    "grammar": Target("bot/catalog/grammar.py", ("tests/unit/test_grammar.py",)),
    "parser": Target(
        "commands/parser.py",
        (
            "tests/unit/test_grammar.py",
            "tests/unit/test_fuzz_parser_injection.py",
            "tests/unit/test_forms.py",
            "tests/integration/test_can_i.py",
            "tests/unit/test_parser_refusals.py",
        ),
    ),
}

KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # failed tests, pytest internal error, timeouts, type check
SURVIVED = {0}
NO_TESTS = {5, 33}


@dataclass(frozen=True)
class Equivalent:
    """A survivor that cannot change behaviour, found by what it changes (mutant numbers shift when code moves)."""

    module: str
    function: str
    change: str
    reason: str


@dataclass
class Score:
    module: str
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    unexplained: int = 0

    @property
    def value(self) -> float:
        counted = self.total - self.equivalent
        return 1.0 if counted == 0 else self.killed / counted

    def line(self) -> str:
        return (
            f"{self.module:<12} {self.value:6.1%}  killed {self.killed}/{self.total - self.equivalent}"
            f"  (mutants {self.total}, equivalent {self.equivalent}, unexplained survivors {self.unexplained})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="./scripts/mutation", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"any of: {', '.join(TARGETS)} (default: all, in that order)")
    parser.add_argument("--list", action="store_true", help="print each module with its source and tests, and exit")
    parser.add_argument("--children", type=int, default=1, help="mutants tested at once (default 1: the machine is shared)")
    parser.add_argument("--report", action="store_true", help="print the last run's results again without running anything")
    parser.add_argument(
        "--with-postgresql", action="store_true", help="judge mutants on PostgreSQL too (twice the time; by default SQLite only)"
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="test only the last run's survivors again, against the tests as they are now (after adding one)",
    )
    args = parser.parse_args()
    unknown = [name for name in args.modules if name not in TARGETS]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name:<12} {target.source:<40} {' '.join(target.tests)}")
        return 0
    equivalents = _load_equivalents()
    scores = []
    for name in args.modules or list(TARGETS):
        if args.survivors:
            _rerun_survivors(name, TARGETS[name], children=args.children)
        elif not args.report:
            _run(name, TARGETS[name], children=args.children, postgresql=args.with_postgresql)
        scores.append(_report(name, TARGETS[name], equivalents.get(name, [])))
    print(f"\n== mutation scores ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, threshold {THRESHOLD:.0%})")
    for score in scores:
        print(score.line())
    failing = [score.module for score in scores if score.value < THRESHOLD or score.unexplained]
    if failing:
        print(f"below {THRESHOLD:.0%} or with unexplained survivors: {', '.join(failing)}")
        return 1
    return 0


def _run(name: str, target: Target, *, children: int, postgresql: bool) -> None:
    """A fresh scratch project for the module, then ``mutmut run`` in it (a fresh run: no verdict is reused)."""
    work = SCRATCH / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for entry in LINKED:
        (work / entry).symlink_to(REPO / entry)
    (work / "setup.cfg").write_text(_settings(target, postgresql=postgresql))
    print(f"== {name}: mutating {target.source}, tests {' '.join(target.tests)}", flush=True)
    _mutmut_run(name, work, children=children, mutants=[])


def _mutmut_run(name: str, work: Path, *, children: int, mutants: list[str]) -> None:
    env = dict(os.environ)
    env.setdefault("OPSBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    log = work / "mutmut.log"  # mutmut redraws a progress line many times a second: kept out of the terminal
    with log.open("w") as output:
        command = [_mutmut(), "run", "--max-children", str(children), *mutants]
        finished = subprocess.run(command, cwd=work, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)  # noqa: S603 - our venv's mutmut
    if finished.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-40:]
        print("\n".join(tail))
        print(f"== {name}: mutmut stopped with exit status {finished.returncode} (whole output: {log})")


def _rerun_survivors(name: str, target: Target, *, children: int) -> None:
    """mutmut tests a named mutant again even when it has a verdict; the tests are copied afresh first."""
    meta = SCRATCH / name / "mutants" / f"{target.source}.meta"
    if not meta.exists():
        print(f"== {name}: no earlier run to take the survivors from; running the whole module")
        _run(name, target, children=children, postgresql=False)
        return
    verdicts: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    survivors = [key for key, code in verdicts.items() if code not in KILLED]
    print(f"== {name}: testing {len(survivors)} survivors again", flush=True)
    if survivors:
        _mutmut_run(name, SCRATCH / name, children=children, mutants=survivors)


def _settings(target: Target, *, postgresql: bool) -> str:
    def listed(values: list[str] | tuple[str, ...]) -> str:
        return "".join(f"\n    {value}" for value in values)

    return (
        "# Written by scripts/mutation.py for this run; edit TARGETS there instead.\n"
        "[mutmut]\n"
        f"source_paths ={listed(['bot', 'commands'])}\n"
        f"only_mutate ={listed([target.source])}\n"
        f"pytest_add_cli_args_test_selection ={listed(target.tests)}\n"
        f"pytest_add_cli_args ={listed(_pytest_args(postgresql=postgresql))}\n"
        f"also_copy ={listed(ALSO_COPY)}\n"
    )


def _pytest_args(*, postgresql: bool) -> list[str]:
    """A mutant is Python code: one database judges it. The database-parametrised tests' PostgreSQL cases
    (and the PostgreSQL-only tests) are left out unless asked for; ``./scripts/test`` runs both."""
    return ["-p", "no:cacheprovider"] + ([] if postgresql else ["-k", "not postgresql"])


def _report(name: str, target: Target, equivalents: list[Equivalent]) -> Score:
    """Read mutmut's verdicts for the module; print each survivor that no listed equivalent explains."""
    work = SCRATCH / name
    meta = work / "mutants" / f"{target.source}.meta"
    score = Score(name)
    if not meta.exists():
        print(f"== {name}: no results (mutmut did not finish; see its output above)")
        score.unexplained = 1
        return score
    verdicts: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    survivors = []
    for key, code in sorted(verdicts.items()):
        score.total += 1
        if code in KILLED:
            score.killed += 1
        else:
            survivors.append((key, code))
    for key, code in survivors:
        diff = _diff(work, target.source, key)
        function = key.rsplit("__mutmut_", 1)[0]
        change = _changed_lines(diff)
        if any(item.function == function and _same(item.change, change) for item in equivalents):
            score.equivalent += 1
            continue
        score.unexplained += 1
        status = "survived" if code in SURVIVED else "no tests reach it" if code in NO_TESTS else f"exit code {code}"
        print(f"\n-- {key}: {status}\n{_changed_lines(diff)}")
    return score


def _diff(work: Path, source: str, key: str) -> str:
    """mutmut's own diff of one mutant, read in this process (a ``mutmut show`` per survivor costs seconds each)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = Path.cwd()
    os.chdir(work)  # mutmut reads mutants/ relative to the project it ran in
    try:
        return str(get_diff_for_mutant(key, path=source))
    finally:
        os.chdir(here)


def _changed_lines(diff: str) -> str:
    """The diff's removed and added lines (``-`` / ``+`` and the code), without the file names and context."""
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return "\n".join(f"{line[0]} {line[1:].strip()}" for line in changed)


def _same(listed: str, written: str) -> bool:
    return " ".join(listed.split()) == " ".join(written.split())


def _load_equivalents() -> dict[str, list[Equivalent]]:
    data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    found: dict[str, list[Equivalent]] = {}
    for item in data.get("equivalent", []):
        entry = Equivalent(item["module"], item["function"], item["change"], item["reason"])
        found.setdefault(entry.module, []).append(entry)
    return found


def _mutmut() -> str:
    found = shutil.which("mutmut", path=str(Path(sys.executable).parent))
    if found is None:
        sys.exit("mutmut is not installed in this venv: ./scripts/venv installs the dev dependencies (pyproject.toml, dev extra)")
    return found


if __name__ == "__main__":
    sys.exit(main())
