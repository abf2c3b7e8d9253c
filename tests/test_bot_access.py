"""Access and fairness through the real bot (``python -m bot``): ``ALLOWED_USER_IDS`` lets only those
users in and turns everyone else away politely, whatever they send, before any work or download; the
per-user rate limit answers politely, in the user's language, with the wait."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser

from bot.i18n import TEXTS
from composer.model_store import ModelLibrary

FIXTURES = Path(__file__).parent / "fixtures" / "midi"
MEMBER, MEMBER_RU = FakeUser(801, "Ann", "en"), FakeUser(802, "Olga", "ru")
STRANGER, STRANGER_RU = FakeUser(901, "Eve", "en"), FakeUser(902, "Ivan", "ru")
RATE_LIMIT = 2


@pytest.fixture(scope="module")
def served(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeTelegram, Path]]:
    styles = [info.name for info in ModelLibrary(models_dir).styles()]
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    workdir = tmp_path_factory.mktemp("access")
    with FakeTelegram() as telegram:
        bot = BotProcess(telegram, workdir, models_dir, DEFAULT_STYLE=styles[0],
                         ALLOWED_USER_IDS=f"{MEMBER.id}, {MEMBER_RU.id}", RATE_LIMIT=str(RATE_LIMIT),
                         RATE_WINDOW_SECONDS="3600").start()
        try:
            yield telegram, workdir / "bot.sqlite3"
        finally:
            assert bot.stop() == 0


def _say_mark(telegram: FakeTelegram, who: FakeUser, text: str) -> int:
    mark = telegram.mark()
    telegram.send_text(who, text)
    return mark


def test_strangers_are_turned_away_politely_before_any_work(served: tuple[FakeTelegram, Path]) -> None:
    telegram, database = served
    mark = telegram.mark()
    for text in ("/start", "/compose", "/temperature 0.5", "hello"):
        telegram.send_text(STRANGER, text)
    telegram.send_document(STRANGER, (FIXTURES / "bach_bwv269.mid").read_bytes(), "seed.mid")
    telegram.send_photo(STRANGER)
    telegram.send_text(STRANGER_RU, "/compose")
    replies = telegram.wait_replies(STRANGER.id, 6, mark)
    assert {s.text for s in replies} == {TEXTS["not_allowed"]["en"]}
    assert telegram.wait_replies(STRANGER_RU.id, 1, mark)[0].text == TEXTS["not_allowed"]["ru"]

    # A button under an old message (a forwarded one, say) is answered in the button's own pop-up.
    member_start = telegram.wait_replies(MEMBER.id, 1, _say_mark(telegram, MEMBER, "/start"))[0]
    query_mark = telegram.mark()
    telegram.press(STRANGER, member_start, member_start.buttons()[0][1])
    answer = telegram.wait(
        lambda sent: [s for s in sent[query_mark:] if s.method == "answerCallbackQuery"])[0]
    assert answer.params["text"] == TEXTS["not_allowed"]["en"]

    strangers = {STRANGER.id, STRANGER_RU.id}
    assert not [s for s in telegram.calls(after=mark) if s.chat_id in strangers
                and s.method in ("sendChatAction", "sendDocument", "sendVoice", "sendPhoto")]
    assert not telegram.calls("getFile", after=mark), "a stranger's file was downloaded"
    with sqlite3.connect(database) as db:
        touched = {row[0] for row in db.execute(
            "SELECT user_id FROM users UNION SELECT user_id FROM requests")}
    assert not touched & strangers


def test_members_compose_and_the_rate_limit_answers_politely(served: tuple[FakeTelegram, Path]) -> None:
    telegram, _ = served
    mark = _say_mark(telegram, MEMBER, "/bars 4")
    assert telegram.wait_replies(MEMBER.id, 1, mark)[0].text == "Saved: bars = 4."
    mark = _say_mark(telegram, MEMBER, "/compose")
    assert [s.method for s in telegram.wait_replies(MEMBER.id, 3, mark, 90)] == [
        "sendDocument", "sendVoice", "sendPhoto"]

    # Two files that are not MIDI use up the Russian member's allowance without composing anything.
    for _ in range(RATE_LIMIT):
        mark = telegram.mark()
        telegram.send_document(MEMBER_RU, b"not midi at all", "notes.txt", "text/plain")
        assert telegram.wait_replies(MEMBER_RU.id, 1, mark)[0].text == TEXTS["midi_not_midi"]["ru"]
    mark = _say_mark(telegram, MEMBER_RU, "/compose")
    limited = telegram.wait_replies(MEMBER_RU.id, 1, mark)[0].text
    found = re.fullmatch(TEXTS["rate_limited"]["ru"].replace("{seconds}", r"(\d+)"), limited)
    assert found is not None, limited
    assert 0 < int(found.group(1)) <= 3600
    # The limit is per user: the other member is not held back by it.
    mark = _say_mark(telegram, MEMBER, "/compose")
    assert telegram.wait_replies(MEMBER.id, 3, mark, 90)[-1].method == "sendPhoto"
