"""The bot's parts on their own: configuration, texts, settings checks, storage, admission, keyboards."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from telegram import Chat, Message, Update

from bot.config import MISSING_TOKEN, Config, ConfigError, load_config
from bot.i18n import COMMANDS, TEXTS, pick_language, t
from bot.jobs import caption, refusal
from bot.keyboards import MAX_CALLBACK_BYTES, callback, parse_callback, result_keyboard, styles_keyboard
from bot.services import Services
from bot.settings import (
    InvalidValue,
    Settings,
    parse_bars,
    parse_language,
    parse_style,
    parse_temperature,
    parse_tempo,
)
from bot.storage import MIGRATIONS, PieceRequest, Storage
from bot.worker import Busy, Gate, Overloaded, PerChatUpdateProcessor, RateLimited, Workers
from composer.compose import ComposeRequest, RequestError
from composer.errors import MidiError
from composer.melody import HOLD, REST, Melody
from composer.model_store import ModelLibrary
from composer.piece import Piece, PrimerInfo

# Configuration


def test_missing_token_is_one_line_that_says_where_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({}, dotenv_path=tmp_path / "absent.env")
    assert str(caught.value) == MISSING_TOKEN
    assert "\n" not in MISSING_TOKEN and "@BotFather" in MISSING_TOKEN


def test_config_reads_dotenv_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TELEGRAM_BOT_TOKEN=1:from-file\nDATABASE_PATH=/tmp/x.sqlite3\n"
                        "ALLOWED_USER_IDS=1, 2\n")
    env = {"TELEGRAM_BOT_TOKEN": "2:from-env", "SOUNDFONT": "/sf.sf2"}
    config = load_config(env, dotenv_path=env_file)
    assert config.token == "2:from-env"
    assert config.database_path == Path("/tmp/x.sqlite3")
    assert config.allowed_user_ids == {1, 2}
    assert config.soundfont == Path("/sf.sf2")
    assert config.base_url == "https://api.telegram.org/bot"
    assert config.base_file_url == "https://api.telegram.org/file/bot"


@pytest.mark.parametrize(("name", "value"), [("ALLOWED_USER_IDS", "12,abc"), ("COMPOSE_WORKERS", "0"),
                                             ("RATE_WINDOW_SECONDS", "soon"), ("TELEGRAM_BOT_TOKEN", "a b")])
def test_bad_settings_are_config_errors(tmp_path: Path, name: str, value: str) -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", name: value}
    with pytest.raises(ConfigError, match=name):
        load_config(env, dotenv_path=None)


# Texts


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_text_exists_in_both_languages_with_the_same_fields() -> None:
    for key, entry in TEXTS.items():
        assert set(entry) == {"en", "ru"}, key
        assert _fields(entry["en"]) == _fields(entry["ru"]), key
        assert re.search("[а-яё]", entry["ru"], re.IGNORECASE), f"{key} is not Russian"
    for name, (english, russian) in COMMANDS.items():
        assert re.fullmatch("[a-z]{1,32}", name)
        assert 3 <= len(english) <= 256 and 3 <= len(russian) <= 256


def test_language_follows_the_choice_then_telegram() -> None:
    assert pick_language(None, "ru") == "ru"
    assert pick_language(None, "ru-RU") == "ru"
    assert pick_language(None, "de") == "en"
    assert pick_language(None, None) == "en"
    assert pick_language("en", "ru") == "en"
    assert pick_language("ru", "en") == "ru"
    assert t("xx", "busy") == TEXTS["busy"]["en"]


# Settings checks


def test_values_in_range_are_accepted() -> None:
    assert parse_temperature("0.8") == 0.8
    assert parse_temperature("0,5") == 0.5
    assert parse_temperature("2") == 2.0
    assert parse_bars("4") == 4 and parse_bars("64") == 64
    assert parse_tempo("40") == 40 and parse_tempo("240") == 240
    assert parse_language("RU") == "ru"


@pytest.mark.parametrize(("parse", "text", "key"), [
    (parse_temperature, "0.05", "bad_temperature"), (parse_temperature, "2.5", "bad_temperature"),
    (parse_temperature, "hot", "bad_temperature"), (parse_temperature, "nan", "bad_temperature"),
    (parse_bars, "3", "bad_bars"), (parse_bars, "65", "bad_bars"), (parse_bars, "8.5", "bad_bars"),
    (parse_tempo, "39", "bad_tempo"), (parse_tempo, "241", "bad_tempo"), (parse_tempo, "fast", "bad_tempo"),
    (parse_language, "de", "bad_language"),
])
def test_values_out_of_range_name_their_message(parse, text: str, key: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse(text)
    assert caught.value.key == key
    assert t("en", key, **caught.value.fields)
    assert t("ru", key, **caught.value.fields)


def test_styles_and_mixes_are_checked_against_the_models() -> None:
    known = ["classical", "celtic", "folk"]
    assert parse_style("Classical", known) == "classical"
    assert parse_style("classical+celtic", known) == "classical+celtic"
    assert parse_style("classical:0.7,celtic:0.3", known) == "classical:0.7,celtic:0.3"
    for bad in ("jazz", "classical+jazz", "classical+classical", "", "+"):
        with pytest.raises(InvalidValue):
            parse_style(bad, known)


# Storage


async def test_storage_migrates_uses_wal_and_keeps_settings(tmp_path: Path) -> None:
    path = tmp_path / "db" / "bot.sqlite3"
    storage = Storage(path)
    await storage.open()
    try:
        assert await storage.schema_version() == len(MIGRATIONS)
        assert await storage.get_settings(1) == Settings()
        await storage.update_settings(1, temperature=0.8, style="celtic")
        await storage.update_settings(1, bars=8)
        assert await storage.get_settings(1) == Settings(style="celtic", temperature=0.8, bars=8)
        with pytest.raises(ValueError):
            await storage.update_settings(1, colour="red")
    finally:
        await storage.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = Storage(path)
    await again.open()
    try:
        assert (await again.get_settings(1)).bars == 8
        await again.reset_settings(1)
        assert await again.get_settings(1) == Settings()
    finally:
        await again.close()


async def test_requests_stay_pending_until_finished_and_compositions_keep_what_buttons_need(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path / "bot.sqlite3")
    await storage.open()
    try:
        params = {"style": "classical", "bars": 8, "temperature": 1.0, "tempo": None, "instrument": None}
        primer = Melody((60, HOLD, 62, REST), (4, 4), 90.0, 40)
        request = await storage.start_request(PieceRequest(user_id=7, chat_id=7, message_id=3, language="ru",
                                                           kind="seed", params=params), primer)
        assert [r.id for r in await storage.pending_requests()] == [request.id]
        composition_id = await storage.add_composition(request, seed=42, description="d", midi=b"MThd")
        assert [r.id for r in await storage.pending_requests()] == [request.id]
        await storage.finish_request(request.id)
        assert await storage.pending_requests() == []
        composition = await storage.get_composition(composition_id)
        assert composition is not None
        assert composition.request.params == params and composition.request.primer_id is not None
        assert await storage.get_primer(composition.request.primer_id) == primer
        assert composition.seed == 42 and composition.midi == b"MThd"
        failed = await storage.start_request(PieceRequest(user_id=7, chat_id=7, message_id=None,
                                                          language="en", kind="compose", params=params))
        await storage.finish_request(failed.id, error="timeout")
        assert (await storage.get_request(failed.id)).status == "failed"
        assert await storage.get_composition(999) is None
    finally:
        await storage.close()


async def test_a_failed_write_rolls_back(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "bot.sqlite3")
    await storage.open()
    try:
        with pytest.raises(ValueError):
            await storage.start_request(PieceRequest(user_id=1, chat_id=1, message_id=None, language="en",
                                                     kind="nope", params={}))
        with pytest.raises(sqlite3.IntegrityError):
            async with storage._write() as db:
                await db.execute("INSERT INTO users (user_id, updated_at) VALUES (5, 0)")
                await db.execute("INSERT INTO users (user_id, updated_at) VALUES (5, 0)")
        assert await storage.get_settings(5) == Settings()
        await storage.update_settings(5, bars=12)
        assert (await storage.get_settings(5)).bars == 12
    finally:
        await storage.close()


# Admission


def test_gate_allows_one_piece_per_user_and_limits_the_rate() -> None:
    now = [0.0]
    gate = Gate(limit=2, window=60.0, clock=lambda: now[0])
    first = gate.enter(1)
    with pytest.raises(Busy):
        gate.enter(1)
    gate.enter(2)
    first.release()
    gate.enter(1).release()
    with pytest.raises(RateLimited) as caught:
        gate.enter(1)
    assert caught.value.retry_after == pytest.approx(60.0)
    now[0] = 61.0
    gate.enter(1)
    unlimited = Gate(limit=0, window=60.0)
    for _ in range(100):
        unlimited.enter(3).release()


# Keyboards


def test_callback_data_fits_and_round_trips() -> None:
    assert parse_callback(callback("again", 12345678901234)) == ("again", "12345678901234")
    assert parse_callback("styles") == ("styles", "")
    with pytest.raises(ValueError):
        callback("style", "x" * MAX_CALLBACK_BYTES)
    for lang in ("en", "ru"):
        markup = result_keyboard(lang, 2**62)
        for row in markup.inline_keyboard:
            for button in row:
                assert len(button.callback_data.encode()) <= MAX_CALLBACK_BYTES
    assert len(styles_keyboard(["a", "b", "c"]).inline_keyboard) == 2


# Captions and refusals


def test_the_caption_says_style_settings_source_and_what_is_missing() -> None:
    made = Piece(midi=b"MThd", ogg=None, png=None, description="", mix={"classical": 0.7, "celtic": 0.3},
                 seed=5, bars=8, tempo_bpm=99.6, seconds=10.0, instrument="Violin", temperature=0.8,
                 primer=PrimerInfo(28, 4, 62, (3, 4), 120.0), problems=("audio: x", "score: y"))
    ask = PieceRequest(user_id=1, chat_id=1, message_id=None, language="en", kind="seed", params={})
    assert caption("en", ask, made).split("\n") == [
        "classical 70% + celtic 30% · 8 bars · 100 BPM · Violin · temperature 0.8 · seed 5",
        "From your file: the last 4 of its 28 bars (62 notes, 3/4, 120 BPM), continued.",
        TEXTS["no_audio"]["en"], TEXTS["no_score"]["en"],
    ]
    continued = PieceRequest(user_id=1, chat_id=1, message_id=None, language="ru", kind="continue", params={},
                             parent_id=9)
    assert caption("ru", continued, made).split("\n")[1] == "Продолжение мелодии №9."
    cut = dataclasses.replace(made, primer=None, problems=(), ogg=b"x", png=b"x", cut_from_bars=64)
    assert caption("en", ask, cut, 180).split("\n")[1] == (
        "Shortened from 64 to 8 bars to keep it within 3:00.")
    faster = dataclasses.replace(cut, cut_from_bars=None, sped_up_from=40.0)
    assert caption("en", ask, faster, 90).split("\n")[1] == (
        "Played at 100 BPM instead of 40 to keep it within 1:30.")


@pytest.mark.parametrize("code", ["not_midi", "corrupt", "too_large", "too_long", "no_notes", "drums_only",
                                  "unreadable", "something_new"])
def test_every_midi_error_has_a_clear_reply(code: str) -> None:
    for lang in ("en", "ru"):
        text = refusal(lang, MidiError("x", code))
        assert text != t(lang, "error") and ("MIDI" in text or "файл" in text.lower())


def test_refusals_for_the_other_failures() -> None:
    assert refusal("en", RequestError("x", "bad_primer")) == TEXTS["bad_primer"]["en"]
    assert refusal("ru", Overloaded()) == TEXTS["overloaded"]["ru"]
    assert refusal("en", TimeoutError()) == TEXTS["timeout"]["en"]
    assert refusal("en", RequestError("x", "bad_seed")) == TEXTS["error"]["en"]
    mode = RequestError("x", "unknown_mode", style="folk", modes="major, minor", mode="dorian")
    assert refusal("ru", mode) == TEXTS["unknown_mode"]["ru"].format(style="folk", modes="major, minor",
                                                                     mode="dorian")


async def test_workers_make_pieces_and_turn_away_what_they_cannot_take(models_dir: Path) -> None:
    styles = ModelLibrary(models_dir).styles()
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    job = ComposeRequest(style=styles[0].name, bars=4)
    workers = Workers(models_dir, None, workers=1, max_queue=1, timeout=60.0)
    workers.start()
    try:
        first = asyncio.create_task(workers.run(job))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await workers.run(job)
        assert (await first).midi.startswith(b"MThd")
        workers.timeout = 0.001
        with pytest.raises(TimeoutError):
            await workers.run(job)
    finally:
        workers.shutdown()


def test_a_chosen_style_without_a_model_falls_back_to_the_default() -> None:
    found = Services(Config(token="1:x", default_style="folk"), Storage(Path(":memory:")),
                     Workers(Path("models"), None, 1, 1, 1.0), Gate(0, 1.0), {"folk": "", "celtic": ""})
    assert found.style_of(Settings()) == "folk"
    assert found.style_of(Settings(style="celtic")) == "celtic"
    assert found.style_of(Settings(style="celtic+folk")) == "celtic+folk"
    assert found.style_of(Settings(style="jazz")) == "folk"


async def test_updates_of_one_chat_run_in_order_and_other_chats_do_not_wait() -> None:
    processor = PerChatUpdateProcessor(8)
    events: list[str] = []

    def update(chat_id: int) -> Update:
        return Update(1, message=Message(1, datetime.now(UTC), Chat(chat_id, "private")))

    async def work(name: str, seconds: float) -> None:
        events.append(f"{name}+")
        await asyncio.sleep(seconds)
        events.append(f"{name}-")

    await asyncio.gather(processor.process_update(update(1), work("a1", 0.05)),
                         processor.process_update(update(1), work("a2", 0)),
                         processor.process_update(update(2), work("b", 0)))
    assert events.index("a1-") < events.index("a2+")
    assert events.index("b-") < events.index("a1-")
    assert processor._locks == {} and processor._waiting == {}
