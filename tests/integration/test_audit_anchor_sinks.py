"""Where anchors go: an S3 bucket under Object Lock (moto server, real wire), a Slack channel (the fake Web API), and when.

An anchor kept where the database's writers cannot rewrite it is the point: the bucket must
refuse to delete or overwrite an anchor's version, and ``opsbot audit verify --anchors s3://…``
must read every version (a forged anchor added on top hides nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from slack_sdk import WebClient
from sqlalchemy import text

from bot.audit.anchors import Anchor, parse_anchors
from bot.audit.events import AuditEvent, EventType
from bot.backends.aws.anchor_bucket import S3AnchorBucket
from bot.cli.main import main
from bot.serve.wiring import ANCHOR_JOB
from bot.slack.notifier import SlackNotifier
from bot.store import audit as audit_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.watch.anchoring import AuditAnchoring, SlackChannelSink
from fakes.slack import FakeSlackApi
from tests.doubles import FakeClock, make_touch_app
from tests.log_capture import captured_logs

REGION: Final = "eu-west-1"
BUCKET = "opsbot-audit-anchors"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def locked_bucket(moto_url: str) -> Iterator[str]:
    """A bucket created with Object Lock enabled (as an operator would), emptied of nothing: a fresh name per test."""
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    name = f"{BUCKET}-{datetime.now(UTC).strftime('%H%M%S%f')}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}, ObjectLockEnabledForBucket=True)
    yield name


def chain_of(database: Database, count: int, at: datetime) -> None:
    for index in range(count):
        with database.transaction() as session:
            audit_store.append_events(session, [AuditEvent(EventType.LOCKED, "U0REQ", "req", service=f"svc{index}")], at)


def test_anchors_in_a_locked_bucket_cannot_be_deleted_and_every_version_is_read(moto_url: str, locked_bucket: str) -> None:
    bucket = S3AnchorBucket(f"s3://{locked_bucket}/anchors", endpoint_url=moto_url, region=REGION, retention=timedelta(days=30))
    assert bucket.lock_problem() is None
    first = Anchor(seq=3, hash="a" * 64, at=datetime.now(UTC))
    bucket.publish(first)
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    [version] = s3.list_object_versions(Bucket=locked_bucket, Prefix="anchors/")["Versions"]

    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=locked_bucket, Key=version["Key"], VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"

    s3.put_object(Bucket=locked_bucket, Key=version["Key"], Body=Anchor(seq=3, hash="b" * 64, at=first.at).as_json().encode())
    anchors = bucket.read_anchors()
    assert sorted(anchor.hash[0] for anchor in anchors) == ["a", "b"], "the overwritten version is still read"


def test_a_bucket_without_object_lock_is_named(moto_url: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    s3.create_bucket(Bucket="plain-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})

    problem = S3AnchorBucket("s3://plain-bucket/", endpoint_url=moto_url, region=REGION).lock_problem()

    assert problem is not None
    assert "s3://plain-bucket/" in problem


def test_verify_reads_the_bucket_and_finds_a_truncation(moto_url: str, locked_bucket: str, database_url: str) -> None:
    database = Database(database_url)
    upgrade(database)
    try:
        chain_of(database, 5, T0)
        bucket = S3AnchorBucket(f"s3://{locked_bucket}/prod/", endpoint_url=moto_url, region=REGION)
        AuditAnchoring(database=database, sinks=[bucket], clock=lambda: T0 + timedelta(minutes=10)).publish("scheduled")
        with database.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_events WHERE seq > 2"))
            connection.execute(text("UPDATE audit_head SET seq = 2, last_hash = (SELECT hash FROM audit_events WHERE seq = 2)"))
    finally:
        database.dispose()
    env = {"OPSBOT_DATABASE_URL": database_url, "OPSBOT_AUDIT_ANCHOR_S3_ENDPOINT": moto_url, "OPSBOT_AUDIT_ANCHOR_S3_REGION": REGION}

    result = CliRunner().invoke(main, ["audit", "verify", "--anchors", f"s3://{locked_bucket}/prod/"], env=env)

    assert result.exit_code == 1, result.output
    assert "saw the chain end at seq 5, the database ends at seq 2" in result.output
    assert f"s3://{locked_bucket}/prod/000000000005-" in result.output


def test_an_anchor_posted_to_slack_can_be_pasted_back_as_an_anchor(slack: FakeSlackApi, database: Database) -> None:
    chain_of(database, 2, T0)
    sink = SlackChannelSink(SlackNotifier(WebClient(token=slack.token, base_url=slack.api_url)), "C0OPS")

    anchor = AuditAnchoring(database=database, sinks=[sink], clock=lambda: T0).publish("scheduled")

    assert anchor is not None
    [posted] = slack.messages("C0OPS")
    [pasted] = parse_anchors([posted.text], source="slack")
    assert (pasted.seq, pasted.hash, pasted.at) == (2, anchor.hash, T0)


def test_the_core_anchors_on_its_schedule_and_when_it_stops(tmp_path: Path, sqlite_url: str) -> None:
    app, _ = make_touch_app(tmp_path, sqlite_url, FakeClock())
    upgrade(app.database)
    assert app.scheduler is not None
    assert ANCHOR_JOB in app.scheduler.jobs

    with captured_logs() as logs:
        app.close()

    assert logs.saw("audit anchor (shutdown)")
