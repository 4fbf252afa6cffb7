"""Watching the fleet on a schedule: health digests, the health watch and its incidents, the replica-safe scheduler.

May import ``bot.backends`` (bulk health), ``bot.catalog``, ``bot.store``, ``bot.audit`` and the
shared modules; never ``bot.requests`` or a front end. Messages are front-end-neutral.
"""
