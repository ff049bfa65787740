"""The reference point "fastmcp proxy": fastmcp's own proxy server (from PyPI, in .venv-peers, not one of
Airlock's dependencies) in front of the same stdio upstream.

    .venv-peers/bin/python bench/peers/fastmcp_proxy.py PORT PYTHON UPSTREAM_SCRIPT
"""

from __future__ import annotations

import sys

from fastmcp.server import create_proxy  # type: ignore[import-not-found]

if __name__ == "__main__":
    port, python, upstream_script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    proxy = create_proxy({"mcpServers": {"echo": {"command": python, "args": [upstream_script]}}}, name="fastmcp")
    proxy.run(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="warning")
