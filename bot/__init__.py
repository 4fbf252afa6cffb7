"""opsbot, the application: wings named for the way a request travels (see docs/architecture.md).

cli → serve → slack | shell → requests → watch | runs → backends → catalog → store → audit →
the shared modules at this top level (errors, messages, settings, metrics, logs, redaction,
service_health). Each wing's docstring says what lives there and what it may import; one
import-linter ``layers`` contract checks the order.
"""
