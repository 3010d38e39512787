"""A real HTTP receiver on 127.0.0.1 (random port), in a thread with its own event loop:
what a shop's webhook endpoint is to the tests and the benchmark. It keeps every request it
gets (headers, body, time of arrival) and answers what the test tells it to."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() of arrival


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering (a slow receiver)


Responder = Callable[[Received], Answer]


class Receiver:
    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda _: Answer())
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10), "the receiver did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    # ------------------------------------------------------------------ what came in

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until `count` requests came (a real wait for a real network event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"{len(self.received())} of {count} requests arrived")

    # ------------------------------------------------------------------ HTTP/1.1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                got = Received(path, headers, body, time.time())
                with self._lock:
                    self.requests.append(got)
                answer = self.respond(got)
                if answer.delay:
                    await asyncio.sleep(answer.delay)
                head = [f"HTTP/1.1 {answer.status} X", f"content-length: {len(answer.body)}"]
                head += [f"{k}: {v}" for k, v in answer.headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + answer.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()
