"""A switchboard server scripted by the test, for the chat tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from transports.msn.codec import Command, Direction, Parser


class ScriptedSwitchboard:
    """A switchboard server that answers each command with ``script(command)``'s lines
    (an empty line closes the connection) and records what it was sent."""

    def __init__(self, script: Callable[[Command], list[bytes]]) -> None:
        self.script = script
        self.commands: list[Command] = []
        self.got = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Every connection closed and its handler finished (nothing left for the GC)."""
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        parser = Parser(Direction.FROM_CLIENT)
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                for frame in parser.feed(data):
                    if isinstance(frame, Command):
                        self.commands.append(frame)
                        self.got.set()
                        for line in self.script(frame):
                            if not line:
                                writer.close()
                                return
                            writer.write(line)
                await writer.drain()
        writer.close()

    def names(self) -> list[str]:
        return [c.name for c in self.commands]
