"""The bot as a process: start-up errors, clean shutdown, a restart that keeps settings and history,
the allow-list, and the pending rows a killed bot leaves behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser, Sent

from composer.model_store import ModelLibrary

ROOT = Path(__file__).resolve().parent.parent


def run_bot(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "MODELS_DIR"))}
    return subprocess.run([sys.executable, "-m", "bot"], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                          timeout=60)


def test_a_missing_token_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = run_bot({}, tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "@BotFather" in done.stderr and "Traceback" not in done.stderr


def test_no_models_is_one_line_too(tmp_path: Path) -> None:
    done = run_bot({"TELEGRAM_BOT_TOKEN": "1:x", "MODELS_DIR": str(tmp_path / "none")}, tmp_path)
    assert done.returncode == 2
    assert "no trained models" in done.stderr and "Traceback" not in done.stderr


def _piece(telegram: FakeTelegram, who: FakeUser, mark: int) -> Sent:
    replies = telegram.wait_replies(who.id, 3, mark, 90)
    assert [s.method for s in replies] == ["sendDocument", "sendVoice", "sendPhoto"]
    return replies[-1]


def test_a_restart_keeps_settings_and_the_buttons_still_work(models_dir: Path, tmp_path: Path) -> None:
    styles = [info.name for info in ModelLibrary(models_dir).styles()]
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    who, stranger = FakeUser(1, "Ann", "en"), FakeUser(2, "Bob", "en")
    with FakeTelegram() as telegram:
        bot = BotProcess(telegram, tmp_path, models_dir, DEFAULT_STYLE=styles[0]).start()
        try:
            assert telegram.say(who, "/temperature 0.5") == "Saved: temperature = 0.5."
            assert telegram.say(who, "/bars 4") == "Saved: bars = 4."
            assert telegram.say(who, "/language ru") == "Сохранено: язык = русский."
            mark = telegram.mark()
            telegram.send_text(who, "/compose")
            photo = _piece(telegram, who, mark)
        finally:
            started = time.monotonic()
            assert bot.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 20, "the bot took too long to stop"

        bot = BotProcess(telegram, tmp_path, models_dir, DEFAULT_STYLE=styles[0], ALLOWED_USER_IDS="1")
        bot.start()
        try:
            shown = telegram.say(who, "/settings")
            assert "температура: 0.5" in shown and "тактов: 4" in shown and "язык: русский" in shown
            buttons = {data.split(":")[0]: data for _, data in photo.buttons()}
            mark = telegram.mark()
            telegram.press(who, photo, buttons["again"])
            assert "тактов: 4" in _piece(telegram, who, mark).text
            mark = telegram.mark()
            telegram.press(who, photo, buttons["cont"])
            parent = buttons["cont"].split(":")[1]
            assert f"Продолжение мелодии №{parent}." in _piece(telegram, who, mark).text
            assert telegram.say(stranger, "/help") == "Sorry, this bot is private."
        finally:
            assert bot.stop() == 0


def test_an_unexpected_error_is_logged_and_answered_politely(models_dir: Path, tmp_path: Path) -> None:
    styles = [info.name for info in ModelLibrary(models_dir).styles()]
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    who = FakeUser(4, "Ann", "ru")
    with FakeTelegram() as telegram:
        bot = BotProcess(telegram, tmp_path, models_dir, LOG_LEVEL="DEBUG").start()
        try:
            telegram.fail("sendDocument", 400, "Bad Request: file is too big")
            mark = telegram.mark()
            telegram.send_text(who, "/compose")
            apology = telegram.wait_replies(who.id, 1, mark, 60)[0].text
            assert apology.startswith("Простите, у меня что-то сломалось")
            mark = telegram.mark()
            telegram.send_text(who, "/compose")
            assert [s.method for s in telegram.wait_replies(who.id, 3, mark, 60)] == [
                "sendDocument", "sendVoice", "sendPhoto"]
        finally:
            assert bot.stop() == 0
    log = bot.log()
    assert "error while handling an update" in log and "File is too big" in log
    assert telegram.token not in log and "[REDACTED]" in log
    with sqlite3.connect(tmp_path / "bot.sqlite3") as db:
        assert db.execute("SELECT status, error FROM requests ORDER BY id").fetchall() == [
            ("failed", "internal"), ("done", None)]
