"""Held tool calls: the pending queue and the single place where a decision is made."""
