"""Scale mode (``REDIS_URL``): pieces go on an arq job queue in Redis, made by ``python -m bot worker``
processes on any machine with the models, and the state several bot replicas must share lives in Redis.

- ``QueueWorkers`` (the bot side) has the interface of ``bot.worker.Workers``: ``run`` enqueues a job
  and waits for its result (the ``Piece``, bytes included), tells a waiting user their place in the queue,
  and turns the result back into the piece or the composer's error.
- ``run_worker`` (``python -m bot worker``) is an arq ``Worker`` whose jobs run in the in-process pool
  (``bot.worker.Workers``: models loaded once per process, a broken pool restarted once). arq removes a
  job from the queue only when it has finished, so a worker killed mid-piece leaves it to be delivered
  again once its in-progress mark expires (the job's time limit plus ``REDELIVER_GRACE``); at most
  ``MAX_TRIES`` deliveries. Failed jobs are logged, kept by arq with their result for ``KEEP_RESULT``
  seconds, and listed in ``composer:failed`` (the last 1,000).
- ``RedisGate``: one piece at a time per user and the rate limit, as one Lua script.
- ``SharedChatOrder``: updates of one chat handled one at a time, in ``update_id`` order, across replicas.
- ``ClaimingStorage``: a replica that restarts takes over only the unanswered requests of replicas that
  are gone, never those another live replica is still making.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from arq import Worker, func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobStatus
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from telegram import Update

from bot.worker import (
    QUEUE_NOTICE_SECONDS,
    Admission,
    Busy,
    Overloaded,
    PerChatUpdateProcessor,
    RateLimited,
    WorkerLost,
    Workers,
    _chat_key,
)
from composer.compose import ComposeRequest
from composer.errors import ComposerError
from composer.melody import Melody
from composer.piece import MAX_PIECE_SECONDS, Piece

log = logging.getLogger(__name__)

QUEUE_NAME = "composer:pieces"
JOB_FUNCTION = "make_piece"
#: Deliveries of one job at most (the first and two more after a worker was lost).
MAX_TRIES = 3
#: A job is delivered again this long after its time limit when the worker that had it stopped answering.
REDELIVER_GRACE = 2.0
#: arq's own time limit on a job, past the pool's (which ends the piece first).
ARQ_EXTRA = 2.0
#: A piece no worker has started within this long is given up (no worker running, say).
WAIT_LIMIT = 600.0
FAILED_LIST = "composer:failed"
#: Seconds arq keeps a result the bot has not taken (the bot that asked is gone; its successor asks anew).
KEEP_RESULT = 600
RESULT_PREFIX = "arq:result:"
KEEP_FAILED = 1000
#: How long the bot keeps waiting through a Redis outage before it gives a piece up.
OUTAGE_LIMIT = 60.0
#: A waiting bot is woken by the worker when its piece is done; it looks at the job this often anyway (a
#: job Redis lost, a piece past its time limit).
WAKE_EVERY = 3
#: Live replicas look for requests of replicas that are gone this often, once they are this old.
TAKEOVER_EVERY = 30.0
TAKEOVER_AGE = 10.0
#: A replica's heartbeat; requests it owns are taken over once it has been silent this long.
ALIVE_TTL_MS = 15_000


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for ``url``, with commands retried through a short outage (a Redis restart)."""
    settings = RedisSettings.from_dsn(url)
    return dataclasses.replace(
        settings, conn_timeout=2, conn_retries=30, conn_retry_delay=1,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionError, OSError],
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 12),
    )


async def connect(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url), default_queue_name=QUEUE_NAME)


def _done_key(job_id: str) -> str:
    return f"composer:done:{job_id}"


# The worker side


