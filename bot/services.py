"""What every handler needs, kept in ``application.bot_data``."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Update
from telegram.ext import ContextTypes

from bot.config import Config
from bot.i18n import pick_language
from bot.settings import InvalidValue, Settings, parse_style
from bot.storage import Storage
from bot.worker import Gate, Workers

KEY = "services"


@dataclass
class Services:
    config: Config
    storage: Storage
    workers: Workers
    gate: Gate
    #: Style name -> its one-line (English) description, in menu order.
    styles: dict[str, str]

    def style_of(self, settings: Settings) -> str:
        """The user's style, or the default one if they chose none or theirs has no model any more."""
        if settings.style:
            try:
                return parse_style(settings.style, list(self.styles))
            except InvalidValue:
                pass
        return self.config.default_style


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data[KEY]


async def user_context(update: Update, context: ContextTypes.DEFAULT_TYPE) -> tuple[Services, Settings, str]:
    """The services, the user's settings, and the language to answer in."""
    found = services(context)
    user = update.effective_user
    settings = await found.storage.get_settings(user.id) if user else Settings()
    return found, settings, pick_language(settings.language, user.language_code if user else None)
