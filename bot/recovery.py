"""After a restart, every request the last run left unanswered is made again once, or apologised for.

A request is ``pending`` from before its work starts until its replies are sent, so a bot killed in
between (SIGKILL, power loss) finds it at the next start. A recent one is made again, its row marked
``resumed`` first so that a request that itself brings the bot down is tried only once; a second
interruption, one older than ``RESUME_WITHIN``, or a seed file that was still downloading gets an
apology that asks the user to try again. Both go on the update queue as custom updates, so nothing is
sent before the bot runs; an apology that cannot be sent for now (network) stays pending for the next
start, and only one to a chat that cannot be reached (blocked, deleted) is closed unsent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from telegram import Bot
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, TypeHandler

from bot.i18n import t
from bot.jobs import compose_and_send
from bot.services import BotContext, Services, services_of
from bot.storage import PieceRequest
from bot.worker import Admission, Busy, RateLimited

log = logging.getLogger(__name__)

#: Older unanswered requests are apologised for rather than answered out of the blue.
RESUME_WITHIN = 3600.0
RESUMED = "resumed"
#: Tries to send an apology (with a growing pause) before leaving it for the next start.
APOLOGY_TRIES = 3


@dataclass(frozen=True)
class Resume:
    """A custom update on the application's queue: make ``request`` again."""

    request: PieceRequest


@dataclass(frozen=True)
class Apologise:
    """A custom update on the application's queue: tell the user ``request`` is lost."""

    request: PieceRequest


async def recover(app: Application) -> None:
    """Queue the unanswered requests to be made again, or apologised for (call from ``post_init``)."""
    found = services_of(app)
    pending = await found.storage.pending_requests()
    if pending:
        log.warning("%d request(s) were left unanswered by the last run", len(pending))
    for request in pending:
        assert request.id is not None
        lost_seed = request.kind == "seed" and request.primer_id is None  # killed while downloading it
        if lost_seed or request.error == RESUMED or time.time() - request.created_at > RESUME_WITHIN:
            await app.update_queue.put(Apologise(request))
        else:
            await found.storage.mark_pending(request.id, RESUMED)
            await app.update_queue.put(Resume(request))


async def apologise(found: Services, bot: Bot, request: PieceRequest, pause: float = 2.0) -> bool:
    """Tell the user the request is lost and close it; ``False`` (still pending) if it could not be
    sent for now."""
    assert request.id is not None
    for attempt in range(APOLOGY_TRIES):
        try:
            await bot.send_message(request.chat_id, t(request.language, "interrupted"))
        except (Forbidden, BadRequest) as exc:  # blocked, or the chat is gone: it never will be sent
            log.warning("chat %s cannot be told about request %s: %s", request.chat_id, request.id, exc)
            await found.storage.finish_request(request.id, error="undeliverable")
            return True
        except TelegramError as exc:
            log.warning("could not tell chat %s about request %s (try %d): %s", request.chat_id,
                        request.id, attempt + 1, exc)
            await asyncio.sleep(pause * (attempt + 1))
            continue
        await found.storage.finish_request(request.id, error="interrupted")
        return True
    return False


async def _apologise_update(update: Apologise, context: BotContext) -> None:
    context.application.create_task(apologise(context.services, context.bot, update.request), update=update)


async def resume(update: Resume, context: BotContext) -> None:
    """Say why the piece comes late, then make it in the background like a fresh one."""
    found, request = context.services, update.request
    try:
        admission = await found.gate.admit(request.user_id)
    except (Busy, RateLimited):
        context.application.create_task(apologise(found, context.bot, request), update=update)
        return
    context.application.create_task(_remake(context.bot, found, request, admission), update=update)


async def _remake(bot: Bot, found: Services, request: PieceRequest, admission: Admission) -> None:
    """The notice, then the piece; any error goes to the error handler, which apologises."""
    try:
        try:
            await bot.send_message(request.chat_id, t(request.language, "resumed"))
        except TelegramError as exc:
            log.warning("could not say why request %s comes late: %s", request.id, exc)
        await compose_and_send(bot, found, request, admission)
    finally:
        admission.release()


def register_recovery(app: Application) -> None:
    app.add_handler(TypeHandler(Resume, resume))
    app.add_handler(TypeHandler(Apologise, _apologise_update))
