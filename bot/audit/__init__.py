"""The audit log's pure side: event types, who acted, the hash chain, and the event factories.

May import only the shared modules at the bottom of ``bot`` (redaction); SQL lives in
``bot.store.audit``.
"""
