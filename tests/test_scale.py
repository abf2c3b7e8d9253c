"""Scale mode (issue 11) against real servers: Redis and PostgreSQL started here on loopback ports,
``python -m bot worker`` processes taking pieces from the Redis queue, and bot replicas (``python -m bot``)
against the fake Bot API server.

- two webhook replicas receive one user's updates interleaved: every request is answered exactly once,
  in order;
- two workers, one SIGKILLed mid-piece: its piece is delivered again to the other, nothing is lost;
- Redis restarted (without its data) mid-run: the bot and the worker reconnect, the piece that was waiting
  is put on the queue again, and later pieces go through;
- a worker stopped with SIGTERM mid-piece hands the job back to the queue at once.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_telegram import BotProcess, FakeTelegram, FakeUser, Sent
from servers import PostgresServer, RedisServer, free_port, postgres_bin, redis_binary
from test_bot_limits import _outcome

from bot.i18n import TEXTS

pytest.importorskip("arq", reason="scale mode needs arq (pip install -e .)")
if redis_binary() is None:
    pytest.skip("redis-server is not installed (make test installs it: apt-get install redis-server)",
                allow_module_level=True)

PIECE = ("sendDocument", "sendVoice", "sendPhoto")
ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count(70_000)
#: Worker time limit: a killed worker's job is delivered again about this long (+ 4 s) after it started.
JOB_SECONDS = "6"


def person() -> FakeUser:
    return FakeUser(next(_ids), "Sam", "en")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def database_url() -> Iterator[str | None]:
    """PostgreSQL when installed (the replicas share it), else a shared SQLite file (``None``)."""
    if postgres_bin() is None:
        yield None
        return
    server = PostgresServer().start()
    try:
        yield server.create_database("scale")
    finally:
        server.close()


class WorkerProcess:
    """``python -m bot worker`` with its own log."""

    def __init__(self, workdir: Path, models_dir: Path, redis_url: str, name: str) -> None:
        self.log_path = workdir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url,
               "MODELS_DIR": str(models_dir.resolve()), "COMPOSE_WORKERS": "1",
               "COMPOSE_TIMEOUT_SECONDS": JOB_SECONDS}
        env.pop("TELEGRAM_BOT_TOKEN", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=workdir, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 90, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker log lacks {text!r}:\n{self.log()}")
            time.sleep(0.02)

    def started(self) -> int:
        return self.log().count("→")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
            redis_server: RedisServer) -> Iterator[list[WorkerProcess]]:
    folder = tmp_path_factory.mktemp("workers")
    started = [WorkerProcess(folder, models_dir, redis_server.url, f"worker{i}") for i in range(2)]
    try:
        for worker in started:
            worker.wait_log("Starting worker")
        yield started
    finally:
        for worker in started:
            worker.stop()


def _bot_env(redis_url: str, database_url: str | None, workdir: Path) -> dict[str, str]:
    env = {"REDIS_URL": redis_url, "COMPOSE_TIMEOUT_SECONDS": JOB_SECONDS, "RATE_LIMIT": "0",
           "DATABASE_PATH": str(workdir / "shared.sqlite3")}
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _pieces(telegram: FakeTelegram, chat_id: int) -> list[Sent]:
    return [s for s in telegram.calls(chat_id=chat_id) if s.method == "sendPhoto"]


class Replica(BotProcess):
    """A bot in webhook mode on its own port; updates are posted to it as Telegram would."""

    SECRET = "scale-test-secret"

    def __init__(self, telegram: FakeTelegram, workdir: Path, models_dir: Path, **env: str) -> None:
        self.port = free_port()
        super().__init__(telegram, workdir, models_dir, WEBHOOK_URL="https://bot.example.org/hook",
                         WEBHOOK_SECRET=self.SECRET, WEBHOOK_PORT=str(self.port), **env)
        self.log_path = workdir / f"replica-{self.port}.log"

    def start(self, ready_timeout: float = 90.0) -> Replica:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=self.workdir, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while "ready with styles" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the replica did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def post(self, update: dict[str, object]) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hook", json.dumps(update).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": self.SECRET})
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _text_update(telegram: FakeTelegram, who: FakeUser, text: str) -> dict[str, object]:
    """The update Telegram would send for ``text`` (recorded by the fake server, never polled here)."""
    update_id = telegram.send_text(who, text)
    return next(u for u in telegram._state.updates if u["update_id"] == update_id)


def test_two_webhook_replicas_answer_each_request_once_and_in_order(
        tmp_path: Path, models_dir: Path, redis_server: RedisServer, database_url: str | None,
        workers: list[WorkerProcess]) -> None:
    with FakeTelegram() as telegram:
        env = _bot_env(redis_server.url, database_url, tmp_path)
        replicas = [Replica(telegram, tmp_path, models_dir, **env) for _ in range(2)]
        for replica in replicas:
            replica.start()
        try:
            who = person()
            a, b = replicas

            def piece_after(mark: int) -> list[Sent]:
                return telegram.wait(lambda sent: [s for s in sent[mark:] if s.chat_id == who.id
                                                   and s.method == "sendPhoto"], 90)

            # Interleaved: a setting to one replica and /compose straight after to the other.
            mark = telegram.mark()
            assert a.post(_text_update(telegram, who, "/bars 4")) == 200
            assert b.post(_text_update(telegram, who, "/compose")) == 200
            first = piece_after(mark)[0]
            assert " 4 bars " in first.text, first.text
            mark = telegram.mark()
            assert b.post(_text_update(telegram, who, "/bars 8")) == 200
            assert a.post(_text_update(telegram, who, "/compose")) == 200
            assert b.post(_text_update(telegram, who, "/compose")) == 200  # one piece at a time, shared
            second = piece_after(mark)[0]
            assert " 8 bars " in second.text, second.text
            time.sleep(1.5)  # anything sent twice would come now
            mine = [s for s in telegram.calls(chat_id=who.id) if s.method in ("sendMessage", *PIECE)]
            texts = [s.text for s in mine if s.method == "sendMessage"]
            assert texts[0] == "Saved: bars = 4." and texts.count("Saved: bars = 8.") == 1, texts
            assert [s.method for s in mine].count("sendPhoto") == 2
            assert [s.method for s in mine].count("sendDocument") == 2
            assert sum(1 for t in texts if t == TEXTS["busy"]["en"]) == 1, texts
        finally:
            for replica in replicas:
                assert replica.stop() == 0, replica.log()


def test_a_worker_killed_mid_piece_loses_nothing(
        tmp_path: Path, models_dir: Path, redis_server: RedisServer, database_url: str | None,
        workers: list[WorkerProcess]) -> None:
    with FakeTelegram() as telegram:
        bot = BotProcess(telegram, tmp_path, models_dir, **_bot_env(redis_server.url, database_url, tmp_path))
        bot.start(90)
        try:
            people = [person() for _ in range(4)]
            mark = telegram.mark()
            before = [w.started() for w in workers]
            for who in people:
                telegram.send_text(who, "/compose")
            victim = None
            deadline = time.monotonic() + 60
            while victim is None and time.monotonic() < deadline:
                victim = next((w for w, b in zip(workers, before, strict=True) if w.started() > b), None)
                time.sleep(0.01)
            assert victim is not None, "no worker started a piece"
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            for who in people:
                outcome = _outcome(telegram, who.id, mark, 90)
                assert [s.method for s in outcome] == list(PIECE), [s.text for s in outcome]
            time.sleep(1.0)
            for who in people:
                assert len(_pieces(telegram, who.id)) == 1
            import redis

            client = redis.Redis.from_url(redis_server.url)
            try:  # nothing left behind: no job on the queue, no result the bot did not take
                assert client.zcard("composer:pieces") == 0
                assert client.keys("arq:result:*") == []
            finally:
                client.close()
        finally:
            assert bot.stop() == 0, bot.log()


def test_the_bot_recovers_when_redis_restarts(
        tmp_path: Path, models_dir: Path, redis_server: RedisServer, database_url: str | None,
        workers: list[WorkerProcess]) -> None:
    alive = [w for w in workers if w.process.poll() is None]
    assert alive, "no worker left"
    with FakeTelegram() as telegram:
        bot = BotProcess(telegram, tmp_path, models_dir, **_bot_env(redis_server.url, database_url, tmp_path))
        bot.start(90)
        try:
            who, other = person(), person()
            mark = telegram.mark()
            telegram.send_text(who, "/compose")
            time.sleep(0.3)  # the piece is on the queue, or being made
            redis_server.restart(down_for=1.0)  # without persistence: the queue is gone
            outcome = _outcome(telegram, who.id, mark, 90)
            assert [s.method for s in outcome] == list(PIECE), [s.text for s in outcome]
            mark = telegram.mark()
            telegram.send_text(other, "/compose")
            assert [s.method for s in _outcome(telegram, other.id, mark, 90)] == list(PIECE)
            assert len(_pieces(telegram, who.id)) == 1
        finally:
            assert bot.stop() == 0, bot.log()


async def test_a_worker_stopped_with_sigterm_hands_its_piece_back_at_once(
        redis_server: RedisServer, workers: list[WorkerProcess]) -> None:
    """Runs last: it stops the module's last worker. The piece goes back on the queue for another."""
    import asyncio

    from bot.queue import QUEUE_NAME, QueueWorkers
    from composer.compose import ComposeRequest

    alive = [w for w in workers if w.process.poll() is None]
    assert alive, "no worker left"
    worker = alive[0]
    queue = QueueWorkers(redis_server.url, max_queue=10, timeout=30)
    await queue.open()
    try:
        before = worker.started()
        waiting = asyncio.create_task(queue.run(ComposeRequest(bars=64)))
        await asyncio.to_thread(worker.wait_log, "→", 60, before + 1)
        stopped = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.process.wait, 20) == 0
        assert time.monotonic() - stopped < 10
        assert "will be run again" in worker.log()
        assert await queue.redis.zcard(QUEUE_NAME) == 1  # waiting for the next worker
        assert await queue.redis.keys("arq:in-progress:*") == []
        assert not waiting.done()
        waiting.cancel()
    finally:
        await queue.redis.delete(QUEUE_NAME)
        await queue.close()
