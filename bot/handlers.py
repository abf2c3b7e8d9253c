"""Update handlers: commands, settings, uploads, buttons, and the one error handler."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import keyboards
from bot.i18n import COMMANDS, pick_language, style_description, t
from bot.jobs import MAX_SEED_BYTES, submit
from bot.recovery import Resume
from bot.services import BotContext, Services, requester_id, user_context
from bot.settings import (
    BARS_RANGE,
    TEMPERATURE_RANGE,
    TEMPO_RANGE,
    InvalidValue,
    Settings,
    parse_accompaniment,
    parse_bars,
    parse_key,
    parse_language,
    parse_metre,
    parse_style,
    parse_temperature,
    parse_tempo,
)
from bot.storage import PieceRequest
from composer.errors import ComposerError
from composer.instruments import instrument_name, program_for

log = logging.getLogger(__name__)

AUTO = "auto"
#: What a user typed is echoed back at most this long.
MAX_ECHO = 64


async def check_access(update: Update, context: BotContext) -> None:
    """Stop updates from users outside ``ALLOWED_USER_IDS`` (when it is set), with a polite word."""
    allowed = context.services.config.allowed_user_ids
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed) or requester_id(update) in allowed:
        return
    lang = pick_language(None, user.language_code if user else None)
    if update.callback_query is not None:
        await update.callback_query.answer(t(lang, "not_allowed"))
    elif update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, t(lang, "not_allowed"))
    raise ApplicationHandlerStop


def _metre_list(found: Services) -> str:
    """``classical 4/4, 3/4; celtic 2/2, 6/8, ...``: the metres each style can be asked for."""
    return "; ".join(f"{name} {', '.join(metres)}" for name, metres in found.metres.items())


def _style_list(found: Services, lang: str) -> str:
    return "\n".join(f"• {name}: {style_description(name, lang, d)}" for name, d in found.styles.items())


async def start(update: Update, context: BotContext) -> None:
    found, _, lang = await user_context(update, context)
    name = update.effective_user.first_name if update.effective_user else ""
    text = f"{t(lang, 'start', name=name)}\n\n{t(lang, 'styles_header')}\n{_style_list(found, lang)}"
    keyboard = keyboards.styles_keyboard(list(found.styles))
    await update.effective_message.reply_text(text, reply_markup=keyboard)


async def help_command(update: Update, context: BotContext) -> None:
    found, _, lang = await user_context(update, context)
    await update.effective_message.reply_text(t(
        lang, "help", styles=", ".join(found.styles), t_low=TEMPERATURE_RANGE[0], t_high=TEMPERATURE_RANGE[1],
        b_low=BARS_RANGE[0], b_high=BARS_RANGE[1], tempo_low=TEMPO_RANGE[0], tempo_high=TEMPO_RANGE[1],
        metres=_metre_list(found),
    ))


def _params(found: Services, settings: Settings, style: str | None = None) -> dict[str, Any]:
    return {"style": style or found.style_of(settings), "bars": settings.bars,
            "temperature": settings.temperature, "tempo": settings.tempo, "instrument": settings.instrument,
            "accompaniment": settings.accompaniment, "key": settings.key, "metre": settings.metre}


def _request(update: Update, lang: str, kind: str, params: dict[str, Any], **extra: Any) -> PieceRequest:
    message = update.effective_message
    who = requester_id(update)
    assert who is not None
    return PieceRequest(user_id=who, chat_id=update.effective_chat.id,
                        message_id=message.message_id if message and not update.callback_query else None,
                        language=lang, kind=kind, params=params, **extra)


async def compose_command(update: Update, context: BotContext) -> None:
    found, settings, lang = await user_context(update, context)
    style = None
    if context.args:
        try:
            style = _parse_style(" ".join(context.args), found)
        except InvalidValue as exc:
            await update.effective_message.reply_text(_invalid(lang, exc, found))
            return
    await submit(update, context, _request(update, lang, "compose", _params(found, settings, style)))


def clip(text: object, limit: int = MAX_ECHO) -> str:
    """``text`` as it is echoed back: at most ``limit`` characters, so a reply always fits."""
    shown = str(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _invalid(lang: str, exc: InvalidValue, found: Services) -> str:
    fields = {name: clip(value) for name, value in exc.fields.items()}
    return t(lang, exc.key, styles=", ".join(found.styles), **fields)


def _parse_instrument(text: str) -> str:
    if not text.isascii():  # "²".isdigit() is true, and every General MIDI name is ASCII
        raise InvalidValue("bad_instrument", value=text)
    try:
        return instrument_name(program_for(text))
    except ComposerError:
        raise InvalidValue("bad_instrument", value=text) from None


def _shown(found: Services, settings: Settings, lang: str, name: str, telegram_code: str | None) -> str:
    """A setting's current value as the user reads it."""
    value = getattr(settings, name)
    if name == "style":
        return found.style_of(settings)
    if name == "accompaniment":
        return t(lang, "value_on" if value else "value_off")
    if value is None and name in ("tempo", "instrument", "key", "metre"):
        return t(lang, f"auto_{name}")
    if name == "language":
        shown = t(pick_language(value, telegram_code), "language_name")
        return shown if value else t(lang, "auto_language", value=shown)
    return str(value)


