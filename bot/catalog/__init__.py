"""What opsbot is told to do, loaded from files: config, runbooks, the action contract and registry, validation.

May import ``commands`` and the shared modules at the bottom of ``bot``; never the wings
above it (runs, requests, Slack) and never a backend's client (the registry finds action
modules by name).
"""