async def make_piece_job(ctx: dict[str, Any], request: ComposeRequest, primer: Melody | None,
                         accompaniment: bool = True) -> tuple[str, Any]:
    """One piece in this worker's pool: ``("piece", Piece)``, or ``("error", ComposerError)`` for a
    request the composer refuses (an answer, not a failed job). Anything else fails the job."""
    workers: Workers = ctx["workers"]
    extra = {} if accompaniment else {"accompaniment": False}
    try:
        return "piece", await workers.run(request, primer, **extra)
    except ComposerError as exc:
        return "error", exc
    except asyncio.CancelledError:
        raise  # the worker is stopping: arq delivers the job again
    except Exception as exc:
        with contextlib.suppress(RedisError):
            record = json.dumps({"job": ctx.get("job_id"), "try": ctx.get("job_try"), "at": time.time(),
                                 "error": f"{type(exc).__name__}: {exc}"[:500]})
            await ctx["redis"].lpush(FAILED_LIST, record)
            await ctx["redis"].ltrim(FAILED_LIST, 0, KEEP_FAILED - 1)
        raise


async def _job_ended(ctx: dict[str, Any]) -> None:
    """After arq stored the result: wake the bot waiting for it."""
    with contextlib.suppress(RedisError):
        key = _done_key(ctx["job_id"])
        await ctx["redis"].rpush(key, b"1")
        await ctx["redis"].expire(key, 120)


def build_worker(redis_url: str, workers: Workers, jobs: int, timeout: float) -> Worker:
    return Worker(
        functions=[func(make_piece_job, name=JOB_FUNCTION)], queue_name=QUEUE_NAME,
        redis_settings=redis_settings(redis_url),
        max_jobs=jobs, job_timeout=timeout + ARQ_EXTRA, max_tries=MAX_TRIES, keep_result=KEEP_RESULT,
        poll_delay=0.1,
        ctx={"workers": workers}, after_job_end=_job_ended, handle_signals=False, log_results=False,
    )


def run_worker(redis_url: str, models_dir: Path, soundfont: Path | None, processes: int, timeout: float,
               max_seconds: float = MAX_PIECE_SECONDS) -> int:
    """``python -m bot worker``: take pieces from the queue until SIGTERM or SIGINT; through a Redis outage
    the worker waits and goes on."""

    async def main() -> None:
        workers = Workers(models_dir, soundfont, processes, max_queue=processes * 4, timeout=timeout,
                          max_seconds=max_seconds)
        workers.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set():
                worker = build_worker(redis_url, workers, processes, timeout)
                # A job is delivered again soon after its time limit if this worker stops answering.
                worker.in_progress_timeout_s = timeout + ARQ_EXTRA + REDELIVER_GRACE
                task = asyncio.ensure_future(worker.async_run())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    # Jobs still running are cancelled: arq leaves them on the queue for another worker.
                    for job in list(worker.tasks.values()):
                        job.cancel()
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(asyncio.gather(*worker.tasks.values(), return_exceptions=True),
                                               10)
                    with contextlib.suppress(BaseException):
                        await worker.close()
                    break
                stopping.cancel()
                exc = task.exception()
                log.error("the worker lost Redis (%s); starting again in 1 s", exc)
                with contextlib.suppress(BaseException):
                    await worker.close()
                await asyncio.sleep(1.0)
        finally:
            await _stop_pool(workers)

    logging.getLogger("arq").setLevel(logging.INFO)
    log.info("composer worker: %d process(es), queue %s", processes, QUEUE_NAME)
    asyncio.run(main())
    return 0


async def _stop_pool(workers: Workers, grace: float = 10.0) -> None:
    """Interrupt the pieces still running in the pool (SIGINT: they clean up their temporary files; their
    jobs are back on the queue already) and wait for the processes while the event loop still runs."""
    pool = workers._pool
    processes = list(getattr(pool, "_processes", {}).values()) if pool is not None else []
    workers.shutdown()
    for process in processes:
        with contextlib.suppress(ProcessLookupError, TypeError):
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # the pool's callbacks run on this loop


# The bot side


