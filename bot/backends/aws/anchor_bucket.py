"""Audit anchors in an S3 bucket under Object Lock: written once, kept for the retention, readable by any verifier.

Why Object Lock: opsbot's own credentials (and so anyone who steals them with the database
password) may put objects, but a locked object version cannot be overwritten or deleted by
anyone until its retention ends (COMPLIANCE mode; in GOVERNANCE mode only a principal with
``s3:BypassGovernanceRetention`` can). A forged anchor can still be *added*, never an old one
removed, so ``opsbot audit verify --anchors s3://…`` reads every version of every object: the
old anchors still disagree with a re-chained log.

The bucket must be created with Object Lock enabled (it implies versioning); opsbot never
creates or configures buckets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.audit.anchors import Anchor, parse_anchors
from bot.audit.chain import format_time

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

logger = logging.getLogger(__name__)

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10)


class AnchorBucketError(RuntimeError):
    """S3 refused or failed; the message names the bucket and what S3 said."""


@dataclass(frozen=True)
class BucketPlace:
    """``s3://bucket/prefix`` split in two; the prefix ends with ``/`` unless empty."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> BucketPlace:
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"an S3 anchor location looks like s3://bucket/prefix, not {url!r}")
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class S3AnchorBucket:
    """Publishes anchors as locked objects and reads every version back for ``audit verify``."""

    name = "s3"

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        retention: timedelta = timedelta(days=365),
        mode: LockMode = "COMPLIANCE",
    ) -> None:
        self.place = BucketPlace.parse(url)
        self._retention = retention
        self._mode: LockMode = mode
        self._client: S3Client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=_RETRIES)

    def publish(self, anchor: Anchor) -> None:
        """One object per anchor (S3 objects cannot be appended to), locked until ``at`` + the retention."""
        key = f"{self.place.prefix}{anchor.seq:012d}-{format_time(anchor.at)}.json"
        try:
            self._client.put_object(
                Bucket=self.place.bucket,
                Key=key,
                Body=(anchor.as_json() + "\n").encode("utf-8"),
                ContentType="application/json",
                ObjectLockMode=self._mode,
                ObjectLockRetainUntilDate=anchor.at + self._retention,
                ChecksumAlgorithm="SHA256",  # S3 requires a checksum (or Content-MD5) on a put with Object Lock settings
            )
        except (ClientError, BotoCoreError) as error:
            raise AnchorBucketError(f"could not put the anchor {key} into {self.place}: {_what_s3_said(error)}") from error

    def read_anchors(self) -> list[Anchor]:
        """Every anchor in every version of every object under the prefix (an overwrite hides nothing)."""
        anchors: list[Anchor] = []
        try:
            pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self.place.bucket, Prefix=self.place.prefix)
            for page in pages:
                for version in page.get("Versions", []):
                    key, version_id = version["Key"], version["VersionId"]
                    body = self._client.get_object(Bucket=self.place.bucket, Key=key, VersionId=version_id)["Body"].read()
                    source = f"s3://{self.place.bucket}/{key}?versionId={version_id}"
                    anchors += parse_anchors(body.decode("utf-8", errors="replace").splitlines(), source=source)
        except (ClientError, BotoCoreError) as error:
            raise AnchorBucketError(f"could not read the anchors in {self.place}: {_what_s3_said(error)}") from error
        return anchors

    def lock_problem(self) -> str | None:
        """Why this bucket would not protect anchors (no Object Lock), or None; checked once at start."""
        try:
            configuration = self._client.get_object_lock_configuration(Bucket=self.place.bucket)
        except (ClientError, BotoCoreError) as error:
            return f"cannot read the Object Lock configuration of {self.place}: {_what_s3_said(error)}"
        if configuration.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            return f"{self.place} does not have Object Lock enabled: anchors there could be deleted or overwritten"
        return None


def _what_s3_said(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".strip()
    return type(error).__name__
