"""The bot's ``/key`` and ``/metre`` settings: parsed in both languages, stored (migration 4), shown, and
used for pieces; a metre the style lacks gets a message naming the ones it has."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pretty_midi
import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser

from bot.settings import InvalidValue, parse_key, parse_metre
from composer.extract import melody_from_midi
from composer.model_store import ModelLibrary


def test_keys_and_metres_are_read_in_the_composers_spelling() -> None:
    assert [parse_key(k) for k in ("D minor", "f#m", "Bb", "D минор", "eb major")] == \
        ["D minor", "F# minor", "Bb major", "D minor", "Eb major"]
    assert parse_metre(" 6/8") == "6/8"
    for bad in ("H dur", "dorian"):
        with pytest.raises(InvalidValue):
            parse_key(bad)
    with pytest.raises(InvalidValue):
        parse_metre("6-8")


@pytest.fixture(scope="module")
def bot(telegram: FakeTelegram, models_dir: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    styles = {s.name: s for s in ModelLibrary(models_dir).styles()}
    if "classical" not in styles or (3, 4) not in styles["classical"].metres:
        pytest.skip("needs a classical model that knows 3/4")
    process = BotProcess(telegram, tmp_path_factory.mktemp("bot"), models_dir,
                         DEFAULT_STYLE="classical").start()
    yield process
    assert process.stop() == 0
    log = process.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:3000]


def test_key_and_metre_are_remembered_and_played(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = FakeUser(7101, "Ann", "en")
    assert "3/4" in telegram.say(who, "/help")  # each style's metres are listed
    assert "Key: the seed's, or one of the style's" in telegram.say(who, "/key")
    assert "not \"H dur\"" in telegram.say(who, "/key H dur")
    assert telegram.say(who, "/key d minor") == "Saved: key = D minor."
    assert telegram.say(who, "/metre 3/4") == "Saved: metre = 3/4."
    assert telegram.say(who, "/bars 4") == "Saved: bars = 4."
    settings = telegram.say(who, "/settings")
    assert "key: D minor" in settings and "metre: 3/4" in settings
    replies = telegram.ask(who, "/compose", 3, 90)
    document = next(s for s in replies if s.method == "sendDocument")
    data = document.upload().data
    melody = melody_from_midi(data)
    assert melody.time_signature == (3, 4)
    signatures = pretty_midi.PrettyMIDI(io.BytesIO(data)).key_signature_changes
    assert [pretty_midi.key_number_to_key_name(k.key_number) for k in signatures] == ["D minor"]

    assert telegram.say(who, "/metre 5/4") == "Saved: metre = 5/4."
    (refusal,) = [r.text for r in telegram.ask(who, "/compose", 1, 60)]
    assert "5/4" in refusal and "3/4" in refusal and "/metre" in refusal
    assert telegram.say(who, "/metre auto").startswith("Saved: metre =")
    assert telegram.say(who, "/key a dor") == "Saved: key = A dorian."  # classical has no dorian
    (refusal,) = [r.text for r in telegram.ask(who, "/compose", 1, 60)]
    assert "dorian" in refusal and "major, minor" in refusal and "/key" in refusal

    russian = FakeUser(7102, "Иван", "ru")
    assert telegram.say(russian, "/key D минор") == "Сохранено: тональность = D minor."
    assert "Размер пишется так" in telegram.say(russian, "/metre шесть")
