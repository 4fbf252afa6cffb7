"""The store layer: all SQL lives here (SQLite by default, PostgreSQL in production).

May import only ``bot.audit`` (the chain's pure functions) and the shared modules.
"""
