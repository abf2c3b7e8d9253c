"""The bot's ``/accompaniment on|off`` setting: parsed, stored (migration 3), shown, and used for pieces."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pretty_midi
import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser

from bot.settings import InvalidValue, Settings, parse_accompaniment
from bot.storage import MIGRATIONS, Storage
from composer.model_store import ModelLibrary


def test_on_and_off_in_both_languages() -> None:
    assert [parse_accompaniment(w) for w in ("on", " OFF ", "вкл", "выкл", "yes", "0")] == \
        [True, False, True, False, True, False]
    with pytest.raises(InvalidValue):
        parse_accompaniment("loud")
    assert Settings().accompaniment is True and Settings(accompaniment=0).accompaniment is False


async def test_the_setting_is_stored_and_old_databases_default_to_on(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    with sqlite3.connect(path) as db:  # a database as the bot before this setting left it
        for version, script in enumerate(MIGRATIONS[:2], start=1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {version}")
        db.execute("INSERT INTO users (user_id, bars, updated_at) VALUES (1, 8, 0)")
    storage = Storage(path)
    await storage.open()
    try:
        assert await storage.get_settings(1) == Settings(bars=8, accompaniment=True)
        await storage.update_settings(1, accompaniment=False)
        assert (await storage.get_settings(1)).accompaniment is False
        await storage.update_settings(1, bars=12)
        assert await storage.get_settings(1) == Settings(bars=12, accompaniment=False)
    finally:
        await storage.close()


@pytest.fixture(scope="module")
def bot(telegram: FakeTelegram, models_dir: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    styles = [s.name for s in ModelLibrary(models_dir).styles()]
    if "folk" not in styles:
        pytest.skip("needs the folk model")
    process = BotProcess(telegram, tmp_path_factory.mktemp("bot"), models_dir, DEFAULT_STYLE="folk").start()
    yield process
    assert process.stop() == 0
    log = process.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:3000]


def _programs(telegram: FakeTelegram, who: FakeUser) -> list[int]:
    replies = telegram.ask(who, "/compose", 3, 90)
    document = next(s for s in replies if s.method == "sendDocument")
    return [i.program for i in pretty_midi.PrettyMIDI(io.BytesIO(document.upload().data)).instruments]


def test_accompaniment_can_be_switched_off_and_on(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = FakeUser(7001, "Ann", "en")
    assert "Accompaniment: on" in telegram.say(who, "/accompaniment")
    assert "on or off" in telegram.say(who, "/accompaniment loud")
    assert telegram.say(who, "/bars 4") == "Saved: bars = 4."
    assert _programs(telegram, who) == [21, 32, 21]  # folk: accordion tune, bass, accordion chords
    assert telegram.say(who, "/accompaniment off") == "Saved: accompaniment = off."
    assert "accompaniment: off" in telegram.say(who, "/settings")
    assert _programs(telegram, who) == [21]
    russian = FakeUser(7002, "Иван", "ru")
    assert telegram.say(russian, "/accompaniment выкл") == "Сохранено: аккомпанемент = выкл."
    assert "аккомпанемент: выкл" in telegram.say(russian, "/settings")
    assert telegram.say(who, "/reset")
    assert "accompaniment: on" in telegram.say(who, "/settings")
