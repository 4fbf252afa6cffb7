"""``/ops insights [service] [env] [window]``: delivery figures in the channel, a chart per service in the thread.

Why in the channel and not a private reply like the other read-only built-ins: a trend is for the
team to discuss, and Slack can only attach the charts to a thread of a message it can see. It
reads and never changes anything, so it needs no policy decision and no replay check.
"""

from __future__ import annotations

from bot.errors import UsageError
from bot.messages import Replier
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from bot.watch.insights_chart import deploys_chart
from bot.watch.insights_render import insights_message
from commands.parser import CommandRequest

DAY_SECONDS = 86_400
MAX_CHARTS = 10
"""At most this many service charts per reply (the busiest): a thread of fifty pictures helps nobody."""


def show_insights(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    """Post the figures to the channel (privately if that fails), then each busy service's chart in its thread."""
    report = desk.insights.report(service=parsed.service, env=parsed.env, days=window_days(parsed.params.get("window")))
    message = insights_message(report)
    ref = desk.notifier.post(invocation.channel, message)
    if ref is None:
        reply.private(message)
        return
    busy = [item for item in report.services if item.current.changes or item.current.restores]
    busy.sort(key=lambda item: (-item.current.changes, item.label))
    for item in busy[:MAX_CHARTS]:
        title = f"{item.label.replace('/', '-')}-deploys-{report.window.days}d.png"
        desk.notifier.upload(invocation.channel, title, deploys_chart(item.current), thread=ref)


def window_days(seconds: object) -> int | None:
    """The window parameter (seconds, from the grammar's duration) as whole days; None for the default."""
    if seconds is None:
        return None
    if not isinstance(seconds, int) or seconds % DAY_SECONDS:
        raise UsageError("The window is a whole number of days, like 7d or 28d.", usage="insights [{service}] [{env}] [{window}]")
    return seconds // DAY_SECONDS
