"""A userspace TCP proxy between clients and one dependency's port, whose link can be made slow or
cut at run time: this kernel has no netem (tc qdisc), so latency and broken connections are made
here, in the path, instead of in the network stack.

Modes (set_link): `pass` forwards bytes as they come; `latency` holds every chunk `latency_ms`
before forwarding it, each direction (a request/answer round trip then costs twice that);
`cut` resets every open connection and every new one (RST, as a dead link's peer sees it), while
the port stays bound so the link can be restored.

It runs either on the caller's asyncio loop (`await proxy.open()`: the sandbox's services process)
or on a thread of its own (`with FaultProxy(...).running() as proxy:` a test, the bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

LinkMode = Literal["pass", "latency", "cut"]
LINK_MODES: tuple[LinkMode, ...] = ("pass", "latency", "cut")
CHUNK = 64 * 1024


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: a free port, read back from .port
    mode: LinkMode = "pass"
    latency_ms: float = 0.0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.upstream_host != "127.0.0.1" or self.listen_host != "127.0.0.1":
            raise ValueError("the fault proxy only listens on and forwards to loopback (127.0.0.1)")

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fault proxy is not open")
        return int(self._server.sockets[0].getsockname()[1])

    # -- the link -------------------------------------------------------------------
    def set_link(self, mode: LinkMode, latency_ms: float = 0.0) -> None:
        """Switch the link; callable from any thread. A cut resets what is open at once."""
        if mode not in LINK_MODES:
            raise ValueError(f"unknown link mode '{mode}'; modes: {', '.join(LINK_MODES)}")
        if mode == "latency" and latency_ms <= 0:
            raise ValueError("a latency link needs latency_ms > 0")
        self.mode, self.latency_ms = mode, latency_ms if mode == "latency" else 0.0
        if mode == "cut" and self._loop is not None:
            if self._on_own_loop():
                self._reset_all()
            else:
                self._loop.call_soon_threadsafe(self._reset_all)

    def _on_own_loop(self) -> bool:
        with contextlib.suppress(RuntimeError):
            return asyncio.get_running_loop() is self._loop
        return False

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    # -- serving on the caller's loop -----------------------------------------------
    async def open(self) -> FaultProxy:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._reset_all()
            if self._handlers:  # each ends on its reset connection: let it, rather than cancel it
                await asyncio.wait(self._handlers, timeout=5)
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _reset(writer)  # the dependency itself is down: the client sees what it would see
            return
        self._writers.update((writer, up_writer))
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                with contextlib.suppress(Exception):
                    end.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if self.mode == "latency":
                    await asyncio.sleep(self.latency_ms / 1000)
                if self.mode == "cut":
                    return
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            return

    # -- serving on a thread of its own ---------------------------------------------
    @contextlib.contextmanager
    def running(self) -> Iterator[FaultProxy]:
        """The proxy on its own thread and loop, open until the block ends."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.open())
            except BaseException as exc:  # reported to the caller, not lost in the thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            pending = asyncio.all_tasks(loop)  # connections still piping when the block ended
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer reads 'connection reset', as on a dead link."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
