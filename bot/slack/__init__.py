"""The Slack front end: Bolt listeners, signatures, Block Kit, Web API delivery, Socket Mode, the jobs it hands over.

The only package (with ``bot.serve``, which mounts it) that imports slack_bolt or slack_sdk or
knows a Slack payload's shape; below it, the core sees ``Invocation``, ``Click``, ``Message``
and the ``Notifier``/``Replier`` protocols. May import ``bot.requests`` and everything below.
"""
