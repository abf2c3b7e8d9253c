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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from composer.audio import renders_in_progress
from composer.compose import ComposeRequest
from composer.melody import Melody
from composer.model_store import ModelLibrary
from composer.piece import MAX_PIECE_SECONDS, Piece, make_piece

log = logging.getLogger(__name__)

_library: ModelLibrary | None = None
_soundfont: Path | None = None
_max_seconds: float = MAX_PIECE_SECONDS
#: Set while this worker process makes a piece (it has temporary files open).
_working = threading.Event()
#: Taken to start a piece, and by the parent watch once the bot is gone (then no piece starts).
_gate = threading.Lock()
_closing = False


def _init_worker(models_dir: Path, soundfont: Path | None, bot_pid: int,
                 max_seconds: float = MAX_PIECE_SECONDS) -> None:
    """Load every model once per worker process and make one tiny piece, so that the first person's
    piece pays no start-up costs (imports, the score engraver's fonts, the synthesiser)."""
    global _library, _soundfont, _max_seconds
    threading.Thread(target=_exit_with_parent, args=(bot_pid,), name="parent-watch", daemon=True).start()
    _library, _soundfont, _max_seconds = ModelLibrary(models_dir), soundfont, max_seconds
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


def _make(request: ComposeRequest, primer: Melody | None, accompaniment: bool = True) -> Piece:
    assert _library is not None, "worker not initialised"
    with _gate:
        if _closing:
            raise RuntimeError("the bot that asked for this piece is gone")
        _working.set()
    try:
        return make_piece(request, _library, primer=primer, soundfont=_soundfont,
                          max_seconds=_max_seconds, accompaniment=accompaniment)
    finally:
        _working.clear()


def _warm() -> None:
    """Nothing: submitting it starts a worker process, whose initialiser loads the models."""


def _run(request: ComposeRequest, primer: Melody | None, accompaniment: bool = True) -> Piece:
    return _make(request, primer, accompaniment)


#: A piece that waits this long for a free worker is told its place in the queue.
QUEUE_NOTICE_SECONDS = 3.0


class Overloaded(Exception):
    """More pieces are queued than the bot takes on at once."""


class WorkerLost(Exception):
    """The worker process making the piece died, and died again when the piece was tried once more."""


class _PoolBroken(Exception):
    """The pool that had the piece broke (a worker died) or was replaced before the piece ran."""


