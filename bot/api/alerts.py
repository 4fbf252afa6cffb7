"""Which alerts of an Alertmanager notification name a catalog service and environment.

The label names are configurable (``api.alertmanager.service_label``/``env_label``, defaults
``service`` and ``env``). An alert naming nothing opsbot knows is ignored with the reason (the
answer lists it), never an error: Alertmanager would retry a non-2xx forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.api.models import Alert, AlertmanagerNotification, IgnoredAlert
from bot.catalog.config import OpsbotConfig

MAX_SUMMARY = 300


@dataclass(frozen=True)
class AlertNotice:
    """One alert opsbot acts on: plain data, handed to an executor."""

    fingerprint: str
    firing: bool
    service: str
    env: str
    summary: str
    starts_at: datetime


def sort_alerts(notification: AlertmanagerNotification, config: OpsbotConfig) -> tuple[list[AlertNotice], list[IgnoredAlert]]:
    labels = config.api.alertmanager
    notices: list[AlertNotice] = []
    ignored: list[IgnoredAlert] = []
    for alert in notification.alerts:
        service = alert.labels.get(labels.service_label) or notification.commonLabels.get(labels.service_label)
        env = alert.labels.get(labels.env_label) or notification.commonLabels.get(labels.env_label)
        entry = config.services.get(service or "")
        if service is None or env is None:
            reason = f"no {labels.service_label!r} and {labels.env_label!r} labels"
        elif entry is None:
            reason = f"{service!r} is not a service in the catalog"
        elif env not in entry.environments:
            reason = f"{service!r} has no environment {env!r}"
        else:
            notices.append(AlertNotice(alert.fingerprint, alert.status == "firing", service, env, summary_of(alert), alert.startsAt))
            continue
        ignored.append(IgnoredAlert(fingerprint=alert.fingerprint, reason=reason))
    return notices, ignored


def summary_of(alert: Alert) -> str:
    """``HighErrorRate: 5xx above 5% for 10 minutes`` from the alert's name and its summary (or description)."""
    name = alert.labels.get("alertname", "alert")
    text = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    return (f"{name}: {text}" if text else name)[:MAX_SUMMARY]
