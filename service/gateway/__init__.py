"""The MCP gateway: agents on one side, upstream MCP servers on the other, the policy in between."""