class QueueWorkers:
    """``bot.worker.Workers`` over the job queue: same ``run`` and errors, the pieces made elsewhere."""

    def __init__(self, redis_url: str, max_queue: int, timeout: float, *,
                 queue_notice: float = QUEUE_NOTICE_SECONDS, wait_limit: float = WAIT_LIMIT) -> None:
        self.redis_url = redis_url
        self.max_queue = max_queue
        self.timeout = timeout
        self.queue_notice = queue_notice
        self.wait_limit = wait_limit
        self.restarts = 0
        self.redis: ArqRedis | None = None
        self._notices: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.redis = await connect(self.redis_url)

    def start(self) -> None:
        """Nothing (``open`` connects): the pool's processes run elsewhere, as workers."""

    def shutdown(self) -> None:
        """Nothing (``close`` disconnects)."""

    async def close(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.close(close_connection_pool=True)
            self.redis = None

    async def run(self, request: ComposeRequest, primer: Melody | None = None, *,
                  on_queued: Callable[[int], Awaitable[object]] | None = None,
                  accompaniment: bool = True) -> Piece:
        if self.redis is None:
            raise RuntimeError("workers not started")
        redis = self.redis
        if await redis.zcard(QUEUE_NAME) >= self.max_queue:
            raise Overloaded
        job_id = uuid.uuid4().hex
        args = (request, primer, accompaniment)
        await self._enqueue(job_id, args)
        notice = None
        if on_queued is not None:
            notice = asyncio.get_running_loop().call_later(self.queue_notice, self._notify, job_id, on_queued)
        try:
            kind, value = await self._wait(job_id, args)
        finally:
            if notice is not None:
                notice.cancel()
            with contextlib.suppress(RedisError):  # the result (300 KB of audio and score) is taken
                await redis.delete(_done_key(job_id), RESULT_PREFIX + job_id)
        if kind == "error":
            raise value
        return value

    async def _enqueue(self, job_id: str, args: tuple[Any, ...]) -> None:
        assert self.redis is not None
        await self.redis.enqueue_job(JOB_FUNCTION, *args, _job_id=job_id, _queue_name=QUEUE_NAME,
                                     _expires=self.wait_limit)

    async def _wait(self, job_id: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        """The job's result; a job Redis lost (restarted without its data) is put on the queue again."""
        assert self.redis is not None
        redis = self.redis
        job = Job(job_id, redis, _queue_name=QUEUE_NAME)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait_limit
        started: float | None = None
        outage: float | None = None
        requeued = 0
        while True:
            try:
                info = await job.result_info()
                if info is None:
                    status = await job.status()
                outage = None
            except (RedisError, OSError) as exc:
                outage = outage or loop.time()
                if loop.time() - outage > OUTAGE_LIMIT:
                    raise WorkerLost from exc
                log.warning("Redis unavailable while piece %s waits: %s", job_id, exc)
                await asyncio.sleep(0.5)
                continue
            if info is not None:
                if info.success:
                    return info.result
                log.error("piece %s failed on try %s: %r", job_id, info.job_try, info.result)
                if isinstance(info.result, TimeoutError | ComposerError):
                    raise info.result
                raise WorkerLost
            now = loop.time()
            if status == JobStatus.in_progress:
                started = started or now
                if now - started > self.timeout + ARQ_EXTRA + REDELIVER_GRACE + 5:
                    raise TimeoutError
            else:
                started = None
            if status == JobStatus.not_found:
                if requeued >= 2:
                    raise WorkerLost
                requeued += 1
                log.warning("piece %s is no longer in Redis: queued again", job_id)
                await self._enqueue(job_id, args)
            elif now > give_up:
                raise TimeoutError
            with contextlib.suppress(RedisError, OSError):
                await redis.blpop([_done_key(job_id)], timeout=WAKE_EVERY)

    def _notify(self, job_id: str, on_queued: Callable[[int], Awaitable[object]]) -> None:
        async def tell() -> None:
            place = await self.place(job_id)
            if place is not None:
                await on_queued(place)

        task = asyncio.ensure_future(tell())
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def place(self, job_id: str) -> int | None:
        """1 if the job is the next to start, ``None`` if it is not waiting (started, done)."""
        assert self.redis is not None
        rank = await self.redis.zrank(QUEUE_NAME, job_id)
        if rank is None:
            return None
        ahead = await self.redis.zrange(QUEUE_NAME, 0, rank)
        async with self.redis.pipeline(transaction=False) as pipe:
            for other in ahead:
                pipe.exists(b"arq:in-progress:" + other)
            running = await pipe.execute()
        if running and running[-1]:
            return None  # this one has started
        return 1 + sum(1 for flag in running[:-1] if not flag)


# Admission across replicas

_ENTER = """
local busy, recent = KEYS[1], KEYS[2]
local token, limit, window_ms, ttl_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', busy) == 1 then return {-1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - window_ms)
  if redis.call('ZCARD', recent) >= limit then
    local oldest = redis.call('ZRANGE', recent, 0, 0, 'WITHSCORES')
    return {-2, tonumber(oldest[2]) + window_ms - now}
  end
  redis.call('ZADD', recent, now, token)
  redis.call('PEXPIRE', recent, window_ms)
end
redis.call('SET', busy, token, 'PX', ttl_ms)
return {1, 0}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisAdmission(Admission):
    def __init__(self, gate: RedisGate, user_id: int, token: str) -> None:
        self.gate = gate  # type: ignore[assignment]
        self.user_id = user_id
        self.token = token
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.gate._spawn(self.gate._release(self.user_id, self.token))


class RedisGate:
    """``bot.worker.Gate`` shared by every replica: one piece at a time per user (a busy mark that expires
    after ``hold`` seconds if the replica holding it dies), at most ``limit`` per ``window`` seconds."""

    def __init__(self, redis_url: str, limit: int, window: float, hold: float) -> None:
        self.redis_url = redis_url
        self.limit = limit
        self.window = window
        self.hold = hold
        self.redis: ArqRedis | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.redis = await connect(self.redis_url)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.close(close_connection_pool=True)
            self.redis = None

    def enter(self, user_id: int) -> Admission:
        raise TypeError("RedisGate is asynchronous: await gate.admit(user_id)")

    async def admit(self, user_id: int) -> Admission:
        assert self.redis is not None, "gate not started"
        token = uuid.uuid4().hex
        code, wait_ms = await self.redis.eval(
            _ENTER, 2, f"composer:busy:{user_id}", f"composer:recent:{user_id}", token, self.limit,
            int(self.window * 1000), int(self.hold * 1000))
        if int(code) == -1:
            raise Busy
        if int(code) == -2:
            raise RateLimited(max(0.0, int(wait_ms) / 1000))
        return RedisAdmission(self, user_id, token)

    async def _release(self, user_id: int, token: str) -> None:
        assert self.redis is not None
        try:
            await self.redis.eval(_RELEASE, 1, f"composer:busy:{user_id}", token)
        except RedisError as exc:  # the mark expires by itself
            log.warning("could not release user %s: %s", user_id, exc)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# Per-chat order across replicas


class SharedChatOrder(PerChatUpdateProcessor):
    """Updates of one chat one at a time in ``update_id`` order, whichever replica got them: each update is
    put in the chat's sorted set in Redis when it arrives and handled when it is the set's first. One whose
    turn does not come within ``turn_wait`` seconds (its replica died holding the turn) takes it. If Redis
    is unreachable, only this replica's own order is kept."""

    def __init__(self, redis_url: str, max_concurrent_updates: int, max_chat_backlog: int = 10,
                 on_dropped: Callable[[Update], Awaitable[object]] | None = None,
                 turn_wait: float = 15.0) -> None:
        super().__init__(max_concurrent_updates, max_chat_backlog, on_dropped)
        self.redis_url = redis_url
        self.turn_wait = turn_wait
        self.redis: ArqRedis | None = None

    async def initialize(self) -> None:
        if self.redis is None:
            self.redis = await connect(self.redis_url)

    async def shutdown(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.close(close_connection_pool=True)
            self.redis = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _chat_key(update)
        if key is None or self.redis is None or not isinstance(update, Update):
            await super().do_process_update(update, coroutine)
            return
        queue, member = f"composer:chat:{key}", str(update.update_id)
        shared = await self._call(self.redis.zadd(queue, {member: update.update_id}))
        if shared is not None:
            await self._call(self.redis.expire(queue, 3600))

        async def in_turn() -> None:
            if shared is not None:
                await self._wait_turn(queue, member)
            await coroutine

        wrapper = in_turn()
        try:
            await super().do_process_update(update, wrapper)
        finally:
            if inspect.iscoroutine(coroutine) and \
                    inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                coroutine.close()  # dropped (flood) before it ran
            if shared is not None:
                await self._call(self.redis.zrem(queue, member))

    async def _wait_turn(self, queue: str, member: str) -> None:
        assert self.redis is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.turn_wait
        pause = 0.01
        while True:
            head = await self._call(self.redis.zrange(queue, 0, 0))
            if not head or head[0].decode() == member:
                return
            if loop.time() > deadline:
                log.warning("update %s of %s waited %g s for update %s: going on", member, queue,
                            self.turn_wait, head[0].decode())
                await self._call(self.redis.zrem(queue, head[0]))
                deadline = loop.time() + self.turn_wait
            await asyncio.sleep(pause)
            pause = min(0.1, pause * 1.5)

    @staticmethod
    async def _call(awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable for chat order: %s", exc)
            return None


# Unanswered requests across replicas

_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return 0 end
if owner and redis.call('EXISTS', 'composer:alive:' .. owner) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', 172800)
return 1
"""


class ClaimingStorage:
    """The storage, with each request this replica starts marked as its own in Redis, so that a replica
    starting up takes over (``pending_requests``) only those of replicas that stopped sending heartbeats."""

    def __init__(self, storage: Any, redis_url: str) -> None:
        self._storage = storage
        self.redis_url = redis_url
        self.replica = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.redis: ArqRedis | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.min_age = TAKEOVER_AGE
        self.settle_seconds = 2 * ALIVE_TTL_MS / 1000
        #: Requests this replica is making: their owner marks are renewed with each heartbeat, so that a
        #: Redis that lost its data (restarted without it) has them back within seconds.
        self._mine: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    async def open(self) -> None:
        await self._storage.open()
        self.redis = await connect(self.redis_url)
        await self.redis.set(f"composer:alive:{self.replica}", b"1", px=ALIVE_TTL_MS)
        self._heartbeat = asyncio.create_task(self._beat(), name="replica-heartbeat")

    async def _heartbeat_stop(self) -> None:
        """Stop sending heartbeats and say so: other replicas may take over this one's requests."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.delete(f"composer:alive:{self.replica}")

    async def close(self) -> None:
        await self._heartbeat_stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.close(close_connection_pool=True)
            self.redis = None
        await self._storage.close()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(ALIVE_TTL_MS / 3000)
            with contextlib.suppress(RedisError, OSError):
                assert self.redis is not None
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(f"composer:alive:{self.replica}", b"1", px=ALIVE_TTL_MS)
                    for request_id in list(self._mine):
                        pipe.set(f"composer:owner:{request_id}", self.replica, ex=172800)
                    await pipe.execute()

    async def settled(self) -> bool:
        """Whether Redis has been up long enough for every live replica's marks to be back in it."""
        assert self.redis is not None
        info = await self.redis.info("server")
        return int(info.get("uptime_in_seconds", 0)) >= self.settle_seconds

    async def start_request(self, request: Any, primer: Melody | None = None) -> Any:
        stored = await self._storage.start_request(request, primer)
        self._mine.add(stored.id)
        with contextlib.suppress(RedisError, OSError):
            assert self.redis is not None
            await self.redis.set(f"composer:owner:{stored.id}", self.replica, ex=172800)
        return stored

    async def finish_request(self, request_id: int, error: str | None = None) -> None:
        await self._storage.finish_request(request_id, error)
        self._mine.discard(request_id)
        with contextlib.suppress(RedisError, OSError):
            assert self.redis is not None
            await self.redis.delete(f"composer:owner:{request_id}")

    async def pending_requests(self) -> list[Any]:
        """The unanswered requests no live replica is making (and at least ``TAKEOVER_AGE`` seconds old,
        so one a live replica has just written is never taken), now claimed by this one."""
        assert self.redis is not None
        if not await self.settled():
            log.warning("Redis restarted moments ago: requests of replicas that are gone wait a round")
            return []
        mine = []
        now = time.time()
        for request in await self._storage.pending_requests():
            if now - request.created_at < self.min_age:
                continue
            if await self.redis.eval(_CLAIM, 1, f"composer:owner:{request.id}", self.replica):
                mine.append(request)
                self._mine.add(request.id)
        return mine
