"""Where ``opsbot audit verify --anchors`` reads anchors from: files (log exports, pasted messages, audit exports) and S3."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from bot.audit.anchors import Anchor, AnchorFormatError, parse_anchors
from bot.settings import Settings


def load_anchors(sources: Sequence[str], settings: Settings) -> list[Anchor]:
    """Every anchor in every source; a source that cannot be read or holds a damaged anchor is a usage error (exit 2)."""
    anchors: list[Anchor] = []
    for source in sources:
        try:
            found = _from_s3(source, settings) if source.startswith("s3://") else _from_file(source)
        except (OSError, ValueError, RuntimeError) as error:
            raise click.UsageError(f"--anchors {source}: {error}") from None
        if not found:
            raise click.UsageError(f'--anchors {source}: no anchors found there (lines with {{"audit_anchor": …}} or audit export lines)')
        anchors += found
    return anchors


def _from_file(path: str) -> list[Anchor]:
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as lines:
            return parse_anchors(lines, source=path)
    except AnchorFormatError:
        raise
    except OSError as error:
        raise OSError(f"cannot read the file ({error.strerror})") from None


def _from_s3(url: str, settings: Settings) -> list[Anchor]:
    from bot.backends.aws.anchor_bucket import S3AnchorBucket

    bucket = S3AnchorBucket(url, endpoint_url=settings.audit_anchor_s3_endpoint, region=settings.audit_anchor_s3_region)
    return bucket.read_anchors()
