"""The health watch: one incident per degradation, its buttons, its recovery; failed deploys in the incident channel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit.events import Actor, EventType
from bot.catalog.config import Channels, Environment, HealthWatch, KubernetesTarget, OpsbotConfig, Service
from bot.messages import ButtonAction, Message, MessageRef
from bot.requests.invocation import Click
from bot.requests.views import button_value
from bot.service_health import ServiceHealth
from bot.store.database import Database
from bot.store.models import AuditEventRow, IncidentRow
from bot.store.states import RequestState
from bot.watch.incidents import Degradation, IncidentState, IncidentWatch, Step, decide, degradation
from fakes.kubernetes import FakeKubernetesServer
from tests.doubles import FakeClock, RecordingNotifier, RecordingReplier
from tests.integration.test_digest import ALICE, BOB, REGISTRY, Fleet, make_fleet, wait_until

CAROL = Actor("U0CAROL", "carol")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
THRESHOLD = 5
CRASH_REASON = "pod p is in CrashLoopBackOff (container c)"


# -- pure decisions -------------------------------------------------------------------------


def snapshot(state: str, *, desired: int = 3, available: int = 3, restarts: int = 0, reasons: tuple[str, ...] = ()) -> ServiceHealth:
    return ServiceHealth(
        service="search", env="production", target="t", state=state, desired=desired, ready=available, available=available,  # type: ignore[arg-type]
        restarts=restarts, reasons=reasons,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (snapshot("healthy", restarts=40), None),
        (snapshot("unknown", reasons=("cluster unreachable",)), None),
        (snapshot("progressing", available=2), None),
        (snapshot("failed", reasons=("ProgressDeadlineExceeded: timed out",)), Degradation(("ProgressDeadlineExceeded: timed out",), True)),
        (snapshot("degraded", reasons=(CRASH_REASON,)), Degradation((CRASH_REASON,), True)),
        (snapshot("progressing", restarts=5), Degradation(("5 restarts (threshold 5)",), True)),
        (snapshot("degraded", available=1, reasons=("1/3 replicas available",)), Degradation(("1/3 replicas available",), False)),
        (snapshot("degraded", available=1), Degradation(("1/3 ready, fewer than desired",), False)),
    ],
)
def test_what_counts_as_degraded(health: ServiceHealth, expected: Degradation | None) -> None:
    assert degradation(health, restart_threshold=THRESHOLD) == expected


SHORT = Degradation(("1/3 replicas available",), immediate=False)
CRASH = Degradation(("CrashLoopBackOff",), immediate=True)
AFTER = timedelta(minutes=3)


@pytest.mark.parametrize(
    ("health", "found", "state", "seen_ago", "step"),
    [
        (snapshot("degraded"), SHORT, None, None, Step.WATCH),
        (snapshot("degraded"), SHORT, IncidentState.WATCHING, timedelta(minutes=2), Step.NOTHING),
        (snapshot("degraded"), SHORT, IncidentState.WATCHING, timedelta(minutes=3), Step.OPEN),
        (snapshot("degraded"), CRASH, None, None, Step.OPEN),
        (snapshot("degraded"), SHORT, IncidentState.OPEN, timedelta(hours=1), Step.NOTHING),
        (snapshot("degraded"), SHORT, IncidentState.ACKNOWLEDGED, timedelta(hours=1), Step.NOTHING),
        (snapshot("healthy"), None, IncidentState.WATCHING, timedelta(minutes=1), Step.FORGET),
        (snapshot("healthy"), None, IncidentState.OPEN, timedelta(hours=1), Step.RESOLVE),
        (snapshot("healthy"), None, IncidentState.ACKNOWLEDGED, timedelta(hours=1), Step.RESOLVE),
        (snapshot("progressing"), None, IncidentState.OPEN, timedelta(hours=1), Step.NOTHING),
        (snapshot("unknown"), None, IncidentState.OPEN, timedelta(hours=1), Step.NOTHING),
        (snapshot("healthy"), None, None, None, Step.NOTHING),
    ],
)
def test_next_step(
    health: ServiceHealth, found: Degradation | None, state: IncidentState | None, seen_ago: timedelta | None, step: Step
) -> None:
    first_seen = NOW - seen_ago if seen_ago is not None else None
    assert decide(health, found, state, first_seen, now=NOW, degraded_after=AFTER) == step


# -- the watch on SQL, with health given by the test ----------------------------------------


class Snapshots:
    """A health source the test sets by hand."""

    def __init__(self) -> None:
        self.current = snapshot("healthy")

    def __call__(self, items: list[tuple[object, object]]) -> list[ServiceHealth]:
        return [self.current for _ in items]


@pytest.fixture
def watch_parts(database: Database) -> tuple[IncidentWatch, Snapshots, RecordingNotifier, FakeClock]:
    config = OpsbotConfig(
        services={
            "search": Service(environments={"production": Environment(kubernetes=KubernetesTarget(namespace="shop", deployment="search"))})
        },
        channels=Channels(incident="C0INCIDENT"),
        health=HealthWatch(degraded_after=timedelta(minutes=3), restart_threshold=THRESHOLD),
    )
    snapshots, notifier, clock = Snapshots(), RecordingNotifier(), FakeClock(NOW)
    watch = IncidentWatch(config=config, database=database, notifier=notifier, clock=clock, health=snapshots)  # type: ignore[arg-type]
    return watch, snapshots, notifier, clock


def incidents(database: Database) -> list[IncidentRow]:
    with database.reading() as session:
        return list(session.scalars(select(IncidentRow).order_by(IncidentRow.id)))


def audit_events(database: Database) -> list[str]:
    with database.reading() as session:
        return list(session.scalars(select(AuditEventRow.event).order_by(AuditEventRow.seq)))


def test_short_of_replicas_opens_one_incident_only_after_degraded_after(
    watch_parts: tuple[IncidentWatch, Snapshots, RecordingNotifier, FakeClock], database: Database
) -> None:
    watch, snapshots, notifier, clock = watch_parts
    snapshots.current = snapshot("degraded", available=1, reasons=("1/3 replicas available",))

    for _ in range(3):  # 0, 1, 2 minutes
        watch.check()
        clock.advance(timedelta(minutes=1))
    assert notifier.posts == [], "not an incident yet: below desired for less than degraded_after"
    for _ in range(5):  # 3 .. 7 minutes
        watch.check()
        clock.advance(timedelta(minutes=1))

    [posted] = notifier.posts
    assert posted.channel == "C0INCIDENT"
    assert posted.message.title == "🔥 search/production is degraded"
    assert [button.action for button in posted.message.buttons] == [ButtonAction.INCIDENT_ROLLBACK, ButtonAction.INCIDENT_ACK]
    [row] = incidents(database)
    assert row.state == IncidentState.OPEN and row.first_seen_at == NOW and row.opened_at == NOW + timedelta(minutes=3)

    snapshots.current = snapshot("healthy")
    report = watch.check()
    watch.check()

    assert report.resolved == ["search/production"]
    follow_up = notifier.posts[1]
    assert follow_up.thread == posted.ref and follow_up.channel == "C0INCIDENT"
    assert follow_up.message.text.startswith("✅ search/production has recovered (3/3 ready).")
    assert notifier.current[posted.ref].title == "✅ search/production recovered"
    assert notifier.current[posted.ref].buttons == ()
    assert len(notifier.posts) == 2
    assert audit_events(database) == ["incident_opened", "incident_resolved"]
    [row] = incidents(database)
    assert row.state == IncidentState.RESOLVED and row.open_key is None


def test_a_blip_shorter_than_degraded_after_is_forgotten(
    watch_parts: tuple[IncidentWatch, Snapshots, RecordingNotifier, FakeClock], database: Database
) -> None:
    watch, snapshots, notifier, clock = watch_parts
    snapshots.current = snapshot("degraded", available=2)
    watch.check()
    clock.advance(timedelta(minutes=2))
    snapshots.current = snapshot("healthy")
    watch.check()

    assert notifier.posts == [] and incidents(database) == [] and audit_events(database) == []


def test_a_new_degradation_after_recovery_is_a_new_incident(
    watch_parts: tuple[IncidentWatch, Snapshots, RecordingNotifier, FakeClock], database: Database
) -> None:
    watch, snapshots, notifier, _clock = watch_parts
    for state in ("failed", "healthy", "failed"):
        snapshots.current = snapshot(state, reasons=("ProgressDeadlineExceeded",) if state == "failed" else ())
        watch.check()

    assert [row.state for row in incidents(database)] == [IncidentState.RESOLVED, IncidentState.OPEN]
    assert [post.message.title for post in notifier.posts if post.thread is None] == ["🔥 search/production is degraded"] * 2


# -- end to end on the fake Kubernetes API server --------------------------------------------


@pytest.fixture
def ticking_server() -> Iterator[FakeKubernetesServer]:
    server = FakeKubernetesServer(auto_tick=True, tick_seconds=0.01).start()
    yield server
    server.stop()


@pytest.fixture
def fleet(tmp_path: Path, sqlite_url: str, ticking_server: FakeKubernetesServer) -> Iterator[Fleet]:
    yield from make_fleet(tmp_path, sqlite_url, ticking_server)


def click(fleet: Fleet, actor: Actor, action: ButtonAction, value: str, on: MessageRef | None = None) -> RecordingReplier:
    reply = RecordingReplier()
    fleet.app.front_door.handle_click(Click(actor, "C0INCIDENT", action, value, on), reply)
    assert fleet.app.wait_idle(timeout=60)
    return reply


def incident_posts(fleet: Fleet) -> list[Message]:
    return [post.message for post in fleet.notifier.in_channel("C0INCIDENT") if (post.message.title or "").startswith("🔥 search")]


def test_broken_rollout_opens_one_incident_and_roll_back_goes_through_approval_to_recovery(fleet: Fleet) -> None:
    watch = fleet.app.incidents
    fleet.set_image("prod", "shop", "search", f"{REGISTRY}/search:2.1-broken")
    wait_until(lambda: fleet.health_of("search").state == "failed", "search to exceed its progress deadline")

    for _ in range(4):
        watch.check()
        fleet.clock.advance(timedelta(minutes=1))

    [opened] = incident_posts(fleet)
    assert opened.title == "🔥 search/production is degraded"
    assert any("ProgressDeadlineExceeded" in section for section in opened.sections)
    incident_id = opened.buttons[0].value
    [ref] = [post.ref for post in fleet.notifier.in_channel("C0INCIDENT") if post.message is opened]

    # Acknowledge: the message says who; a second click changes nothing.
    first_ack = click(fleet, CAROL, ButtonAction.INCIDENT_ACK, incident_id)
    second_ack = click(fleet, BOB, ButtonAction.INCIDENT_ACK, incident_id)
    assert not first_ack.messages
    assert second_ack.last == f"Incident #{incident_id} (search/production) was already acknowledged by carol."
    assert "Acknowledged by <@U0CAROL>" in fleet.notifier.current[ref].context
    assert [button.label for button in fleet.notifier.current[ref].buttons] == ["Roll back"]

    # Roll back: an ordinary rollback request for search in production, which needs an on-call approval.
    rolled = click(fleet, BOB, ButtonAction.INCIDENT_ROLLBACK, incident_id)
    assert not rolled.messages, rolled.last
    request = fleet.requests()[-1]
    assert (request.runbook, request.service, request.env, request.requester_id) == ("rollback", "search", "production", "U0BOB")
    assert request.state == RequestState.PENDING_APPROVAL and request.approvals_required == 1
    assert request.channel == "C0INCIDENT"

    approved = click(fleet, CAROL, ButtonAction.APPROVE, button_value(request), MessageRef.from_dict(request.message_ref))
    assert not approved.messages, approved.last
    assert fleet.requests()[-1].state == RequestState.SUCCEEDED
    wait_until(lambda: fleet.health_of("search").state == "healthy", "search to be healthy again")
    fleet.clock.advance(timedelta(minutes=1))
    watch.check()
    watch.check()

    [thread_reply] = [post for post in fleet.notifier.in_channel("C0INCIDENT") if post.thread == ref]
    assert thread_reply.message.text.startswith("✅ search/production has recovered (2/2 ready).")
    assert fleet.notifier.current[ref].title == "✅ search/production recovered"
    assert len(incident_posts(fleet)) == 1
    events = [e.event for e in fleet.audit(EventType.INCIDENT_OPENED) + fleet.audit(EventType.INCIDENT_ACKNOWLEDGED)
              + fleet.audit(EventType.INCIDENT_RESOLVED)]  # fmt: skip
    assert events == ["incident_opened", "incident_acknowledged", "incident_resolved"]


def test_roll_back_is_refused_by_the_policy_like_a_typed_command(fleet: Fleet) -> None:
    fleet.set_image("prod", "shop", "search", f"{REGISTRY}/search:2.1-broken")
    wait_until(lambda: fleet.health_of("search").state == "failed", "search to fail")
    fleet.app.incidents.check()
    [opened] = incident_posts(fleet)

    outsider = click(fleet, Actor("U0MALLORY", "mallory"), ButtonAction.INCIDENT_ROLLBACK, opened.buttons[0].value)

    assert outsider.last.startswith("Denied:")
    assert fleet.requests() == []
    assert [event.actor_id for event in fleet.audit(EventType.DENIED)] == ["U0MALLORY"]


def test_a_service_with_its_own_incident_channel_posts_there(fleet: Fleet) -> None:
    fleet.set_image("prod", "payments", "payments", f"{REGISTRY}/payments:7.2-broken")
    wait_until(lambda: fleet.health_of("payments").state == "failed", "payments to fail")

    fleet.app.incidents.check()

    assert [post.message.title for post in fleet.notifier.in_channel("C0PAYMENTS")] == ["🔥 payments/production is degraded"]
    assert list(fleet.notifier.in_channel("C0INCIDENT")) == []


def test_a_failed_deploy_is_announced_in_the_incident_channel(fleet: Fleet) -> None:
    reply = fleet.run(ALICE, "C0DEV", "deploy checkout 1.6.0-broken to staging")

    assert not reply.messages, reply.last
    request = fleet.requests()[-1]
    assert request.state == RequestState.ROLLED_BACK
    [announcement] = list(fleet.notifier.in_channel("C0INCIDENT"))
    assert announcement.message.text.startswith(
        f"↩️ deploy checkout in staging (#{request.id}, asked by <@U0ALICE>) failed and was rolled back"
    )
    assert fleet.health_of("checkout", "staging").version == f"{REGISTRY}/checkout:1.4.0"


# -- incidents Alertmanager opened (bot.api) ------------------------------------------------


ALERTS = Actor.client("alertmanager")


def fire(watch: IncidentWatch, fingerprint: str, reason: str) -> IncidentRow | None:
    return watch.alert_firing(fingerprint=fingerprint, service="search", env="production", reason=reason, starts_at=NOW, actor=ALERTS)


def resolve(watch: IncidentWatch, fingerprint: str, summary: str) -> bool:
    return watch.alert_resolved(fingerprint=fingerprint, service="search", env="production", summary=summary, actor=ALERTS)


def test_an_incident_an_alert_opened_is_left_to_the_alert_by_the_health_watch(
    watch_parts: tuple[IncidentWatch, Snapshots, RecordingNotifier, FakeClock], database: Database
) -> None:
    """The cluster can look healthy while users see errors: only the alerts' own resolution recovers it."""
    watch, snapshots, notifier, _clock = watch_parts
    opened = fire(watch, "f1", "HighErrorRate: 5xx above 5%")
    repeat = fire(watch, "f1", "HighErrorRate: 5xx above 5%")
    fire(watch, "f2", "HighLatency: p99 above 2 s")
    snapshots.current = snapshot("healthy")
    watch.check()

    assert opened is not None and repeat is None
    [posted] = notifier.posts
    assert notifier.current[posted.ref].sections[0] == "*Why:*\n• HighErrorRate: 5xx above 5%\n• HighLatency: p99 above 2 s"
    assert notifier.current[posted.ref].context[0] == f"Incident #{opened.id} · opened by Alertmanager"
    assert [row.state for row in incidents(database)] == [IncidentState.OPEN]

    assert not resolve(watch, "f1", "HighErrorRate"), "HighLatency still fires"
    assert resolve(watch, "f2", "HighLatency")
    assert not resolve(watch, "f2", "HighLatency"), "once"
    assert notifier.posts[-1].thread == posted.ref
    assert notifier.posts[-1].message.text.startswith("✅ search/production has recovered: Alertmanager resolved HighLatency.")
    assert audit_events(database) == ["incident_opened", "incident_updated", "incident_resolved"]