def _parse_style(text: str, found: Services) -> str:
    return parse_style(text.replace(" ", ""), list(found.styles))


#: Setting name -> (parser of a typed value, range for the "show" message).
SETTERS: dict[str, tuple[Callable[[str, Services], Any], tuple[object, object]]] = {
    "style": (_parse_style, ("", "")),
    "temperature": (lambda text, _: parse_temperature(text), TEMPERATURE_RANGE),
    "bars": (lambda text, _: parse_bars(text), BARS_RANGE),
    "tempo": (lambda text, _: parse_tempo(text), TEMPO_RANGE),
    "instrument": (lambda text, _: _parse_instrument(text), ("", "")),
    "language": (lambda text, _: parse_language(text), ("", "")),
    "accompaniment": (lambda text, _: parse_accompaniment(text), ("", "")),
    "key": (lambda text, _: parse_key(text), ("", "")),
    "metre": (lambda text, _: parse_metre(text), ("", "")),
}
#: Settings that take ``auto`` for "back to the default".
AUTO_SETTINGS = ("tempo", "instrument", "language", "key", "metre")


def setting_command(name: str) -> Callable[[Update, BotContext], Awaitable[None]]:
    """``/NAME VALUE`` saves a validated value; ``/NAME`` shows the value and what is allowed."""

    async def handler(update: Update, context: BotContext) -> None:
        found, settings, lang = await user_context(update, context)
        user = update.effective_user
        reply = update.effective_message.reply_text
        text = " ".join(context.args or []).strip()
        parse, (low, high) = SETTERS[name]
        if not text:
            await reply(t(lang, f"show_{name}", value=_shown(found, settings, lang, name, user.language_code),
                          low=low, high=high, styles=", ".join(found.styles), metres=_metre_list(found)))
            return
        try:
            value = None if text.lower() == AUTO and name in AUTO_SETTINGS else parse(text, found)
        except InvalidValue as exc:
            await reply(_invalid(lang, exc, found))
            return
        settings = await found.storage.update_settings(requester_id(update), **{name: value})
        lang = pick_language(settings.language, user.language_code)
        await reply(t(lang, "saved", setting=t(lang, f"name_{name}"),
                      value=_shown(found, settings, lang, name, user.language_code)))

    return handler


async def settings_command(update: Update, context: BotContext) -> None:
    found, settings, lang = await user_context(update, context)
    code = update.effective_user.language_code
    shown = {n: _shown(found, settings, lang, n, code)
             for n in ("style", "temperature", "bars", "tempo", "instrument", "language", "accompaniment",
                       "key", "metre")}
    await update.effective_message.reply_text(t(lang, "settings", **shown))


async def reset_command(update: Update, context: BotContext) -> None:
    found = context.services
    user = update.effective_user
    await found.storage.reset_settings(requester_id(update))
    await update.effective_message.reply_text(t(pick_language(None, user.language_code), "reset_done"))


