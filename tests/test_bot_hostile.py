"""Hostile uploads through the real bot (``python -m bot``) and the fake Bot API server.

The files come from the fuzzing engineer's mutators (``tests/midi_corpus.py``), each drawn with a
fixed seed, plus a few hand-made ones, all sent at once from many chats under hostile file names.
Each gets a clear reply (a piece, or the refusal that names what is wrong: never the generic
apology), the bot stays up and answers the next person, no temporary file is left behind, and no
user's file name reaches a path.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_telegram import REPLY_METHODS, BotProcess, FakeTelegram, FakeUser, Sent
from midi_corpus import FIXTURES, MUTATORS, rmid, smf

from bot.i18n import TEXTS
from bot.jobs import MAX_SEED_BYTES
from composer.model_store import ModelLibrary

PIECE = ["sendDocument", "sendVoice", "sendPhoto"]
#: What a user may be told about a file the bot cannot continue.
REFUSALS = {TEXTS[key]["en"].format(limit=MAX_SEED_BYTES // 1024)
            for key in TEXTS if key.startswith("midi_") or key == "bad_primer"}
#: File names a user might send: each must stay a name, never a path the bot opens or writes.
HOSTILE_NAMES = ["../../../evil-up.mid", "/tmp/evil-abs.mid", "..", "evil\x00nul.mid", "evil\nline.mid",
                 "~/evil-home.mid", "%2e%2e%2fevil-quoted.mid", "C:\\evil\\win.mid", "evil-" + "x" * 300,
                 "CON", ""]
_ids = itertools.count(5000)


def hostile_files() -> list[tuple[str, bytes, int | None]]:
    """``(label, bytes, file size Telegram reports or None for the true one)``: two draws of every
    mutator over the fixture files, and hand-made cases."""
    seeds = [path.read_bytes() for path in sorted(FIXTURES.glob("*.mid"))]
    files: list[tuple[str, bytes, int | None]] = []
    for name in sorted(MUTATORS):
        for draw in range(2):
            rng = random.Random(f"{name}-{draw}")
            files.append((f"{name}-{draw}", MUTATORS[name](rng.choice(seeds), rng), None))
    files += [
        ("empty", b"", None),
        ("header only", b"MThd", None),
        ("random bytes", random.Random(0).randbytes(4096), None),
        ("no tracks", smf([]), None),
        ("riff around a real file", rmid(seeds[0], random.Random(1)), None),
        ("lies about its size", b"MThd" + b"\x00" * (MAX_SEED_BYTES + 10), 1000),
    ]
    return files


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def bot(models_dir: Path, workdir: Path) -> Iterator[tuple[FakeTelegram, BotProcess]]:
    styles = [info.name for info in ModelLibrary(models_dir).styles()]
    if not styles:
        pytest.skip(f"no trained models in {models_dir}")
    (workdir / "tmp").mkdir()
    with FakeTelegram() as telegram:
        process = BotProcess(telegram, workdir, models_dir, DEFAULT_STYLE=styles[0], RATE_LIMIT="0",
                             TMPDIR=str(workdir / "tmp")).start()
        try:
            yield telegram, process
        finally:
            assert process.stop() == 0


def _answer(telegram: FakeTelegram, who: FakeUser, mark: int) -> list[Sent]:
    """The chat's reply to one upload: a refusal message, or the three parts of a piece."""
    queued = TEXTS["queued"]["en"].split("{")[0]  # a note on the piece's place in the queue: not the answer

    def check(sent: list[Sent]) -> list[Sent] | None:
        mine = [s for s in sent[mark:] if s.chat_id == who.id and s.method in REPLY_METHODS
                and not s.text.startswith(queued)]
        if mine and mine[0].method == "sendMessage":
            return mine[:1]
        return mine[:3] if len(mine) >= 3 else None

    return telegram.wait(check, 120)


def test_every_hostile_file_gets_a_clear_reply_and_the_bot_stays_up(
        bot: tuple[FakeTelegram, BotProcess], workdir: Path) -> None:
    telegram, process = bot
    files = hostile_files()
    mark = telegram.mark()
    senders = []
    for (label, data, size), name in zip(files, itertools.cycle(HOSTILE_NAMES), strict=False):
        who = FakeUser(next(_ids), "Eve", "en")
        telegram.send_document(who, data, name, "audio/midi", file_size=size)
        senders.append((label, who))
    outcomes: dict[str, str] = {}
    for label, who in senders:
        replies = _answer(telegram, who, mark)
        if replies[0].method == "sendMessage":
            assert replies[0].text in REFUSALS, (label, replies[0].text)
            outcomes[label] = replies[0].text
        else:
            assert [s.method for s in replies] == PIECE, label
            assert re.fullmatch(r"melody-\d+-[a-z+]+\.mid", replies[0].upload().filename), label
            outcomes[label] = "piece"
    assert len(outcomes) == len(files)
    assert "piece" in outcomes.values() and len(set(outcomes.values())) >= 4, outcomes
    too_large = TEXTS["midi_too_large"]["en"].format(limit=MAX_SEED_BYTES // 1024)
    assert outcomes["lies about its size"] == too_large

    assert process.process is not None and process.process.poll() is None, "the bot died"
    newcomer = FakeUser(next(_ids), "Bob", "en")
    mark = telegram.mark()
    telegram.send_text(newcomer, "/compose")
    assert [s.method for s in telegram.wait_replies(newcomer.id, 3, mark, 120)] == PIECE

    # Every chat got exactly its answer, nothing twice.
    for _, who in senders:
        count = len([s for s in telegram.calls(chat_id=who.id, after=0) if s.method in REPLY_METHODS
                     and not s.text.startswith(TEXTS["queued"]["en"].split("{")[0])])
        assert count in (1, 3), who
    assert list((workdir / "tmp").iterdir()) == [], "temporary files were left behind"
    assert {p.name for p in workdir.iterdir()} <= {"tmp", "bot.log", "bot.sqlite3", "bot.sqlite3-wal",
                                                   "bot.sqlite3-shm"}
    assert not list(workdir.parent.rglob("*evil*")) and not Path("/tmp/evil-abs.mid").exists(), (
        "a user's file name reached a path")
    assert "Traceback" not in process.log()
