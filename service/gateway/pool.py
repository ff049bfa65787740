"""All configured upstreams, started together, and the catalog of what they offer."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
from anyio.abc import TaskGroup

from service.config import UpstreamConfig
from service.gateway.catalog import ToolCatalog
from service.gateway.upstreams import UpstreamConnection, UpstreamUnavailable


class UpstreamPool:
    def __init__(self, configs: Mapping[str, UpstreamConfig], *, call_timeout_seconds: float = 300.0) -> None:
        self.catalog = ToolCatalog()
        self._strict = False
        self.connections = {
            name: UpstreamConnection(
                name, config, on_tools_changed=self._rebuild, call_timeout_seconds=call_timeout_seconds
            )
            for name, config in configs.items()
        }

    def names(self) -> list[str]:
        return list(self.connections)

    def get(self, name: str) -> UpstreamConnection:
        connection = self.connections.get(name)
        if connection is None:
            raise UpstreamUnavailable(f"no upstream named {name}")
        return connection

    async def start(self, task_group: TaskGroup, *, ready_timeout: float = 10.0) -> None:
        """Start every connection and wait (up to the timeout) for them to list their tools.

        A name clash between upstreams found now is a config error: the caller refuses to start.
        """
        for connection in self.connections.values():
            task_group.start_soon(connection.run, name=f"upstream-{connection.name}")
        async with anyio.create_task_group() as waiting:
            for connection in self.connections.values():
                waiting.start_soon(connection.wait_ready, ready_timeout)
        self._strict = True
        try:
            self._rebuild()
        finally:
            self._strict = False

    def _rebuild(self) -> None:
        self.catalog.rebuild(
            (
                (name, connection.config.prefix, connection.state.tools if connection.state.connected else [])
                for name, connection in self.connections.items()
            ),
            strict=self._strict,
        )
