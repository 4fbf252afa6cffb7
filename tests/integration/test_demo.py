"""`opsbot demo` driven by a script on stdin, as a newcomer would drive it by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

STORY = """\
/ops deploy checkout 1.4.2 to production
/click 1
/as bob
/click 1
/as alice
/ops deploy checkout 1.4.3-broken to production
/as carol
/click 4
/ops deploy billing 2.0.0 to production
/as bob
/click 7
/ops history
/as alice
/ops deploy storefront 2.1.0
/as bob
/click 10
/as alice
/ops can-i deploy payments 2.0.0 to production
/ops deploy payments 2.0.0 to production
/as bob
/ops can-i deploy payments 2.0.0 to production
/ops deploy payments 2.0.0 to production
/ops insights checkout
/ops insights
"""


@pytest.fixture(scope="module")
def transcript() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "demo", "--tick-seconds", "0.05"],
        input=STORY,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_requester_cannot_approve_their_own_deploy(transcript: str) -> None:
    assert "(only you) You asked for #1, so you cannot approve it: someone else from @platform-oncall must." in transcript


def test_approved_deploy_rolls_out(transcript: str) -> None:
    assert "✅ #1 deploy checkout 1.4.2 in production" in transcript
    assert "Result: rolled out: 3/3 updated, 3 available, revision 2" in transcript


def test_broken_image_fails_and_is_rolled_back_to_the_previous_image(transcript: str) -> None:
    assert "↩️ #2 deploy checkout 1.4.3-broken in production" in transcript
    assert "has timed out progressing" in transcript
    assert (
        "restored deployment shop/checkout in cluster demo-production to revision 2 (image registry.example.com/shop/checkout:1.4.2)"
        in transcript
    )
    assert "[#C0INCIDENT] ↩️ deploy checkout in production (#2, asked by @alice) failed and was rolled back" in transcript


def test_ecs_deploy_goes_through_the_same_approval_story(transcript: str) -> None:
    assert "task definition `billing:1` → `billing:2`" in transcript
    assert "✅ #3 deploy billing 2.0.0 in production" in transcript


def test_history_and_a_verified_audit_chain_at_the_end(transcript: str) -> None:
    assert "✅ #3 deploy billing 2.0.0 in production — succeeded; asked by @carol, approved by @bob" in transcript
    assert "↩️ #2 deploy checkout 1.4.3-broken in production — failed and was rolled back" in transcript
    assert transcript.rstrip().splitlines()[-1].endswith("chain intact.")


def test_the_cluster_refuses_a_developers_payments_deploy_at_plan_time_and_can_i_says_so_first(transcript: str) -> None:
    assert "Cluster demo-production, as you (slack:U0ALICE, groups opsbot:developers):" in transcript
    assert "❌ `patch deployments payments in payments`" in transcript
    assert (
        "Could not plan `deploy` for payments/production: Kubernetes says you (slack:U0ALICE, groups opsbot:developers) "
        "may not patch deployments in namespace payments (deployment payments/payments in cluster demo-production)." in transcript
    )
    assert 'User "slack:U0ALICE" cannot patch resource "deployments" in API group "apps" in the namespace "payments"' in transcript


def test_on_call_may_and_the_approval_message_says_it_runs_as_the_requester(transcript: str) -> None:
    assert '✅ `patch deployments payments in payments` — RBAC: allowed by ClusterRoleBinding "oncall-operate"' in transcript
    assert "🕒 #5 deploy payments 2.0.0 in production" in transcript
    assert "approving lets it run as the requester (slack:U0BOB), approvers are recorded" in transcript


def test_a_gitops_deploy_is_a_diff_a_commit_and_a_flux_reconcile(transcript: str) -> None:
    assert '+    newTag: "2.1.0"  # the running version' in transcript
    assert "✅ #4 deploy storefront 2.1.0 in production" in transcript
    assert "Flux Kustomization flux-system/storefront-production in cluster demo-production synced" in transcript


def test_insights_show_the_seeded_weeks_with_a_chart_per_service(transcript: str) -> None:
    assert "[#C0OPS] Delivery insights · checkout · last 28 days" in transcript
    assert "Change failure rate:" in transcript and "compared with the 28 days from" in transcript
    assert "[#C0OPS file] checkout-deploys-28d.png" in transcript
    assert "[#C0OPS] Delivery insights · all services · last 28 days" in transcript
    assert "`checkout/production`" in transcript  # the per-target lines, with their sparklines
