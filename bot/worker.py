"""Composition off the event loop: a process pool with a bounded queue, and per-user admission."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from composer.audio import renders_in_progress
from composer.compose import ComposeRequest
from composer.model_store import ModelLibrary
from composer.piece import Piece, make_piece

log = logging.getLogger(__name__)

_library: ModelLibrary | None = None
_soundfont: Path | None = None
#: Set while this worker process makes a piece (it has temporary files open).
_working = threading.Event()
#: Taken to start a piece, and by the parent watch once the bot is gone (then no piece starts).
_gate = threading.Lock()
_closing = False


def _init_worker(models_dir: Path, soundfont: Path | None, bot_pid: int) -> None:
    """Load every model once per worker process and make one tiny piece, so that the first person's
    piece pays no start-up costs (imports, the score engraver's fonts, the synthesiser)."""
    global _library, _soundfont
    threading.Thread(target=_exit_with_parent, args=(bot_pid,), name="parent-watch", daemon=True).start()
    _library, _soundfont = ModelLibrary(models_dir), soundfont
    styles = _library.styles()
    for info in styles:
        _library.get(info.name)
    if styles:
        _make(ComposeRequest(style=styles[0].name, bars=1, candidates=1), None)


def _exit_with_parent(parent: int, every: float = 1.0, grace: float = 30.0) -> None:
    """End this worker once the bot that started it is gone (killed with SIGKILL, say): the pool would
    otherwise leave it behind, holding its models, after every crash. ``parent`` comes from the bot, as
    the bot may die while this process still imports, before it could ask for its parent. A piece in
    progress is interrupted first (SIGINT), and its audio rendering, which runs in a thread of its own and
    may outlive an interrupted piece, is waited for, so that temporary files and renderers are cleaned up."""
    global _closing
    while os.getppid() == parent:
        time.sleep(every)
    with _gate:
        _closing = True
        busy = _working.is_set()
    if busy:
        os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + grace
    while (_working.is_set() or renders_in_progress()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os._exit(1)


def _make(request: ComposeRequest, primer_midi: bytes | None) -> Piece:
    assert _library is not None, "worker not initialised"
    with _gate:
        if _closing:
            raise RuntimeError("the bot that asked for this piece is gone")
        _working.set()
    try:
        return make_piece(request, _library, primer_midi=primer_midi, soundfont=_soundfont)
    finally:
        _working.clear()


@dataclass(frozen=True)
class Job:
    """Everything a worker process needs for one piece (picklable)."""

    request: ComposeRequest
    primer_midi: bytes | None


def _warm() -> None:
    """Nothing: submitting it starts a worker process, whose initialiser loads the models."""


def _run(job: Job) -> Piece:
    return _make(job.request, job.primer_midi)


class Overloaded(Exception):
    """More pieces are queued than the bot takes on at once."""


class Workers:
    """A pool of worker processes; at most ``max_queue`` jobs waiting or running."""

    def __init__(self, models_dir: Path, soundfont: Path | None, workers: int, max_queue: int,
                 timeout: float) -> None:
        self.models_dir = models_dir
        self.soundfont = soundfont
        self.workers = workers
        self.max_queue = max_queue
        self.timeout = timeout
        self.in_flight = 0
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        # spawn: the parent runs threads (aiosqlite, httpx), which forking would copy in a broken state.
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.models_dir, self.soundfont, os.getpid()),
        )
        for _ in range(self.workers):
            self._pool.submit(_warm)

    async def run(self, job: Job) -> Piece:
        """The piece for ``job``; raises ``Overloaded``, ``TimeoutError`` or the composer's errors."""
        if self._pool is None:
            raise RuntimeError("workers not started")
        if self.in_flight >= self.max_queue:
            raise Overloaded
        self.in_flight += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, _run, job)
            return await asyncio.wait_for(future, self.timeout)
        except BrokenProcessPool:
            log.error("a worker process died; starting a fresh pool")
            self.shutdown()
            self.start()
            raise
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Updates from different chats are handled concurrently (a slow send to one chat never delays
    another); updates from one chat are handled one after another, in order, so ``/bars 8`` followed
    by ``/compose`` composes 8 bars."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _chat_key(update)
        if key is None:
            await coroutine
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                await coroutine
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


def _chat_key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    return update.effective_user.id if update.effective_user is not None else None


class Busy(Exception):
    """The user's previous piece is still being made."""


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Gate:
    """One piece at a time per user, and at most ``limit`` pieces per ``window`` seconds (0: no limit)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._busy: set[int] = set()
        self._recent: dict[int, deque[float]] = {}

    def enter(self, user_id: int) -> None:
        """Admit the user's next piece or raise ``Busy`` / ``RateLimited``."""
        if user_id in self._busy:
            raise Busy
        now = self.clock()
        recent = self._recent.setdefault(user_id, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if self.limit and len(recent) >= self.limit:
            raise RateLimited(recent[0] + self.window - now)
        recent.append(now)
        self._busy.add(user_id)

    def leave(self, user_id: int) -> None:
        self._busy.discard(user_id)


def retry_seconds(exc: RateLimited) -> int:
    return max(1, math.ceil(exc.retry_after))


@contextlib.asynccontextmanager
async def repeating(action: Callable[[], Awaitable[object]], every: float = 4.0) -> AsyncIterator[None]:
    """Run ``action`` now and every ``every`` seconds until the block ends (a chat action lasts ~5 s)."""

    async def loop() -> None:
        while True:
            try:
                await action()
            except Exception as exc:  # a lost chat action must never break the piece itself
                log.debug("repeated action failed: %s", exc)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
