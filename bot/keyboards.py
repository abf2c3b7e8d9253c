"""Inline keyboards and their callback data (at most 64 bytes, checked here)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import t

AGAIN = "again"
CONTINUE = "cont"
STYLES = "styles"
STYLE = "style"
MAX_CALLBACK_BYTES = 64


def callback(*parts: object) -> str:
    data = ":".join(str(p) for p in parts)
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def parse_callback(data: str | None) -> tuple[str, str]:
    """``(action, argument)``; the argument is empty for actions without one."""
    action, _, argument = (data or "").partition(":")
    return action, argument


def result_keyboard(lang: str, composition_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton(t(lang, "btn_again"), callback_data=callback(AGAIN, composition_id)),
        InlineKeyboardButton(t(lang, "btn_continue"), callback_data=callback(CONTINUE, composition_id)),
    ], [
        InlineKeyboardButton(t(lang, "btn_style"), callback_data=callback(STYLES)),
    ]])


def styles_keyboard(styles: list[str], per_row: int = 2) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(name, callback_data=callback(STYLE, name)) for name in styles]
    return InlineKeyboardMarkup([buttons[i : i + per_row] for i in range(0, len(buttons), per_row)])
