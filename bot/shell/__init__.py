"""``opsbot shell``: a text front end on the same code path as Slack (Errbot's text mode, Hubot's shell).

May import ``bot.requests`` and everything below it, never ``bot.slack`` or ``bot.serve``.
"""