async def document(update: Update, context: BotContext) -> None:
    """A document is a seed: refuse big files before downloading, let the composer judge the rest."""
    found, settings, lang = await user_context(update, context)
    doc = update.effective_message.document
    if doc.file_size is not None and doc.file_size > MAX_SEED_BYTES:
        await update.effective_message.reply_text(t(lang, "midi_too_large", limit=MAX_SEED_BYTES // 1024))
        return
    request = _request(update, lang, "seed", _params(found, settings))
    await submit(update, context, request, file_id=doc.file_id)


def media_reply(key: str) -> Callable[[Update, BotContext], Awaitable[None]]:
    """A handler that answers a message the bot cannot use with the text ``key``."""

    async def handler(update: Update, context: BotContext) -> None:
        _, _, lang = await user_context(update, context)
        await update.effective_message.reply_text(t(lang, key))

    return handler


#: Callback data of each button (``[0-9]``, not ``\d``: "²" is a digit to Python; at most 18 digits, as
#: SQLite's integers end at 2**63).
PIECE_BUTTON = rf"^({keyboards.AGAIN}|{keyboards.CONTINUE}):([0-9]{{1,18}})$"
STYLE_BUTTON = rf"^{keyboards.STYLE}:(.+)$"
STYLES_BUTTON = rf"^{keyboards.STYLES}$"


async def styles_button(update: Update, context: BotContext) -> None:
    found, _, lang = await user_context(update, context)
    await update.callback_query.answer()
    await context.bot.send_message(update.effective_chat.id, t(lang, "choose_style"),
                                   reply_markup=keyboards.styles_keyboard(list(found.styles)))


async def style_button(update: Update, context: BotContext) -> None:
    query = update.callback_query
    found, settings, lang = await user_context(update, context)
    style = context.matches[0].group(1) if context.matches else ""
    if style not in found.styles:
        await query.answer(t(lang, "unknown_style", value=clip(style), styles=", ".join(found.styles)))
        return
    await found.storage.update_settings(requester_id(update), style=style)
    await query.answer(t(lang, "style_chosen", style=style))
    await submit(update, context, _request(update, lang, "compose", _params(found, settings, style)))


async def piece_button(update: Update, context: BotContext) -> None:
    """"Another one" (same settings and seed melody) or "Continue" (this piece as the seed)."""
    query = update.callback_query
    found, _, lang = await user_context(update, context)
    match = context.matches[0] if context.matches else None
    composition = await found.storage.get_composition(int(match.group(2))) if match else None
    if match is None or composition is None or composition.request.chat_id != update.effective_chat.id:
        await query.answer(t(lang, "gone"), show_alert=True)
        return
    await query.answer()
    source = composition.request
    if match.group(1) == keyboards.AGAIN:
        request = _request(update, lang, "again", source.params, primer_id=source.primer_id,
                           parent_id=source.parent_id)
        await submit(update, context, request)
    else:
        request = _request(update, lang, "continue", source.params, parent_id=composition.id)
        await submit(update, context, request, primer_midi=composition.midi)


async def stale_button(update: Update, context: BotContext) -> None:
    """A button this bot does not (or no longer) make."""
    _, _, lang = await user_context(update, context)
    await update.callback_query.answer(t(lang, "gone"))


async def on_error(update: object, context: BotContext) -> None:
    """The one error handler, for updates and for the background work they started (a piece made
    again after a restart included): log the error and, if a person is waiting, apologise in their
    language."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Resume):
        chat_id, lang = update.request.chat_id, update.request.language
        query = None
    elif isinstance(update, Update) and update.effective_chat is not None:
        chat_id, query = update.effective_chat.id, update.callback_query
        user = update.effective_user
        lang = pick_language(None, user.language_code if user else None)
    else:
        return
    try:
        if isinstance(update, Update) and (who := requester_id(update)) is not None:
            user = update.effective_user
            lang = pick_language((await context.services.storage.get_settings(who)).language,
                                 user.language_code if user else None)
        if query is not None:
            await query.answer()
        await context.bot.send_message(chat_id, t(lang, "error"))
    except Exception as exc:  # the apology itself failed: the log above already has the cause
        log.warning("could not apologise to chat %s: %s", chat_id, exc)


def register(app: Application) -> None:
    """Every handler, in order; edited messages are ignored so an edit never composes twice."""
    new = filters.UpdateType.MESSAGE
    app.add_handler(TypeHandler(Update, check_access), group=-1)
    commands = {"start": start, "help": help_command, "compose": compose_command,
                **{name: setting_command(name) for name in SETTERS},
                "settings": settings_command, "reset": reset_command}
    if set(commands) != set(COMMANDS):
        raise RuntimeError("the command menu and the handlers differ")
    for name, callback in commands.items():
        app.add_handler(CommandHandler(name, callback, filters=new))
    app.add_handler(MessageHandler(new & filters.Document.ALL, document))
    app.add_handler(MessageHandler(new & filters.PHOTO, media_reply("photo")))
    sound = filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE
    app.add_handler(MessageHandler(new & sound, media_reply("voice")))
    app.add_handler(MessageHandler(new & filters.COMMAND, media_reply("unknown_command")))
    app.add_handler(MessageHandler(new & filters.TEXT, media_reply("text_hint")))
    app.add_handler(MessageHandler(new, media_reply("other_media")))
    app.add_handler(CallbackQueryHandler(piece_button, pattern=re.compile(PIECE_BUTTON)))
    app.add_handler(CallbackQueryHandler(style_button, pattern=re.compile(STYLE_BUTTON)))
    app.add_handler(CallbackQueryHandler(styles_button, pattern=re.compile(STYLES_BUTTON)))
    app.add_handler(CallbackQueryHandler(stale_button))
    app.add_error_handler(on_error)

