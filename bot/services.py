"""What every handler needs: the services, reached through a typed callback context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.config import Config
from bot.i18n import pick_language
from bot.settings import InvalidValue, Settings, parse_style
from bot.storage import Storage
from bot.worker import Gate, PerChatUpdateProcessor, Workers

KEY = "services"


@dataclass
class Services:
    config: Config
    storage: Storage
    workers: Workers
    gate: Gate
    #: Style name -> its one-line (English) description, in menu order.
    styles: dict[str, str]
    updates: PerChatUpdateProcessor | None = None
    #: Style name -> the metres it can be asked for (``"6/8"``), most common first.
    metres: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def style_of(self, settings: Settings) -> str:
        """The user's style, or the default one if they chose none or theirs has no model any more."""
        if settings.style:
            try:
                return parse_style(settings.style, list(self.styles))
            except InvalidValue:
                pass
        return self.config.default_style


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """The callback context of this bot: ``context.services`` instead of lookups in ``bot_data``."""

    @property
    def services(self) -> Services:
        return services_of(self.application)


CONTEXT_TYPES = ContextTypes(context=BotContext)


def services_of(app: Application[Any, Any, Any, Any, Any, Any]) -> Services:
    return app.bot_data[KEY]


def requester_id(update: Update) -> int | None:
    """Who asks, for settings, admission and rate limits: the user, or, for a message an anonymous
    group admin or a channel sent (Telegram gives all of those one shared sender), the chat it speaks
    for."""
    message = update.effective_message
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id
    return update.effective_user.id if update.effective_user is not None else None


async def user_context(update: Update, context: BotContext) -> tuple[Services, Settings, str]:
    """The services, the requester's settings, and the language to answer in."""
    found = context.services
    user = update.effective_user
    who = requester_id(update)
    settings = await found.storage.get_settings(who) if who is not None else Settings()
    return found, settings, pick_language(settings.language, user.language_code if user else None)
