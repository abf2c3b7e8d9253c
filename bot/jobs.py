"""One piece from start to finish: admission, the pending row, the worker, the replies, the history."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, InputFile, Update
from telegram.constants import ChatAction
from telegram.ext import ContextTypes

from bot.i18n import TEXTS, t
from bot.keyboards import result_keyboard
from bot.services import Services, services
from bot.storage import Request
from bot.worker import Busy, Job, Overloaded, RateLimited, repeating, retry_seconds
from composer.compose import ComposeRequest
from composer.errors import ComposerError, MidiError
from composer.piece import Piece
from composer.style_mix import mix_label

log = logging.getLogger(__name__)

#: Seed files larger than this are refused before they are downloaded.
MAX_SEED_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Ask:
    """A piece someone asked for, before it is admitted."""

    user_id: int
    chat_id: int
    message_id: int | None
    language: str
    kind: str
    params: dict[str, Any]
    primer_midi: bytes | None = None
    parent_id: int | None = None
    #: A seed file still to download (its Telegram file id); the download happens off the update queue.
    file_id: str | None = None


async def submit(update: Update, context: ContextTypes.DEFAULT_TYPE, ask: Ask) -> None:
    """Admit the piece (or say why not) and make it in the background, so other updates go on."""
    found = services(context)
    try:
        found.gate.enter(ask.user_id)
    except Busy:
        await context.bot.send_message(ask.chat_id, t(ask.language, "busy"))
        return
    except RateLimited as exc:
        await context.bot.send_message(
            ask.chat_id, t(ask.language, "rate_limited", seconds=retry_seconds(exc))
        )
        return
    context.application.create_task(compose_and_send(context.bot, found, ask), update=update)


async def compose_and_send(bot: Bot, found: Services, ask: Ask, request: Request | None = None) -> None:
    """Make and send the piece; ``request`` is its row when it has one already (made again after a
    restart), else the row is written first, and a seed file is added to it once downloaded."""
    try:
        async with repeating(lambda: bot.send_chat_action(ask.chat_id, ChatAction.UPLOAD_DOCUMENT)):
            try:
                if request is None:
                    request = await found.storage.start_request(
                        user_id=ask.user_id, chat_id=ask.chat_id, message_id=ask.message_id,
                        language=ask.language, kind=ask.kind, params=ask.params, primer_midi=ask.primer_midi,
                        parent_id=ask.parent_id,
                    )
                primer = ask.primer_midi
                if ask.file_id is not None:
                    primer = bytes(await (await bot.get_file(ask.file_id)).download_as_bytearray())
                    if len(primer) > MAX_SEED_BYTES:
                        raise MidiError(f"{len(primer)} bytes", "too_large")
                    await found.storage.set_primer(request.id, primer)
                piece = await found.workers.run(Job(compose_request(ask.params), primer))
            finally:
                # The piece is made (or failed): the user may ask for the next while this one is sent.
                found.gate.leave(ask.user_id)
            composition_id = await found.storage.add_composition(
                request, seed=piece.seed, description=piece.description, midi=piece.midi
            )
            await send_piece(bot, ask, piece, composition_id)
            await found.storage.finish_request(request.id)
    except (ComposerError, Overloaded, TimeoutError) as exc:
        code = exc.code if isinstance(exc, ComposerError) else type(exc).__name__.lower()
        log.info("request %s refused: %s", request.id if request else "-", code)
        if request is not None:
            await found.storage.finish_request(request.id, error=code)
        await bot.send_message(ask.chat_id, refusal(ask.language, exc))
    except Exception:
        if request is not None:
            await found.storage.finish_request(request.id, error="internal")
        raise


def compose_request(params: dict[str, Any]) -> ComposeRequest:
    return ComposeRequest(
        style=params["style"], bars=params["bars"], temperature=params["temperature"],
        tempo_bpm=params["tempo"], instrument=params["instrument"],
    )


def refusal(lang: str, exc: Exception) -> str:
    """The user's message for a piece that could not be made."""
    if isinstance(exc, MidiError):
        key = f"midi_{exc.code}" if f"midi_{exc.code}" in TEXTS else "midi_corrupt"
        return t(lang, key, limit=MAX_SEED_BYTES // 1024)
    if isinstance(exc, ComposerError) and exc.code == "bad_primer":
        return t(lang, "bad_primer")
    if isinstance(exc, Overloaded):
        return t(lang, "overloaded")
    if isinstance(exc, TimeoutError):
        return t(lang, "timeout")
    return t(lang, "error")


def caption(lang: str, ask: Ask, piece: Piece) -> str:
    lines = [t(lang, "caption", style=mix_label(piece.mix), bars=piece.bars, tempo=round(piece.tempo_bpm),
               instrument=piece.instrument, temperature=piece.temperature, seed=piece.seed)]
    if ask.parent_id is not None:
        lines.append(t(lang, "caption_continued", parent=ask.parent_id))
    elif piece.primer is not None:
        p = piece.primer
        lines.append(t(lang, "caption_seed", primer_bars=p.primer_bars, total_bars=p.total_bars,
                       notes=p.notes, time_signature=f"{p.time_signature[0]}/{p.time_signature[1]}",
                       file_tempo=round(p.tempo_bpm)))
    if piece.ogg is None:
        lines.append(t(lang, "no_audio"))
    if piece.png is None:
        lines.append(t(lang, "no_score"))
    return "\n".join(lines)


async def send_piece(bot: Bot, ask: Ask, piece: Piece, composition_id: int) -> None:
    """MIDI document, voice message, score photo; the caption and buttons go under the last one."""
    text = caption(ask.language, ask, piece)
    keyboard: InlineKeyboardMarkup = result_keyboard(ask.language, composition_id)
    name = f"melody-{composition_id}-{'-'.join(piece.mix)}.mid"
    last_is = "png" if piece.png is not None else "ogg" if piece.ogg is not None else "midi"
    extra = {"caption": text, "reply_markup": keyboard}
    await bot.send_document(
        ask.chat_id, InputFile(piece.midi, filename=name), **(extra if last_is == "midi" else {})
    )
    if piece.ogg is not None:
        await bot.send_voice(ask.chat_id, InputFile(piece.ogg, filename="melody.ogg"),
                             duration=max(1, round(piece.seconds)), **(extra if last_is == "ogg" else {}))
    if piece.png is not None:
        await bot.send_photo(ask.chat_id, InputFile(piece.png, filename="score.png"), **extra)
