"""The Slack front end: Bolt listeners, Block Kit, Web API delivery, Socket Mode.

The only package (with ``bot.server``, which mounts it) that imports slack_bolt or
slack_sdk or knows a Slack payload's shape; the core sees ``Invocation``, ``Click``,
``Message`` and the ``Notifier``/``Replier`` protocols.
"""
