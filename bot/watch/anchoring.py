"""Publishing the audit chain's head outside the database: on a schedule, and when an executor stops.

Every anchor is one JSON log line (always: a log shipper keeps it where the database's writers
cannot edit it), plus each configured sink: an S3 object under Object Lock
(``bot.backends.aws.anchor_bucket``) and a message in a Slack channel. ``opsbot audit verify
--anchors`` then checks that the chain still extends every anchor (docs/audit-log.md).

The schedule is a ``SlotJob`` (``bot.watch.scheduler``): one anchor per slot across every
replica. A stopping executor adds one more, so the head at shutdown is on record too.
A sink that fails is logged and skipped: anchoring must never stop opsbot's work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bot.audit.anchors import ANCHOR_FIELD, Anchor
from bot.messages import Message, Notifier, code
from bot.store.audit import read_head
from bot.store.database import Database

logger = logging.getLogger(__name__)
ANCHOR_LOGGER = "bot.audit.anchor"
anchor_log = logging.getLogger(ANCHOR_LOGGER)
anchor_log.setLevel(logging.INFO)  # its own level: the line is written whatever OPSBOT_LOG_LEVEL says


class AnchorSink(Protocol):
    """Somewhere an anchor is kept; ``publish`` may raise (the failure is logged, the other sinks still get it)."""

    name: str

    def publish(self, anchor: Anchor) -> None:
        """Record ``anchor`` (blocking; called from a scheduler thread or at shutdown)."""


class SlackChannelSink:
    """Posts each anchor to a channel: Slack's history is outside the database, and people see it."""

    name = "slack"

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self._notifier = notifier
        self._channel = channel

    def publish(self, anchor: Anchor) -> None:
        text = f"Audit anchor: the audit log ends at seq {anchor.seq}. {code(anchor.as_json())}"
        if self._notifier.post(self._channel, Message.plain(text)) is None:
            raise RuntimeError(f"could not post to channel {self._channel}")


class AuditAnchoring:
    """Reads the head and publishes it as an anchor to the log and every sink."""

    def __init__(self, *, database: Database, sinks: Sequence[AnchorSink], clock: Callable[[], datetime]) -> None:
        self._database = database
        self._sinks = tuple(sinks)
        self._clock = clock

    @property
    def sinks(self) -> tuple[AnchorSink, ...]:
        return self._sinks

    def publish(self, reason: str) -> Anchor | None:
        """Publish the head now; None (and an error in the log) if the head cannot be read."""
        try:
            with self._database.reading() as session:
                head = read_head(session)
        except Exception:
            logger.exception("could not read the audit head to anchor it (%s)", reason)
            return None
        if head is None:
            logger.error("the audit_head row is missing: no anchor published (run `opsbot audit verify`)")
            return None
        anchor = Anchor(seq=head.seq, hash=head.hash, at=self._clock())
        anchor_log.info("audit anchor (%s): %s", reason, anchor.as_json(), extra={ANCHOR_FIELD: anchor.fields()})
        for sink in self._sinks:
            try:
                sink.publish(anchor)
            except Exception as error:  # noqa: BLE001 - one sink failing must not stop the others, nor opsbot
                logger.warning("could not publish the audit anchor to %s: %s", sink.name, error)
        return anchor

    def scheduled(self, _slot: object) -> str:
        """The ``SlotJob`` body: publish, and say which seq was anchored."""
        anchor = self.publish("scheduled")
        return "failed: no head" if anchor is None else f"anchored seq {anchor.seq}"
