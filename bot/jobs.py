"""One piece from start to finish: admission, the pending row, the seed, the worker, the replies."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, InputFile
from telegram.constants import ChatAction

from bot.i18n import TEXTS, t
from bot.keyboards import result_keyboard
from bot.services import BotContext, Services
from bot.storage import PieceRequest
from bot.worker import Admission, Busy, Overloaded, RateLimited, WorkerLost, repeating, retry_seconds
from composer.compose import ComposeRequest
from composer.errors import ComposerError, MidiError
from composer.extract import melody_from_midi
from composer.melody import Melody
from composer.piece import MAX_PIECE_SECONDS, Piece
from composer.style_mix import mix_label

log = logging.getLogger(__name__)

#: Seed files larger than this are refused before they are downloaded.
MAX_SEED_BYTES = 1024 * 1024


async def submit(update: object, context: BotContext, request: PieceRequest, *, file_id: str | None = None,
                 primer_midi: bytes | None = None) -> None:
    """Admit the piece (or say why not) and make it in the background, so other updates go on.

    ``file_id``: a seed file still to download; ``primer_midi``: a seed already at hand (a piece to
    continue)."""
    found = context.services
    try:
        admission = await found.gate.admit(request.user_id)
    except Busy:
        await context.bot.send_message(request.chat_id, t(request.language, "busy"))
        return
    except RateLimited as exc:
        await context.bot.send_message(
            request.chat_id, t(request.language, "rate_limited", seconds=retry_seconds(exc))
        )
        return
    context.application.create_task(
        compose_and_send(context.bot, found, request, admission, file_id=file_id, primer_midi=primer_midi),
        update=update,
    )


async def compose_and_send(bot: Bot, found: Services, request: PieceRequest, admission: Admission, *,
                           file_id: str | None = None, primer_midi: bytes | None = None) -> None:
    """Make and send the piece. A request not yet stored (``request.id`` is ``None``) is written first;
    a seed file is downloaded and its melody extracted (the file itself is never stored)."""
    stored: PieceRequest | None = request if request.id is not None else None
    try:
        async with repeating(lambda: bot.send_chat_action(request.chat_id, ChatAction.UPLOAD_DOCUMENT)):
            try:
                primer = None
                if primer_midi is not None:
                    primer = await asyncio.to_thread(melody_from_midi, primer_midi)
                if stored is None:
                    stored = await found.storage.start_request(request, primer)
                assert stored.id is not None
                if file_id is not None:
                    primer = await _download_seed(bot, file_id)
                    await found.storage.attach_primer(stored.id, primer)
                elif primer is None and stored.primer_id is not None:
                    primer = await found.storage.get_primer(stored.primer_id)
                    if primer is None:
                        raise MidiError("the seed melody is gone", "gone")

                async def queued(place: int) -> None:
                    await bot.send_message(request.chat_id, t(request.language, "queued", place=place))

                piece = await found.workers.run(compose_request(stored.params), primer, on_queued=queued,
                                                accompaniment=stored.params.get("accompaniment", True))
            finally:
                # The piece is made (or failed): the user may ask for the next while this one is sent.
                admission.release()
            composition_id = await found.storage.add_composition(
                stored, seed=piece.seed, description=piece.description, midi=piece.midi
            )
            await send_piece(bot, stored, piece, composition_id, found.config.max_piece_seconds)
            await found.storage.finish_request(stored.id)
    except (ComposerError, Overloaded, TimeoutError, WorkerLost) as exc:
        code = exc.code if isinstance(exc, ComposerError) else type(exc).__name__.lower()
        log.info("request %s refused: %s", stored.id if stored else "-", code)
        if stored is not None and stored.id is not None:
            await found.storage.finish_request(stored.id, error=code)
        await bot.send_message(request.chat_id, refusal(request.language, exc))
    except asyncio.CancelledError:
        raise  # the bot is stopping: the request stays pending and the next start answers it
    except Exception:
        if stored is not None and stored.id is not None:
            await found.storage.finish_request(stored.id, error="internal")
        raise


async def _download_seed(bot: Bot, file_id: str) -> Melody:
    data = bytes(await (await bot.get_file(file_id)).download_as_bytearray())
    if len(data) > MAX_SEED_BYTES:
        raise MidiError(f"{len(data)} bytes", "too_large")
    return await asyncio.to_thread(melody_from_midi, data)


def compose_request(params: dict[str, Any]) -> ComposeRequest:
    return ComposeRequest(
        style=params["style"], bars=params["bars"], temperature=params["temperature"],
        tempo_bpm=params["tempo"], instrument=params["instrument"], key=params.get("key"),
        metre=params.get("metre"),
    )


def refusal(lang: str, exc: Exception) -> str:
    """The user's message for a piece that could not be made."""
    if isinstance(exc, MidiError):
        key = f"midi_{exc.code}" if f"midi_{exc.code}" in TEXTS else "midi_corrupt"
        return t(lang, key, limit=MAX_SEED_BYTES // 1024)
    if isinstance(exc, ComposerError) and exc.code == "bad_primer":
        return t(lang, "bad_primer")
    if isinstance(exc, ComposerError) and exc.code in ("unknown_metre", "unknown_mode") and exc.fields:
        return t(lang, exc.code, **exc.fields)
    if isinstance(exc, Overloaded):
        return t(lang, "overloaded")
    if isinstance(exc, TimeoutError):
        return t(lang, "timeout")
    if isinstance(exc, WorkerLost):
        return t(lang, "worker_lost")
    return t(lang, "error")


def caption(lang: str, request: PieceRequest, piece: Piece, max_seconds: float = MAX_PIECE_SECONDS) -> str:
    lines = [t(lang, "caption", style=mix_label(piece.mix), bars=piece.bars, tempo=round(piece.tempo_bpm),
               instrument=piece.instrument, temperature=piece.temperature, seed=piece.seed)]
    if request.parent_id is not None:
        lines.append(t(lang, "caption_continued", parent=request.parent_id))
    elif piece.primer is not None:
        p = piece.primer
        lines.append(t(lang, "caption_seed", primer_bars=p.primer_bars, total_bars=p.total_bars,
                       notes=p.notes, time_signature=f"{p.time_signature[0]}/{p.time_signature[1]}",
                       file_tempo=round(p.tempo_bpm)))
    if piece.cut_from_bars is not None:
        lines.append(t(lang, "cut_bars", asked=piece.cut_from_bars, bars=piece.bars,
                       minutes=_minutes(max_seconds)))
    if piece.sped_up_from is not None:
        lines.append(t(lang, "sped_up", asked=round(piece.sped_up_from), tempo=round(piece.tempo_bpm),
                       minutes=_minutes(max_seconds)))
    if piece.ogg is None:
        lines.append(t(lang, "no_audio"))
    if piece.png is None:
        lines.append(t(lang, "no_score"))
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


async def send_piece(bot: Bot, request: PieceRequest, piece: Piece, composition_id: int,
                     max_seconds: float = MAX_PIECE_SECONDS) -> None:
    """MIDI document, voice message, score photo; the caption and buttons go under the last one."""
    text = caption(request.language, request, piece, max_seconds)
    keyboard: InlineKeyboardMarkup = result_keyboard(request.language, composition_id)
    name = f"melody-{composition_id}-{'-'.join(piece.mix)}.mid"
    last_is = "png" if piece.png is not None else "ogg" if piece.ogg is not None else "midi"
    extra = {"caption": text, "reply_markup": keyboard}
    chat_id = request.chat_id
    await bot.send_document(
        chat_id, InputFile(piece.midi, filename=name), **(extra if last_is == "midi" else {})
    )
    if piece.ogg is not None:
        await bot.send_voice(chat_id, InputFile(piece.ogg, filename="melody.ogg"),
                             duration=max(1, round(piece.seconds)), **(extra if last_is == "ogg" else {}))
    if piece.png is not None:
        await bot.send_photo(chat_id, InputFile(piece.png, filename="score.png"), **extra)
