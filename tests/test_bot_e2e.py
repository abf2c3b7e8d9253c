"""Conversations with the real bot process (``python -m bot``) through the fake Bot API server.

Each test plays its own users, so tests share one bot process and stay independent.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pretty_midi
import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser, Sent

from bot.i18n import COMMANDS, TEXTS
from composer.extract import melody_from_midi
from composer.model_store import ModelLibrary

FIXTURES = Path(__file__).parent / "fixtures" / "midi"
RATE_LIMIT = 5
_user_ids = itertools.count(1000)


def user(language: str | None = "en") -> FakeUser:
    return FakeUser(next(_user_ids), "Ann", language)


def trained_styles(models_dir: Path) -> list[str]:
    """The styles with a trained model; skips the test if there is none."""
    names = [info.name for info in ModelLibrary(models_dir).styles()]
    if not names:
        pytest.skip(f"no trained models in {models_dir} (set COMPOSER_TEST_MODELS)")
    return names


@pytest.fixture(scope="module")
def styles(models_dir: Path) -> list[str]:
    return trained_styles(models_dir)


@pytest.fixture(scope="module")
def bot(telegram: FakeTelegram, styles: list[str], models_dir: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    process = BotProcess(telegram, tmp_path_factory.mktemp("bot"), models_dir, DEFAULT_STYLE=styles[0],
                         RATE_LIMIT=str(RATE_LIMIT), LOG_LEVEL="DEBUG").start()
    yield process
    assert process.stop() == 0
    log = process.log()
    assert telegram.token not in log and telegram.token.split(":")[1] not in log
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]


def piece_replies(telegram: FakeTelegram, who: FakeUser, after: int, timeout: float = 90) -> list[Sent]:
    """The chat's next piece (document, voice, photo), passing over any note about the queue."""
    def check(sent: list[Sent]) -> list[Sent] | None:
        found = [s for s in sent[after:] if s.chat_id == who.id
                 and s.method in ("sendDocument", "sendVoice", "sendPhoto")]
        return found[:3] if len(found) >= 3 else None

    return telegram.wait(check, timeout)


def check_piece(replies: list[Sent]) -> Sent:
    """MIDI document, OGG/Opus voice, PNG photo with the caption and buttons; returns the photo."""
    assert [s.method for s in replies] == ["sendDocument", "sendVoice", "sendPhoto"]
    document, voice, photo = replies
    midi = document.upload()
    assert midi.filename.endswith(".mid") and midi.data.startswith(b"MThd")
    assert melody_from_midi(midi.data).pitches()
    ogg = voice.upload().data
    assert ogg.startswith(b"OggS") and b"OpusHead" in ogg[:64]
    assert photo.upload().data.startswith(b"\x89PNG")
    assert [data.split(":")[0] for _, data in photo.buttons()] == ["again", "cont", "styles"]
    return photo


def test_start_offers_the_styles_as_buttons(bot: BotProcess, telegram: FakeTelegram,
                                            styles: list[str]) -> None:
    reply = telegram.ask(user(), "/start")[0]
    assert reply.text.startswith("Hello, Ann!")
    assert [data for _, data in reply.buttons()] == [f"style:{name}" for name in styles]
    russian = telegram.ask(user("ru"), "/start")[0]
    assert russian.text.startswith("Здравствуйте, Ann!")


def test_help_explains_every_command_with_an_example(bot: BotProcess, telegram: FakeTelegram) -> None:
    for language in ("en", "ru"):
        text = telegram.say(user(language), "/help")
        for command in COMMANDS:
            if command != "start":
                assert f"/{command}" in text, (language, command)
        assert "/temperature 0.8" in text and "/compose classical+celtic" in text
    assert "Что я умею" in telegram.say(user("ru-RU"), "/help")


def test_the_command_menu_is_set_in_both_languages(bot: BotProcess, telegram: FakeTelegram) -> None:
    menus = {s.params.get("language_code"): s.params["commands"] for s in telegram.calls("setMyCommands")}
    assert set(menus) == {None, "ru"}
    for language, index in ((None, 0), ("ru", 1)):
        assert [c["command"] for c in menus[language]] == list(COMMANDS)
        assert [c["description"] for c in menus[language]] == [texts[index] for texts in COMMANDS.values()]


def test_compose_replies_with_midi_voice_and_score(bot: BotProcess, telegram: FakeTelegram,
                                                   styles: list[str]) -> None:
    who = user()
    mark = telegram.mark()
    photo = check_piece(telegram.ask(who, "/compose", replies=3, timeout=60))
    assert photo.text.startswith(f"{styles[0]} · 16 bars · ")
    assert "temperature 1.0" in photo.text and "seed " in photo.text
    actions = telegram.calls("sendChatAction", chat_id=who.id, after=mark)
    assert actions and actions[0].params["action"] == "upload_document"
    assert actions[0].at < telegram.calls("sendDocument", chat_id=who.id, after=mark)[0].at
    named = check_piece(telegram.ask(who, f"/compose {styles[-1]}", replies=3, timeout=60))
    assert named.text.startswith(f"{styles[-1]} · ")


