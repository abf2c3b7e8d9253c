"""Build the Application: storage and workers live from ``post_init`` to ``post_shutdown``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot import scale
from bot.config import Config
from bot.handlers import register
from bot.i18n import COMMANDS, pick_language, t
from bot.recovery import recover, register_recovery
from bot.services import CONTEXT_TYPES, KEY, Services, services_of
from bot.storage import Storage
from bot.worker import Gate, Workers

log = logging.getLogger(__name__)

#: Updates handled at once (each is short: the long work runs in worker processes).
CONCURRENT_UPDATES = 64
#: How often old pieces are deleted (``RETENTION_DAYS``), the first time at start-up.
CLEANUP_EVERY = 6 * 3600.0


class RedactingFormatter(logging.Formatter):
    """Formats records, then replaces every occurrence of the secrets (the bot token) with a marker."""

    def __init__(self, secrets: list[str], fmt: str) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text


def setup_logging(config: Config) -> None:
    """Log to stderr with the token redacted; httpx and httpcore (which log request URLs, token included)
    and aiosqlite (every statement) only warn."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter([config.token, config.webhook_secret],
                                            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=config.log_level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _cleanup_loop(found: Services) -> None:
    while True:
        try:
            await found.storage.cleanup(found.config.retention_days)
        except Exception:  # a failed clean-up must not stop the bot; the next one tries again
            log.exception("retention clean-up failed")
        await asyncio.sleep(CLEANUP_EVERY)


async def _post_init(app: Application) -> None:
    found = services_of(app)
    await found.storage.open()
    found.workers.start()
    if found.config.retention_days > 0:
        app.bot_data["cleanup"] = asyncio.create_task(_cleanup_loop(found), name="retention")
    await recover(app)
    for language, index in ((None, 0), ("ru", 1)):
        await app.bot.set_my_commands(
            [BotCommand(name, texts[index]) for name, texts in COMMANDS.items()], language_code=language
        )
    log.info("bot @%s ready with styles: %s", app.bot.username, ", ".join(found.styles))


async def _post_shutdown(app: Application) -> None:
    found = services_of(app)
    cleanup = app.bot_data.pop("cleanup", None)
    if cleanup is not None:
        cleanup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cleanup
    found.workers.shutdown()
    await found.storage.close()


def build_application(config: Config, styles: dict[str, str],
                      metres: dict[str, tuple[str, ...]] | None = None) -> Application:
    """The bot for ``config``, offering ``styles`` (name -> description)."""
    updates = scale.update_processor(config, CONCURRENT_UPDATES)
    app = (
        ApplicationBuilder()
        .token(config.token)
        .base_url(config.base_url)
        .base_file_url(config.base_file_url)
        .context_types(CONTEXT_TYPES)
        .concurrent_updates(updates)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )

    async def flood_notice(update: Update) -> None:
        """Once per burst: the chat sent more at once than the bot queues for one chat."""
        user = update.effective_user
        try:
            await app.bot.send_message(update.effective_chat.id,
                                       t(pick_language(None, user.language_code if user else None), "flood"))
        except TelegramError as exc:
            log.warning("could not tell a flooding chat: %s", exc)

    updates.on_dropped = flood_notice
    app.bot_data[KEY] = Services(
        config=config,
        storage=Storage(config.database_path),
        workers=Workers(config.models_dir, config.soundfont, config.workers, config.max_queue,
                        config.job_timeout, max_seconds=config.max_piece_seconds),
        gate=Gate(config.rate_limit, config.rate_window),
        styles=styles,
        updates=updates,
        metres=metres or {},
    )
    scale.install(app, config)
    register(app)
    register_recovery(app)
    return app
