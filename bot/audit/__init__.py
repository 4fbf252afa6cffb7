"""The audit log: what happened, by whom, in a hash chain that shows any tampering."""

from bot.audit.chain import GENESIS_HASH, ChainBreak, chain_hash, verify_chain
from bot.audit.events import AuditEvent, EventType, redact

__all__ = ["GENESIS_HASH", "AuditEvent", "ChainBreak", "EventType", "chain_hash", "redact", "verify_chain"]
