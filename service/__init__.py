"""Airlock: an MCP gateway with a human in the loop."""
