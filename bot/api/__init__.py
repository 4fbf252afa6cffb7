"""Front end: the inbound API under ``/api/v1`` (CI asking for runbooks, Alertmanager opening incidents).

A sibling of ``bot.slack`` and ``bot.shell``: it turns an HTTP call from a configured client
into the same ``Invocation`` and ``CommandRequest`` a typed command becomes, and hands it to the
same front door. May import ``bot.requests`` and every wing below it; never the Slack or shell wings.
"""
