"""Everything about one request before it runs: the front door, the policy gate, approvals, built-ins, and the board.

May import ``bot.watch``, ``bot.runs``, ``bot.backends`` (plans are dry runs), ``bot.catalog``,
``bot.store``, ``bot.audit`` and the shared modules; never ``bot.slack``, ``bot.shell`` or
``bot.serve``: messages are front-end-neutral and every front end calls the same ``FrontDoor``.
"""
