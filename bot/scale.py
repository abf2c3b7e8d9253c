"""Switches the bot to scale mode by environment alone (``REDIS_URL``, ``DATABASE_URL``); without either
it leaves the embedded default (in-process pool, SQLite) exactly as it is and imports neither arq nor
asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from telegram.ext import Application

from bot.config import Config
from bot.services import services_of
from bot.worker import PerChatUpdateProcessor

log = logging.getLogger(__name__)


def update_processor(config: Config, concurrent_updates: int) -> PerChatUpdateProcessor:
    """Per-chat order within this process, or across every replica when ``REDIS_URL`` is set."""
    if config.redis_url:
        from bot.queue import SharedChatOrder

        return SharedChatOrder(config.redis_url, concurrent_updates, config.max_chat_backlog)
    return PerChatUpdateProcessor(concurrent_updates, config.max_chat_backlog)


def storage_for(config: Config) -> Any:
    if config.database_url:
        from bot.pg_storage import PgStorage

        return PgStorage(config.database_url)
    from bot.storage import Storage

    return Storage(config.database_path)


def install(app: Application, config: Config) -> None:
    """Replace the services that scale mode shares between replicas; call after ``Services`` exist."""
    if not (config.redis_url or config.database_url):
        return
    found = services_of(app)
    found.storage = storage_for(config)
    if not config.redis_url:
        return
    from bot.queue import ClaimingStorage, QueueWorkers, RedisGate

    found.storage = ClaimingStorage(found.storage, config.redis_url)
    queue = QueueWorkers(config.redis_url, config.max_queue, config.job_timeout)
    gate = RedisGate(config.redis_url, config.rate_limit, config.rate_window, hold=config.job_timeout + 60)
    found.workers = queue  # type: ignore[assignment]
    found.gate = gate  # type: ignore[assignment]
    post_init, post_shutdown = app.post_init, app.post_shutdown

    async def start(app: Application) -> None:
        await queue.open()
        await gate.start()
        if post_init is not None:
            await post_init(app)
        app.bot_data["takeover"] = asyncio.create_task(_take_over(app), name="takeover")

    async def stop(app: Application) -> None:
        takeover = app.bot_data.pop("takeover", None)
        if takeover is not None:
            takeover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await takeover
        if post_shutdown is not None:
            result = post_shutdown(app)
            if inspect.isawaitable(result):
                await result
        await queue.close()
        await gate.close()

    app.post_init = start
    app.post_shutdown = stop
    log.info("scale mode: pieces go on the Redis queue%s",
             ", storage in PostgreSQL" if config.database_url else "")


async def _take_over(app: Application) -> None:
    """Now and then, make again (or apologise for) the requests of replicas that died while this one
    runs, as a restarted replica does at start-up (``bot.recovery``)."""
    from bot.queue import TAKEOVER_EVERY
    from bot.recovery import recover

    while True:
        await asyncio.sleep(TAKEOVER_EVERY)
        try:
            await recover(app)  # ClaimingStorage.pending_requests: only what no live replica makes
        except Exception as exc:  # Redis or the database away for now: the next round tries again
            log.warning("could not look for requests of replicas that are gone: %s", exc)
