"""The run engine: claim an approved request, run its steps, finish, recover; and the sweeps around it.

May import ``bot.backends``, ``bot.catalog``, ``bot.store``, ``bot.audit`` and the shared
modules; never ``bot.requests``, ``bot.slack`` or any message text: it reports progress
through ``RunObserver`` (``run_view``), which the board in ``bot.requests`` implements.
"""