class Workers:
    """A pool of worker processes and a queue in front of it.

    A piece goes to the pool only when a worker is free, so its time limit counts the run alone, and a
    piece that overran its limit keeps its worker (and its place in the count) until it really ends.
    At most ``max_queue`` pieces wait or run. A worker process that dies breaks the pool: the first piece
    to see the breakage starts one fresh pool (never one per piece), and every piece the dead pool held
    is tried once more there; a piece that fails twice raises ``WorkerLost``.
    """

    def __init__(self, models_dir: Path, soundfont: Path | None, workers: int, max_queue: int,
                 timeout: float, *, max_seconds: float = MAX_PIECE_SECONDS,
                 queue_notice: float = QUEUE_NOTICE_SECONDS,
                 target: Callable[[ComposeRequest, Melody | None], Piece] = _run,
                 initializer: Callable[..., None] = _init_worker) -> None:
        self.models_dir = models_dir
        self.soundfont = soundfont
        self.workers = workers
        self.max_queue = max_queue
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.queue_notice = queue_notice
        self.target = target
        self.initializer = initializer
        #: Fresh pools started after a worker died.
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0
        self._free = workers
        self._queue: deque[asyncio.Future[None]] = deque()
        self._notices: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Pieces waiting for a worker or held by one (an overrun piece counts until it really ends)."""
        return len(self._queue) + self.workers - self._free

    def start(self) -> None:
        # spawn: the parent runs threads (aiosqlite, httpx), which forking would copy in a broken state.
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=self.initializer,
            initargs=(self.models_dir, self.soundfont, os.getpid(), self.max_seconds),
        )
        for _ in range(self.workers):
            self._pool.submit(_warm)

    async def run(self, request: ComposeRequest, primer: Melody | None = None, *,
                  on_queued: Callable[[int], Awaitable[object]] | None = None,
                  accompaniment: bool = True) -> Piece:
        """The piece; raises ``Overloaded``, ``TimeoutError``, ``WorkerLost`` or the composer's errors.

        ``on_queued(place)`` is awaited (in the background) once if the piece waits for a worker longer
        than ``queue_notice`` seconds; ``place`` 1 means it is next. ``accompaniment=False`` asks for the
        melody alone (passed to the target only then, so a target of two arguments serves the rest).
        """
        if self._pool is None:
            raise RuntimeError("workers not started")
        if self.in_flight >= self.max_queue:
            raise Overloaded
        for attempt in range(2):
            await self._acquire(on_queued if attempt == 0 else None)
            try:
                return await self._attempt(request, primer, accompaniment)
            except _PoolBroken:
                if attempt:
                    raise WorkerLost from None
                log.warning("a piece is tried again on a fresh pool")
        raise AssertionError("unreachable")

    async def _attempt(self, request: ComposeRequest, primer: Melody | None,
                       accompaniment: bool = True) -> Piece:
        """One try on the current pool; the worker slot taken by ``_acquire`` is given back when the
        worker is done with the piece, which may be after this coroutine gave up on it."""
        loop = asyncio.get_running_loop()
        generation, pool = self._generation, self._pool
        try:
            assert pool is not None
            extra = {} if accompaniment else {"accompaniment": False}
            future = pool.submit(self.target, request, primer, **extra)
        except (BrokenProcessPool, RuntimeError, AssertionError):
            self._release()
            self._restart(generation)
            raise _PoolBroken from None
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except BrokenProcessPool:
            self._restart(generation)
            raise _PoolBroken from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and not (task is not None and task.cancelling()):
                # The pool was shut down (replaced) before the piece started: not our caller's cancel.
                raise _PoolBroken from None
            raise

    async def _acquire(self, on_queued: Callable[[int], Awaitable[object]] | None) -> None:
        """Wait for a free worker, first come first served."""
        if self._free > 0 and not self._queue:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._queue.append(waiter)
        notice = None
        if on_queued is not None:
            notice = loop.call_later(self.queue_notice, self._notify, waiter, on_queued)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot came just as the caller gave up: pass it on
            else:
                self._queue.remove(waiter)
            raise
        finally:
            if notice is not None:
                notice.cancel()

    def _notify(self, waiter: asyncio.Future[None], on_queued: Callable[[int], Awaitable[object]]) -> None:
        if waiter in self._queue:
            place = self._queue.index(waiter) + 1
            task = asyncio.ensure_future(on_queued(place))
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    def _release(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free = min(self.workers, self._free + 1)

    def _restart(self, generation: int) -> None:
        """Replace the pool, once per broken pool: pieces that saw an older breakage change nothing."""
        if generation != self._generation or self._pool is None:
            return
        self._generation += 1
        self.restarts += 1
        log.error("a worker process died; starting a fresh pool (restart %d)", self.restarts)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.start()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


#: PTB's own limit on updates at once is set this high: it is taken before the per-chat lock.
_UNBOUNDED = 1_000_000


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Updates from different chats are handled concurrently (a slow send to one chat never delays
    another); updates from one chat are handled one after another, in order, so ``/bars 8`` followed
    by ``/compose`` composes 8 bars.

    python-telegram-bot takes its concurrency slot before ``do_process_update`` runs, so with its own
    limit a chat that floods would hold every slot while its updates wait for their chat's lock. Here
    PTB's limit is left open and the slot (at most ``max_concurrent_updates``) is taken after the chat's
    lock: only the update at the head of each chat holds one. A chat may have at most
    ``max_chat_backlog`` updates waiting; further ones are dropped, and ``on_dropped`` is called once
    for each burst of drops.
    """

    def __init__(self, max_concurrent_updates: int, max_chat_backlog: int = 10,
                 on_dropped: Callable[[Update], Awaitable[object]] | None = None) -> None:
        super().__init__(_UNBOUNDED)
        self.max_chat_backlog = max_chat_backlog
        self.on_dropped = on_dropped
        self.dropped = 0
        self._slots = asyncio.Semaphore(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}
        self._flooding: set[int] = set()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _chat_key(update)
        if key is None:
            async with self._slots:
                await coroutine
            return
        if self._waiting.get(key, 0) >= self.max_chat_backlog:
            self.dropped += 1
            if isinstance(coroutine, Coroutine):
                coroutine.close()
            if key not in self._flooding:
                self._flooding.add(key)
                log.warning("chat %s has %d updates waiting: dropping more", key, self._waiting[key])
                if self.on_dropped is not None and isinstance(update, Update):
                    await self.on_dropped(update)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock, self._slots:
                await coroutine
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]
                self._flooding.discard(key)

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


class Admission:
    """A user's admitted piece; ``release`` (idempotent) lets their next one in."""

    def __init__(self, gate: Gate, user_id: int) -> None:
        self.gate = gate
        self.user_id = user_id
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            if self.gate._busy.get(self.user_id) is self:
                del self.gate._busy[self.user_id]


class Gate:
    """One piece at a time per user, and at most ``limit`` pieces per ``window`` seconds (0: no limit).

    Users whose pieces all lie more than a window back are forgotten (swept at most once a window)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._busy: dict[int, Admission] = {}
        self._recent: dict[int, deque[float]] = {}
        self._swept = clock()

    def enter(self, user_id: int) -> Admission:
        """Admit the user's next piece or raise ``Busy`` / ``RateLimited``."""
        if user_id in self._busy:
            raise Busy
        now = self.clock()
        if now - self._swept >= self.window:
            self._sweep(now)
        recent = self._recent.setdefault(user_id, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if self.limit and len(recent) >= self.limit:
            raise RateLimited(recent[0] + self.window - now)
        recent.append(now)
        admission = self._busy[user_id] = Admission(self, user_id)
        return admission

    async def admit(self, user_id: int) -> Admission:
        """``enter`` for callers that also serve the shared gate of scale mode (``bot.queue.RedisGate``)."""
        return self.enter(user_id)

    def _sweep(self, now: float) -> None:
        self._swept = now
        stale = [u for u, times in self._recent.items() if not times or times[-1] <= now - self.window]
        for user_id in stale:
            del self._recent[user_id]


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
