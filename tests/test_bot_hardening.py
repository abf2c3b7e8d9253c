"""Issue 10's faults, each on the part that had it, in-process: the worker queue and pool, admission,
storage (settings, commits, shared seed melodies, retention), recovery's apologies, configuration.

The conversations that prove the same faults against the real bot are in ``test_bot_limits.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from telegram.error import Forbidden, NetworkError

from bot.config import ConfigError, load_config
from bot.i18n import TEXTS
from bot.recovery import apologise
from bot.storage import PieceRequest, Storage
from bot.worker import Busy, Gate, WorkerLost, Workers
from composer.melody import HOLD, REST, Melody

PARAMS = {"style": "chinese", "bars": 4, "temperature": 1.0, "tempo": None, "instrument": None}


# Worker processes: what the test pools run instead of composing (importable in a spawned process)


def quiet_init(*_: object) -> None:
    """No models to load."""


def sleep_or_die(seconds: Any, _primer: object) -> str:
    """Sleep ``seconds`` (the "request"), or end this worker process abruptly if it is negative."""
    if seconds < 0:
        os._exit(9)
    time.sleep(seconds)
    return f"slept {seconds}"


async def _workers(workers: int, timeout: float, **extra: Any) -> Workers:
    """A started pool whose processes are up (start-up is not what these tests time)."""
    pool = Workers(Path("."), None, workers, 100, 120.0, target=sleep_or_die, initializer=quiet_init,
                   **extra)
    pool.start()
    await asyncio.gather(*(pool.run(0.0) for _ in range(workers)))
    pool.timeout = timeout
    return pool


async def test_the_time_limit_counts_the_run_only_and_a_waiting_piece_hears_its_place() -> None:
    """Fault 7: with one worker and three pieces of 1 s under a 2.5 s limit, the third waits 2 s; timed
    from the queue (as before) it would have run out of time without running."""
    workers = await _workers(1, 2.5, queue_notice=0.3)
    places: dict[int, list[int]] = {1: [], 2: [], 3: []}
    try:
        runs = [asyncio.create_task(workers.run(1.0, on_queued=lambda place, n=n: _note(places[n], place)))
                for n in (1, 2, 3)]
        await asyncio.sleep(0.1)
        assert workers.in_flight == 3
        assert await asyncio.gather(*runs) == ["slept 1.0"] * 3
        assert places == {1: [], 2: [1], 3: [2]}
        assert workers.in_flight == 0
    finally:
        workers.shutdown()


async def _note(places: list[int], place: int) -> None:
    places.append(place)


async def test_a_piece_that_overruns_keeps_its_worker_in_the_count_until_it_ends() -> None:
    """Fault 7: the user hears of the time-out at once, but the worker stays busy (and counted), so the
    next piece waits for it rather than piling up behind it unseen."""
    workers = await _workers(1, 0.5)
    try:
        with pytest.raises(TimeoutError):
            await workers.run(2.0)
        assert workers.in_flight == 1
        started = time.monotonic()
        assert await workers.run(0.0) == "slept 0.0"
        assert time.monotonic() - started > 0.5  # it waited for the overrun piece to end
        assert workers.in_flight == 0
    finally:
        workers.shutdown()


async def test_a_dead_worker_restarts_the_pool_once_and_the_other_pieces_are_made() -> None:
    """Fault 1: a worker process is killed while two pieces run and two wait. Before, every piece that
    saw the broken pool started a fresh one, and the pieces failed; now one restart, and the two that
    were running are made again on the fresh pool."""
    workers = await _workers(2, 30.0)
    try:
        pieces = [asyncio.create_task(workers.run(1.5)) for _ in range(4)]
        await asyncio.sleep(0.5)
        assert workers._pool is not None
        victim = next(iter(workers._pool._processes))  # a worker process's pid
        os.kill(victim, signal.SIGKILL)
        assert await asyncio.gather(*pieces) == ["slept 1.5"] * 4
        assert workers.restarts == 1
        assert workers.in_flight == 0
    finally:
        workers.shutdown()


async def test_a_piece_that_kills_every_worker_it_gets_is_tried_once_more_then_refused() -> None:
    """Fault 1: such a piece ends in ``WorkerLost`` (the user is told) after one retry, not in silence
    and not in a loop of fresh pools."""
    workers = await _workers(2, 30.0)
    try:
        with pytest.raises(WorkerLost):
            await workers.run(-1.0)
        assert workers.restarts == 2
        assert await workers.run(0.1) == "slept 0.1"  # the pool works again
    finally:
        workers.shutdown()


# Admission


def test_a_late_second_release_cannot_let_a_third_piece_in() -> None:
    """Fault 8: recovery released an admission that jobs had already released; the user's next piece
    was then let in beside the one running."""
    gate = Gate(limit=0, window=60.0)
    first = gate.enter(1)
    first.release()
    second = gate.enter(1)
    first.release()  # late, from another path
    with pytest.raises(Busy):
        gate.enter(1)
    second.release()
    gate.enter(1)


def test_the_gate_forgets_users_a_window_after_their_last_piece() -> None:
    """Fault 8: ``Gate._recent`` kept an entry for every user who ever asked."""
    now = [0.0]
    gate = Gate(limit=5, window=60.0, clock=lambda: now[0])
    for user in range(1000):
        gate.enter(user).release()
    now[0] = 61.0
    gate.enter(5000).release()
    assert len(gate._recent) == 1


# Storage


async def _storage(tmp_path: Path) -> Storage:
    storage = Storage(tmp_path / "bot.sqlite3")
    await storage.open()
    return storage


async def test_two_settings_changed_at_once_are_both_kept(tmp_path: Path) -> None:
    """Fault 8: ``update_settings`` read the old values outside its transaction (a lost update)."""
    storage = await _storage(tmp_path)
    try:
        for _ in range(5):
            await storage.reset_settings(1)
            await asyncio.gather(storage.update_settings(1, bars=8),
                                 storage.update_settings(1, temperature=0.5),
                                 storage.update_settings(1, tempo=90))
            settings = await storage.get_settings(1)
            assert (settings.bars, settings.temperature, settings.tempo) == (8, 0.5, 90)
    finally:
        await storage.close()


async def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault 8: a COMMIT that fails (disk full, busy) left the connection inside the transaction, so
    every later write failed or joined it."""
    storage = await _storage(tmp_path)
    try:
        real_commit = storage.db.commit
        calls = [0]

        async def failing_commit() -> None:
            calls[0] += 1
            if calls[0] == 1:
                raise sqlite3.OperationalError("database or disk is full")
            await real_commit()

        monkeypatch.setattr(storage.db, "commit", failing_commit)
        with pytest.raises(sqlite3.OperationalError):
            await storage.update_settings(1, bars=8)
        assert not storage.db.in_transaction
        await storage.update_settings(2, bars=12)
        monkeypatch.undo()
        assert (await storage.get_settings(1)).bars == 16  # the failed write is not there
    finally:
        await storage.close()
    with sqlite3.connect(tmp_path / "bot.sqlite3") as raw:  # and the later one reached the file
        assert raw.execute("SELECT bars FROM users WHERE user_id = 2").fetchone() == (12,)


