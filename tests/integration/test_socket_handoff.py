"""The HTTP worker's handoff to an executor, over a real Unix socket.

What a person would notice if it broke: a job acked but never done, a click answered after
a flood of commands (or dropped for room), a worker that keeps acking while no executor
listens, or one that never finds the executor again after it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.audit.events import Actor
from bot.catalog.catalog import load_catalog
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Invocation
from bot.serve.worker_handoff import FRAME_HEADER, SocketHandoff
from bot.slack.jobs import CommandJob, HandoffBusy, HandoffUnavailable, Job, NoticeJob, ReplyTarget

REPO = Path(__file__).resolve().parents[2]
TARGET = ReplyTarget(user_id="U0ALICE", channel="C0OPS", response_url=None)


def notice(text: str) -> NoticeJob:
    return NoticeJob(reply=TARGET, text=text)


def command(text: str) -> CommandJob:
    catalog = load_catalog(REPO / "opsbot.example.yaml", REPO / "runbooks", builtins=BUILTIN_SPECS)
    invocation = Invocation(actor=Actor(user_id="U0ALICE", name="alice"), channel="C0OPS", text=text)
    return CommandJob(invocation=invocation, parsed=catalog.parse("help"), reply=TARGET)


class FakeExecutor:
    """Reads job frames like the executor does; can hold off reading to apply back-pressure."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.received: list[Job] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self._server: asyncio.AbstractServer | None = None
        self._connections: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for connection in self._connections:
            connection.close()
        await self._server.wait_closed()
        Path(self.path).unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await self.reading.wait()
                (size,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
                self.received.append(pickle.loads(await reader.readexactly(size)))
        writer.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Job]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.01)
        return self.received


@contextlib.asynccontextmanager
async def executor_and_handoff(tmp_path: Path, **handoff_options: Any) -> AsyncIterator[tuple[FakeExecutor, SocketHandoff]]:
    executor = FakeExecutor(str(tmp_path / "executor.sock"))
    await executor.start()
    handoff = SocketHandoff(executor.path, **handoff_options)
    await handoff.connect(wait_seconds=5)
    try:
        yield executor, handoff
    finally:
        await handoff.close()
        await executor.stop()


def test_every_job_reaches_the_executor_whole_and_in_order(tmp_path: Path) -> None:
    async def scenario() -> list[Job]:
        async with executor_and_handoff(tmp_path) as (executor, handoff):
            for index in range(1_000):
                handoff.submit(notice(f"job {index}"))
                if index % 100 == 0:
                    await asyncio.sleep(0)  # let some flushes happen mid-stream
            return await executor.wait_for(1_000)

    received = asyncio.run(scenario())
    assert [job.text for job in received if isinstance(job, NoticeJob)] == [f"job {index}" for index in range(1_000)]


def test_a_backed_up_executor_refuses_new_commands_as_busy_but_never_a_click_or_notice(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, list[Job]]:
        async with executor_and_handoff(tmp_path, queue_size=5) as (executor, handoff):
            executor.reading.clear()  # the executor stops reading: the socket and transport buffers fill
            accepted = 0
            with pytest.raises(HandoffBusy):
                for index in range(100_000):
                    handoff.submit(command(f"help {index}"))
                    accepted += 1
                    if index % 50 == 0:
                        await asyncio.sleep(0)
            for index in range(20):
                handoff.submit(notice(f"click answer {index}"))  # never refused for room
            executor.reading.set()
            return accepted, await executor.wait_for(accepted + 20)

    accepted, received = asyncio.run(scenario())
    assert len(received) == accepted + 20
    positions = [index for index, job in enumerate(received) if isinstance(job, NoticeJob)]
    assert len(positions) == 20
    assert positions[-1] < len(received) - 5, "the notices waited behind the queued commands"


def test_no_executor_means_unavailable_and_a_restarted_executor_is_found_again(tmp_path: Path) -> None:
    async def scenario() -> list[Job]:
        executor = FakeExecutor(str(tmp_path / "executor.sock"))
        handoff = SocketHandoff(executor.path)
        await handoff.connect(wait_seconds=0.3)  # nothing listens yet
        assert not handoff.is_available()
        with pytest.raises(HandoffUnavailable):
            handoff.submit(notice("lost"))
        await executor.start()
        async with asyncio.timeout(5):
            while not handoff.is_available():
                await asyncio.sleep(0.05)
        handoff.submit(notice("first"))
        await executor.wait_for(1)
        await executor.stop()  # the executor restarts
        async with asyncio.timeout(5):
            while handoff.is_available():
                await asyncio.sleep(0.05)
        restarted = FakeExecutor(executor.path)
        await restarted.start()
        async with asyncio.timeout(5):
            while not handoff.is_available():
                await asyncio.sleep(0.05)
        handoff.submit(notice("after restart"))
        received = await restarted.wait_for(1)
        await handoff.close()
        await restarted.stop()
        return received

    received = asyncio.run(scenario())
    assert [job.text for job in received if isinstance(job, NoticeJob)] == ["after restart"]
