"""Crash safety: the real bot (``python -m bot``) is killed with SIGKILL while it composes, then restarted.

Settings and history survive; the request it never answered is made again after the restart (with a
word on why it comes late), and a request interrupted a second time gets an apology that asks the user
to try again, so none is lost silently. The killed bot's worker processes do not outlive it. The
rules of recovery (made again once, if recent; a seed still downloading is asked for again) are
checked in-process too.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser, Sent

from bot.i18n import TEXTS
from bot.recovery import apologise, recover
from bot.services import KEY
from bot.storage import PieceRequest, Storage
from composer.melody import HOLD, REST, Melody
from composer.model_store import ModelLibrary

PIECE = ["sendDocument", "sendVoice", "sendPhoto"]


def _children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (Linux ``/proc``)."""
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """Wait for the processes to end; return those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _pending(database: Path) -> list[tuple[int, str | None]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT id, error FROM requests WHERE status = 'pending' ORDER BY id").fetchall()


def _wait_answered(database: Path, timeout: float = 30.0) -> None:
    """Wait until no request is pending (the row is closed just after the last reply is sent)."""
    deadline = time.monotonic() + timeout
    while _pending(database):
        if time.monotonic() > deadline:
            raise TimeoutError(f"requests still pending: {_pending(database)}")
        time.sleep(0.05)


def _kill_while_composing(telegram: FakeTelegram, bot: BotProcess, who: FakeUser, mark: int,
                          database: Path) -> None:
    """SIGKILL the bot once it works on the chat's piece (chat action sent, pending row written) and
    before it replies; check that its worker processes end with it."""
    telegram.wait(lambda sent: [s for s in sent[mark:]
                                if s.method == "sendChatAction" and s.chat_id == who.id])
    deadline = time.monotonic() + 30
    while not _pending(database) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bot.process is not None
    children = _children(bot.process.pid)
    bot.stop(signal.SIGKILL)
    assert not [s for s in telegram.calls(chat_id=who.id, after=mark) if s.method in PIECE], (
        "the piece was sent before the kill: nothing was interrupted")
    assert children, "the bot had no worker processes"
    assert _wait_gone(children) == [], "worker processes outlived the killed bot"


def test_a_killed_bot_keeps_settings_and_history_and_answers_after_a_restart(
        models_dir: Path, tmp_path: Path) -> None:
    styles = [info.name for info in ModelLibrary(models_dir).styles()]
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    who = FakeUser(7, "Ann", "en")
    database = tmp_path / "bot.sqlite3"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with FakeTelegram() as telegram:
        def start() -> BotProcess:
            return BotProcess(telegram, tmp_path, models_dir, DEFAULT_STYLE=styles[0],
                              TMPDIR=str(temporary)).start()

        bot = start()
        assert telegram.say(who, "/temperature 0.5") == "Saved: temperature = 0.5."
        assert telegram.say(who, "/bars 4") == "Saved: bars = 4."
        mark = telegram.mark()
        telegram.send_text(who, "/compose")
        first = telegram.wait_replies(who.id, 3, mark, 90)
        assert [s.method for s in first] == PIECE
        assert telegram.say(who, "/bars 64") == "Saved: bars = 64."

        mark = telegram.mark()
        telegram.send_text(who, "/compose")
        _kill_while_composing(telegram, bot, who, mark, database)

        mark = telegram.mark()
        bot = start()
        try:
            replies = telegram.wait_replies(who.id, 4, mark, 120)
            assert replies[0].text == TEXTS["resumed"]["en"]
            assert [s.method for s in replies[1:]] == PIECE
            assert replies[-1].text.startswith(f"{styles[0]} · 64 bars · ")
            assert "temperature 0.5" in replies[-1].text
            shown = telegram.say(who, "/settings")
            assert "temperature: 0.5" in shown and "bars: 64" in shown
            _wait_answered(database)

            # Killed again while making the same request again: this time the user is asked to retry.
            mark = telegram.mark()
            telegram.send_text(who, "/compose")
            _kill_while_composing(telegram, bot, who, mark, database)
            mark = telegram.mark()
            bot = start()
            resumed = telegram.wait_replies(who.id, 1, mark, 60)[0]
            assert resumed.text == TEXTS["resumed"]["en"]
            _kill_while_composing(telegram, bot, who, mark, database)
            mark = telegram.mark()
            bot = start()
            apology: Sent = telegram.wait_replies(who.id, 1, mark, 60)[0]
            assert apology.text == TEXTS["interrupted"]["en"]
            mark = telegram.mark()
            telegram.send_text(who, "/compose")
            assert [s.method for s in telegram.wait_replies(who.id, 3, mark, 120)] == PIECE
        finally:
            assert bot.stop() == 0

    with sqlite3.connect(database) as db:
        requests = db.execute("SELECT status, error FROM requests ORDER BY id").fetchall()
        assert requests == [("done", None), ("done", None), ("failed", "interrupted"), ("done", None)]
        compositions = db.execute("SELECT request_id FROM compositions ORDER BY id").fetchall()
        assert compositions[0] == (1,) and (2,) in compositions and (4,) in compositions
    assert "1 request(s) were left unanswered by the last run" in bot.log()
    assert list(temporary.iterdir()) == [], "temporary files were left behind"


async def test_recovery_makes_recent_requests_again_once_and_apologises_for_the_rest(tmp_path: Path) -> None:
    """Which unanswered request is made again and which is apologised for, without a bot process. Both
    wait on the update queue: nothing is sent before the bot runs."""
    storage = Storage(tmp_path / "bot.sqlite3")
    await storage.open()
    sent: list[tuple[int, str]] = []

    async def send_message(chat_id: int, text: str) -> None:
        sent.append((chat_id, text))

    bot = SimpleNamespace(send_message=send_message)
    app = SimpleNamespace(bot_data={KEY: SimpleNamespace(storage=storage)}, update_queue=asyncio.Queue(),
                          bot=bot)
    params = {"style": "chinese", "bars": 4, "temperature": 1.0, "tempo": None, "instrument": None}
    seed = Melody((60, HOLD, 64, REST), (4, 4), 100.0, 0)
    try:
        ids = {}
        for chat, kind, primer in ((1, "compose", None), (2, "seed", seed), (3, "seed", None),
                                   (4, "compose", None), (5, "again", None), (6, "compose", None)):
            asked = PieceRequest(user_id=chat, chat_id=chat, message_id=None, language="ru", kind=kind,
                                 params=params)
            request = await storage.start_request(asked, primer)
            ids[chat] = request.id
        await storage.mark_pending(ids[4], "resumed")  # already made again once
        await storage.db.execute("UPDATE requests SET created_at = created_at - 7200 WHERE id = ?", (ids[5],))
        await storage.db.commit()
        await storage.finish_request(ids[6])
        await recover(app)  # type: ignore[arg-type]
        assert sent == []

        queued = [app.update_queue.get_nowait() for _ in range(app.update_queue.qsize())]
        assert sorted((u.request.id, type(u).__name__) for u in queued) == [
            (ids[1], "Resume"), (ids[2], "Resume"), (ids[3], "Apologise"), (ids[4], "Apologise"),
            (ids[5], "Apologise")]
        for update in [u for u in queued if type(u).__name__ == "Apologise"]:
            assert await apologise(SimpleNamespace(storage=storage), bot, update.request)  # type: ignore[arg-type]
        assert sorted(sent) == [(chat, TEXTS["interrupted"]["ru"]) for chat in (3, 4, 5)]
        statuses = {r.id: (r.status, r.error) for r in [await storage.get_request(i) for i in ids.values()]}
        assert statuses == {ids[1]: ("pending", "resumed"), ids[2]: ("pending", "resumed"),
                            ids[3]: ("failed", "interrupted"), ids[4]: ("failed", "interrupted"),
                            ids[5]: ("failed", "interrupted"), ids[6]: ("done", None)}
    finally:
        await storage.close()