async def test_seed_melodies_are_shared_and_old_pieces_are_deleted_and_compacted(tmp_path: Path) -> None:
    """Fault 4: requests share one stored seed melody; ``cleanup`` deletes pieces and finished requests
    older than the retention period, then the melodies nobody uses, and compacts the file."""
    storage = await _storage(tmp_path)
    melody = Melody((60, HOLD, 62, REST) * 64, (4, 4), 100.0, 0)
    try:
        ids = []
        for n in range(300):
            request = PieceRequest(user_id=n, chat_id=n, message_id=None, language="en", kind="seed",
                                   params=PARAMS)
            stored = await storage.start_request(request, melody)
            await storage.add_composition(stored, seed=n, description="d" * 200, midi=b"MThd" + bytes(3000))
            await storage.finish_request(stored.id)
            ids.append(stored.id)
        assert len({(await storage.get_request(i)).primer_id for i in ids}) == 1
        pending = await storage.start_request(PieceRequest(user_id=1, chat_id=1, message_id=None,
                                                           language="en", kind="compose", params=PARAMS))
        assert await storage.cleanup(30, now=time.time() + 10 * 86400) == 0
        size = (tmp_path / "bot.sqlite3").stat().st_size
        removed = await storage.cleanup(30, now=time.time() + 31 * 86400)
        assert removed == 300 + 300 + 1
        assert [r.id for r in await storage.pending_requests()] == [pending.id]  # never a pending one
        assert await storage.get_composition(1) is None
        assert (tmp_path / "bot.sqlite3").stat().st_size < size / 4
    finally:
        await storage.close()


