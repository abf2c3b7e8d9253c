"""Build the Application: storage and workers live from ``post_init`` to ``post_shutdown``."""

from __future__ import annotations

import logging

from telegram import BotCommand
from telegram.ext import Application, ApplicationBuilder

from bot.config import Config
from bot.handlers import register
from bot.i18n import COMMANDS
from bot.recovery import recover, register_recovery
from bot.services import KEY, Services
from bot.storage import Storage
from bot.worker import Gate, PerChatUpdateProcessor, Workers

log = logging.getLogger(__name__)

#: Updates handled at once (each is short: the long work runs in worker processes).
CONCURRENT_UPDATES = 64


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


async def _post_init(app: Application) -> None:
    found: Services = app.bot_data[KEY]
    await found.storage.open()
    found.workers.start()
    await recover(app)
    for language, index in ((None, 0), ("ru", 1)):
        await app.bot.set_my_commands(
            [BotCommand(name, texts[index]) for name, texts in COMMANDS.items()], language_code=language
        )
    log.info("bot @%s ready with styles: %s", app.bot.username, ", ".join(found.styles))


async def _post_shutdown(app: Application) -> None:
    found: Services = app.bot_data[KEY]
    found.workers.shutdown()
    await found.storage.close()


def build_application(config: Config, styles: dict[str, str]) -> Application:
    """The bot for ``config``, offering ``styles`` (name -> description)."""
    app = (
        ApplicationBuilder()
        .token(config.token)
        .base_url(config.base_url)
        .base_file_url(config.base_file_url)
        .concurrent_updates(PerChatUpdateProcessor(CONCURRENT_UPDATES))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    app.bot_data[KEY] = Services(
        config=config,
        storage=Storage(config.database_path),
        workers=Workers(config.models_dir, config.soundfont, config.workers, config.max_queue,
                        config.job_timeout),
        gate=Gate(config.rate_limit, config.rate_window),
        styles=styles,
    )
    register(app)
    register_recovery(app)
    return app
