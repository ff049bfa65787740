"""OAuth 2.1 for MCP clients: Airlock as the authorization server of its own MCP endpoints (issue 16)."""