def test_compose_a_mix_of_styles(bot: BotProcess, telegram: FakeTelegram, styles: list[str]) -> None:
    if len(styles) < 2:
        pytest.skip("needs two trained styles")
    photo = check_piece(telegram.ask(user(), f"/compose {styles[0]}+{styles[1]}", replies=3, timeout=60))
    assert photo.text.startswith(f"{styles[0]} 50% + {styles[1]} 50% · ")


def test_unknown_style_says_which_styles_exist(bot: BotProcess, telegram: FakeTelegram,
                                               styles: list[str]) -> None:
    text = telegram.say(user(), "/compose jazz")
    assert 'style "jazz"' in text and styles[0] in text
    assert "Я не знаю стиля" in telegram.say(user("ru"), "/style jazz+")


def test_settings_are_validated_remembered_and_used(bot: BotProcess, telegram: FakeTelegram,
                                                    styles: list[str]) -> None:
    who = user()
    assert "Temperature: 1.0 (from 0.1 to 2.0" in telegram.say(who, "/temperature")
    assert "from 0.1 to 2.0" in telegram.say(who, "/temperature 5")
    assert "from 0.1 to 2.0" in telegram.say(who, "/temperature warm")
    assert telegram.say(who, "/temperature 0,8") == "Saved: temperature = 0.8."
    assert "Temperature: 0.8" in telegram.say(who, "/temperature")
    assert "from 4 to 64" in telegram.say(who, "/bars 3")
    assert "Length: 16 bars (from 4 to 64)" in telegram.say(who, "/bars")
    assert telegram.say(who, "/bars 8") == "Saved: bars = 8."
    assert "from 40 to 240" in telegram.say(who, "/tempo 300")
    assert "Tempo: the style's own" in telegram.say(who, "/tempo")
    assert telegram.say(who, "/tempo 100") == "Saved: tempo = 100."
    assert 'instrument "kazoo"' in telegram.say(who, "/instrument kazoo")
    assert telegram.say(who, "/instrument violin") == "Saved: instrument = Violin."
    assert "Your style: " + styles[0] in telegram.say(who, "/style")
    assert telegram.say(who, f"/style {styles[-1]}") == f"Saved: style = {styles[-1]}."
    assert "I speak ru and en" in telegram.say(who, "/language de")
    assert telegram.say(who, "/language ru") == "Сохранено: язык = русский."
    shown = telegram.say(who, "/settings")
    for line in (f"стиль: {styles[-1]}", "температура: 0.8", "тактов: 8", "темп: 100", "инструмент: Violin",
                 "язык: русский"):
        assert line in shown
    photo = check_piece(telegram.ask(who, "/compose", replies=3, timeout=60))
    assert photo.text == photo.text.split("\n")[0]
    assert photo.text.startswith(f"{styles[-1]} · тактов: 8 · 100 уд/мин · Violin · температура 0.8 · ")
    assert telegram.say(who, "/reset") == TEXTS["reset_done"]["en"]
    shown = telegram.say(who, "/settings")
    assert "temperature: 1.0" in shown and "bars: 16" in shown
    assert "language: from Telegram (English)" in shown


def test_russian_telegram_gets_russian_and_can_switch(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = user("ru")
    assert telegram.say(who, "/bars 99").startswith("Длина - целое число тактов от 4 до 64")
    assert telegram.say(who, "/language en") == "Saved: language = English."
    assert telegram.say(who, "/bars 99").startswith("The length must be")
    assert "как в Telegram (русский)" in telegram.say(who, "/language auto")


def test_a_midi_file_is_a_seed(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = user()
    mark = telegram.mark()
    telegram.send_document(who, (FIXTURES / "bach_bwv269.mid").read_bytes(), "../../etc/passwd.mid")
    photo = check_piece(telegram.wait_replies(who.id, 3, mark, 60))
    assert "From your file: the last 4 of its " in photo.text and "3/4" in photo.text
    assert telegram.calls("getFile", after=mark)


def _midi(pitches: list[int], drums: bool = False) -> bytes:
    pm = pretty_midi.PrettyMIDI()
    track = pretty_midi.Instrument(0, is_drum=drums)
    track.notes.extend(pretty_midi.Note(100, p, i / 2, i / 2 + 0.5) for i, p in enumerate(pitches))
    pm.instruments.append(track)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "name", "expected"), [
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x60MTrk\x00\x00\x00\x40\x00\x90\x3c", "broken.mid",
     "could not read this MIDI file"),
    (_midi([36] * 8, drums=True), "drums.mid", "only drums"),
    (b"just some words\n", "notes.txt", "not a MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", "empty.mid",
     "has no notes"),
])
def test_unusable_files_get_a_clear_reply(bot: BotProcess, telegram: FakeTelegram, data: bytes,
                                          name: str, expected: str) -> None:
    who = user()
    mark = telegram.mark()
    telegram.send_document(who, data, name, "application/octet-stream")
    reply = telegram.wait_replies(who.id, 1, mark)[0]
    assert reply.method == "sendMessage" and expected in reply.text


