"""The terminal front end as a newcomer meets it: `opsbot demo` and `opsbot shell` driven by a script.

The config here is a team's own (people zed and yan, env `live`), so nothing may come from the
example config's names: the default user, the banner's suggestions, who `/as` accepts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG, REPO, RUNBOOKS
from tests.integration.serve_support import run_cli

SCRIPT = """\
/as nobody
/ops deploy webshop 1.4.2 in staging
/ops lock webshop in staging for 1h --reason db migration
/ops show #1
"""


def team_config(directory: Path, kube_url: str | None = None) -> Path:
    text = EXAMPLE_CONFIG.read_text().replace("checkout", "webshop")
    for old, new in (("U0ALICE: alice", "U0ZED: zed"), ("U0ALICE", "U0ZED"), ("U0BOB: bob", "U0YAN: yan"), ("U0BOB", "U0YAN")):
        text = text.replace(old, new)
    config = yaml.safe_load(text)
    if kube_url is not None:
        kubeconfig = directory / "kubeconfig"
        contexts = ("demo-staging", "demo-production")
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": name, "cluster": {"server": kube_url}} for name in contexts],
                    "users": [{"name": "opsbot", "user": {"token": "t"}}],
                    "contexts": [{"name": name, "context": {"cluster": name, "user": "opsbot"}} for name in contexts],
                    "current-context": contexts[0],
                }
            )
        )
        config["kubernetes"]["kubeconfig"] = str(kubeconfig)
    path = directory / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(RUNBOOKS, directory / "runbooks", dirs_exist_ok=True)
    return path


@pytest.fixture(scope="module")
def demo_transcript(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("team")
    config = team_config(directory)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli.main",
            "demo",
            "--config",
            str(config),
            "--runbooks",
            str(directory / "runbooks"),
            "--tick-seconds",
            "0.1",
        ],
        input=SCRIPT,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_default_user_and_banner_come_from_the_config(demo_transcript: str) -> None:
    assert "You are zed in #C0OPS. Try:" in demo_transcript
    assert "  /ops deploy webshop 1.4.2 to production   (needs an approval from @platform-oncall)\n" in demo_transcript
    assert "/as yan" in demo_transcript
    assert "alice" not in demo_transcript and "checkout" not in demo_transcript


def test_as_an_unknown_user_is_refused(demo_transcript: str) -> None:
    assert "The config does not know the user 'nobody'; known users: zed, yan, carol, dave." in demo_transcript
    assert "nobody@#C0OPS>" not in demo_transcript


def test_deploy_accepts_in_for_the_env(demo_transcript: str) -> None:
    assert "#1 deploy webshop 1.4.2 in staging" in demo_transcript
    assert "Did not understand 'in'" not in demo_transcript


def test_a_value_with_spaces_suggests_quotes(demo_transcript: str) -> None:
    assert 'A value with spaces needs quotes: --reason "db migration".' in demo_transcript


def test_show_accepts_the_hash_label(demo_transcript: str) -> None:
    shown = demo_transcript.split("zed@#C0OPS> /ops show #1", 1)[1]
    assert "#1 deploy webshop 1.4.2 in staging" in shown
    assert "must be a whole number" not in shown


def test_shell_takes_config_and_keeps_library_retries_out_of_the_chat(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = team_config(tmp_path, kube_url=f"http://127.0.0.1:{closed}")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPSBOT_", "SLACK_"))}
    env["OPSBOT_DATABASE_URL"] = f"sqlite:///{tmp_path}/opsbot.db"
    assert run_cli(env, "db", "upgrade").returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "shell", "--config", str(config), "--runbooks", str(tmp_path / "runbooks")],
        input="/ops status webshop in staging\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "You are zed in #C0OPS." in result.stdout
    assert "webshop" in result.stdout
    assert "urllib3" not in result.stderr and "Retrying" not in result.stderr, result.stderr


def test_digest_without_print_says_what_it_needs() -> None:
    result = run_cli(dict(os.environ), "digest")
    assert result.returncode == 1
    assert result.stderr.startswith("error: opsbot digest needs --print: it shows a digest here and posts nothing.")
    assert "Usage:" not in result.stderr
