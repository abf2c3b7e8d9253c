"""After a restart, every request the last run left unanswered is made again once, or apologised for.

A request is ``pending`` from before its work starts until its replies are sent, so a bot killed in
between (SIGKILL, power loss) finds it at the next start. A recent one is made again, its row marked
``resumed`` first so that a request that itself brings the bot down is tried only once; a second
interruption, one older than ``RESUME_WITHIN``, or a seed file that was still downloading gets an
apology that asks the user to try again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler

from bot.i18n import t
from bot.jobs import Ask, compose_and_send
from bot.services import KEY, Services, services
from bot.storage import Request
from bot.worker import Busy, RateLimited

log = logging.getLogger(__name__)

#: Older unanswered requests are apologised for rather than answered out of the blue.
RESUME_WITHIN = 3600.0
RESUMED = "resumed"


@dataclass(frozen=True)
class Resume:
    """A custom update on the application's queue: make ``request`` again."""

    request: Request


async def recover(app: Application) -> None:
    """Queue the unanswered requests to be made again, or apologise for them (call from ``post_init``)."""
    found: Services = app.bot_data[KEY]
    pending = await found.storage.pending_requests()
    if pending:
        log.warning("%d request(s) were left unanswered by the last run", len(pending))
    for request in pending:
        lost_seed = request.kind == "seed" and request.primer_midi is None  # killed while downloading it
        if lost_seed or request.error == RESUMED or time.time() - request.created_at > RESUME_WITHIN:
            await _apologise(app, found, request)
        else:
            await found.storage.mark_pending(request.id, RESUMED)
            await app.update_queue.put(Resume(request))


async def _apologise(app: Application, found: Services, request: Request) -> None:
    try:
        await app.bot.send_message(request.chat_id, t(request.language, "interrupted"))
    except TelegramError as exc:  # the user blocked the bot, say: the request is closed all the same
        log.warning("could not tell chat %s about request %s: %s", request.chat_id, request.id, exc)
    await found.storage.finish_request(request.id, error="interrupted")


async def resume(update: Resume, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say why the piece comes late, then make it in the background like a fresh one."""
    found, request = services(context), update.request
    try:
        found.gate.enter(request.user_id)
    except (Busy, RateLimited):
        await _apologise(context.application, found, request)
        return
    ask = Ask(user_id=request.user_id, chat_id=request.chat_id, message_id=request.message_id,
              language=request.language, kind=request.kind, params=request.params,
              primer_midi=request.primer_midi, parent_id=request.parent_id)
    context.application.create_task(_remake(context.bot, found, ask, request), update=update)


async def _remake(bot: Bot, found: Services, ask: Ask, request: Request) -> None:
    """The notice, then the piece; the error handler cannot apologise for a ``Resume``, so this does."""
    try:
        await bot.send_message(ask.chat_id, t(ask.language, "resumed"))
        await compose_and_send(bot, found, ask, request)
    except Exception:
        found.gate.leave(ask.user_id)
        with contextlib.suppress(TelegramError):
            await bot.send_message(ask.chat_id, t(ask.language, "error"))
        raise


def register_recovery(app: Application) -> None:
    app.add_handler(TypeHandler(Resume, resume))