def test_a_file_over_1_mb_is_refused_before_download(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = user("ru")
    mark = telegram.mark()
    telegram.send_document(who, b"MThd", "big.mid", file_size=1024 * 1024 + 1)
    assert "до 1024 КБ" in telegram.wait_replies(who.id, 1, mark)[0].text
    assert not telegram.calls("getFile", after=mark)


def test_photos_voices_stickers_and_words_are_answered(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = user()
    for send, expected in ((telegram.send_photo, "That is a picture"),
                           (telegram.send_voice, "cannot listen to voice")):
        mark = telegram.mark()
        send(who)
        assert expected in telegram.wait_replies(who.id, 1, mark)[0].text
    mark = telegram.mark()
    telegram.send_message(who, sticker={"file_id": "s", "file_unique_id": "s", "type": "regular",
                                        "width": 1, "height": 1, "is_animated": False, "is_video": False})
    assert "I cannot use this" in telegram.wait_replies(who.id, 1, mark)[0].text
    assert "I do not know that command" in telegram.say(who, "/dance")
    assert telegram.say(who, "hello").startswith("Type /compose")


def test_buttons_another_continue_and_change_style(bot: BotProcess, telegram: FakeTelegram,
                                                   styles: list[str]) -> None:
    who = user()
    telegram.say(who, "/bars 4")
    first = check_piece(telegram.ask(who, "/compose", 3, 60))
    buttons = dict((data.split(":")[0], data) for _, data in first.buttons())
    parent = int(buttons["cont"].split(":")[1])

    mark = telegram.mark()
    telegram.press(who, first, buttons["cont"])
    continued = check_piece(telegram.wait_replies(who.id, 3, mark, 60))
    assert f"Continues melody #{parent}." in continued.text
    assert telegram.calls("answerCallbackQuery", chat_id=who.id, after=mark)

    mark = telegram.mark()
    telegram.press(who, continued, dict((d.split(":")[0], d) for _, d in continued.buttons())["again"])
    again = check_piece(telegram.wait_replies(who.id, 3, mark, 60))
    assert f"Continues melody #{parent}." in again.text

    mark = telegram.mark()
    telegram.press(who, again, "styles")
    menu = telegram.wait_replies(who.id, 1, mark)[0]
    assert menu.text == "Pick a style:" and [d for _, d in menu.buttons()] == [f"style:{s}" for s in styles]
    mark = telegram.mark()
    telegram.press(who, menu, f"style:{styles[-1]}")
    chosen = check_piece(telegram.wait_replies(who.id, 3, mark, 60))
    assert chosen.text.startswith(f"{styles[-1]} · 4 bars")
    assert f"Your style: {styles[-1]}." in telegram.say(who, "/style")

    mark = telegram.mark()
    telegram.press(who, first, "again:999999")
    answer = telegram.wait(lambda sent: [s for s in sent[mark:] if s.method == "answerCallbackQuery"])[0]
    assert answer.params["text"] == TEXTS["gone"]["en"]


def test_asking_again_while_busy_and_the_rate_limit(bot: BotProcess, telegram: FakeTelegram) -> None:
    who = user()
    mark = telegram.mark()
    telegram.send_text(who, "/compose")
    telegram.send_text(who, "/compose")
    replies = telegram.wait_replies(who.id, 4, mark, 60)
    assert replies[0].text == TEXTS["busy"]["en"]
    check_piece(replies[1:])
    for _ in range(RATE_LIMIT - 1):
        mark = telegram.mark()
        telegram.send_document(who, b"not midi", "a.mid")
        assert "not a MIDI file" in telegram.wait_replies(who.id, 1, mark)[0].text
    assert "Please wait" in telegram.say(who, "/compose")


def test_a_long_melody_does_not_hold_up_anyone_else(bot: BotProcess, telegram: FakeTelegram) -> None:
    composer, reader = user(), user()
    telegram.ask(composer, "/bars 64")
    mark = telegram.mark()
    telegram.send_text(composer, "/compose")
    telegram.send_text(reader, "/help")
    help_reply = telegram.wait_replies(reader.id, 1, mark)[0]
    piece = telegram.wait_replies(composer.id, 3, mark, 90)
    assert help_reply.at < piece[0].at


def test_many_chats_at_once_all_get_their_piece(bot: BotProcess, telegram: FakeTelegram) -> None:
    people = [user("ru" if i % 2 else "en") for i in range(6)]
    mark = telegram.mark()
    for who in people:
        telegram.send_text(who, "/compose")
    for who in people:
        replies = piece_replies(telegram, who, mark, 120)
        check_piece(replies)
        # A piece that waited for a worker was announced with its place in the queue, nothing else.
        before = [s for s in telegram.calls("sendMessage", who.id, mark) if s.at <= replies[0].at]
        queued = TEXTS["queued"][who.language_code].split("{")[0]
        assert all(s.text.startswith(queued) for s in before), before
