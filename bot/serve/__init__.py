"""The process model: the ASGI app, the supervisor and its executors, the handoff between them, the post-ack pool, the wiring.

May import every wing below it (``bot.slack``, ``bot.shell``, ``bot.requests`` …); only
``bot.cli`` imports it.
"""