# Recovery


async def test_an_apology_that_cannot_be_sent_now_stays_pending(tmp_path: Path) -> None:
    """Fault 8: an apology that failed to send was closed as if sent; now a network failure leaves the
    request pending (the next start tries again) and only an unreachable chat closes it unsent."""
    storage = await _storage(tmp_path)
    outcomes: list[Exception | None] = [NetworkError("down")] * 3 + [Forbidden("blocked"), None]
    sent: list[tuple[int, str]] = []

    async def send_message(chat_id: int, text: str) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        sent.append((chat_id, text))

    found = SimpleNamespace(storage=storage)
    bot = SimpleNamespace(send_message=send_message)
    try:
        requests = [await storage.start_request(PieceRequest(user_id=n, chat_id=n, message_id=None,
                                                             language="en", kind="compose", params=PARAMS))
                    for n in (1, 2, 3)]
        assert not await apologise(found, bot, requests[0], pause=0)  # type: ignore[arg-type]
        assert await apologise(found, bot, requests[1], pause=0)  # type: ignore[arg-type]
        assert await apologise(found, bot, requests[2], pause=0)  # type: ignore[arg-type]
        states = [((r := await storage.get_request(q.id)).status, r.error) for q in requests]
        assert states == [("pending", None), ("failed", "undeliverable"), ("failed", "interrupted")]
        assert sent == [(3, TEXTS["interrupted"]["en"])]
    finally:
        await storage.close()


# Configuration


def test_a_webhook_needs_a_secret_and_listens_locally_by_default(tmp_path: Path) -> None:
    """Fault 2: without ``WEBHOOK_SECRET`` anyone reaching the port could post updates as any user."""
    base = {"TELEGRAM_BOT_TOKEN": "1:x", "WEBHOOK_URL": "https://example.org/hook"}
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_config(base, None)
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_config({**base, "WEBHOOK_SECRET": "not allowed!"}, None)
    config = load_config({**base, "WEBHOOK_SECRET": "s3cret_-x"}, None)
    assert config.webhook_secret == "s3cret_-x" and config.webhook_listen == "127.0.0.1"


def test_the_new_limits_are_read_and_checked() -> None:
    config = load_config({"TELEGRAM_BOT_TOKEN": "1:x", "MAX_CHAT_BACKLOG": "5", "RETENTION_DAYS": "0",
                          "MAX_PIECE_SECONDS": "120"}, None)
    assert (config.max_chat_backlog, config.retention_days, config.max_piece_seconds) == (5, 0.0, 120.0)
    for name, value in (("MAX_CHAT_BACKLOG", "0"), ("RETENTION_DAYS", "-1"), ("MAX_PIECE_SECONDS", "5000")):
        with pytest.raises(ConfigError, match=name):
            load_config({"TELEGRAM_BOT_TOKEN": "1:x", name: value}, None)
