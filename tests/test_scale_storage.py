"""The storage against both back-ends (SQLite at a path, PostgreSQL through ``DATABASE_URL``), and the
Redis parts of scale mode on their own (the shared gate, the place in the queue), against servers started
here (``tests/servers.py``)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import PostgresServer, RedisServer, postgres_bin, redis_binary

from bot.settings import Settings
from bot.storage import MIGRATIONS, PieceRequest, Storage
from composer.compose import ComposeRequest
from composer.melody import HOLD, REST, Melody

_databases = itertools.count(1)
PARAMS = {"style": "classical", "bars": 8, "temperature": 1.0, "tempo": None, "instrument": None}
#: A supergroup's chat id: past 32 bits.
BIG_CHAT = -1001234567890


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make test installs it: apt-get install postgresql)")
    pytest.importorskip("asyncpg")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open, empty storage of each kind."""
    if request.param == "sqlite":
        store: Any = Storage(tmp_path / "bot.sqlite3")
    else:
        from bot.pg_storage import PgStorage

        server = request.getfixturevalue("postgres")
        url = await asyncio.to_thread(server.create_database, f"t{next(_databases)}")
        store = PgStorage(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def test_postgres_storage_has_every_method_of_sqlite_storage() -> None:
    pytest.importorskip("asyncpg")
    from bot.pg_storage import PgStorage

    wanted = {name for name, value in vars(Storage).items()
              if not name.startswith("_") and inspect.iscoroutinefunction(value)} - {"compact"}
    missing = {name for name in wanted if not inspect.iscoroutinefunction(getattr(PgStorage, name, None))}
    assert not missing, f"PgStorage lacks {sorted(missing)}"


def test_every_migration_translates_to_postgres() -> None:
    pytest.importorskip("asyncpg")
    from bot.pg_storage import pg_script

    for script in MIGRATIONS:
        text = pg_script(script)
        assert "AUTOINCREMENT" not in text and " BLOB" not in text and " REAL" not in text


async def test_settings_migrate_and_are_kept(storage: Any) -> None:
    assert await storage.schema_version() == len(MIGRATIONS)
    assert await storage.get_settings(BIG_CHAT) == Settings()
    await storage.update_settings(BIG_CHAT, temperature=0.8, style="celtic")
    await storage.update_settings(BIG_CHAT, bars=8, accompaniment=False)
    assert await storage.get_settings(BIG_CHAT) == Settings(style="celtic", temperature=0.8, bars=8,
                                                            accompaniment=False)
    with pytest.raises(ValueError):
        await storage.update_settings(1, colour="red")
    # Two changes at once keep both.
    await asyncio.gather(storage.update_settings(2, bars=12), storage.update_settings(2, tempo=90))
    assert (await storage.get_settings(2)).bars == 12 and (await storage.get_settings(2)).tempo == 90
    await storage.reset_settings(BIG_CHAT)
    assert await storage.get_settings(BIG_CHAT) == Settings()


async def test_requests_primers_and_compositions(storage: Any) -> None:
    primer = Melody((60, HOLD, 62, REST), (4, 4), 90.0, 40)
    request = await storage.start_request(PieceRequest(user_id=BIG_CHAT, chat_id=BIG_CHAT, message_id=3,
                                                       language="ru", kind="seed", params=PARAMS), primer)
    assert request.id is not None and request.status == "pending" and request.chat_id == BIG_CHAT
    assert [r.id for r in await storage.pending_requests()] == [request.id]
    composition_id = await storage.add_composition(request, seed=2**32 - 1, description="d", midi=b"MThd\0")
    await storage.mark_pending(request.id, "resumed")
    assert (await storage.get_request(request.id)).error == "resumed"
    await storage.finish_request(request.id)
    assert await storage.pending_requests() == []
    composition = await storage.get_composition(composition_id)
    assert composition is not None and composition.midi == b"MThd\0" and composition.seed == 2**32 - 1
    assert composition.request.params == PARAMS
    assert await storage.get_primer(composition.request.primer_id) == primer
    # The same seed melody is stored once and shared.
    again = await storage.start_request(PieceRequest(user_id=1, chat_id=1, message_id=None, language="en",
                                                     kind="compose", params=PARAMS))
    assert await storage.attach_primer(again.id, primer) == composition.request.primer_id
    await storage.finish_request(again.id, error="timeout")
    assert (await storage.get_request(again.id)).status == "failed"
    assert await storage.get_composition(999) is None
    with pytest.raises(ValueError):
        await storage.start_request(PieceRequest(user_id=1, chat_id=1, message_id=None, language="en",
                                                 kind="nope", params={}))
    # Retention: everything finished is old a year from now; nothing pending was.
    assert await storage.cleanup(30, now=time.time() + 365 * 86400) >= 3
    assert await storage.get_composition(composition_id) is None
    assert await storage.get_request(again.id) is None


# Redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (make test installs it: apt-get install redis-server)")
    pytest.importorskip("arq")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


async def test_the_shared_gate_admits_one_piece_per_user_and_limits_the_rate(
        redis_server: RedisServer) -> None:
    from bot.queue import RedisGate
    from bot.worker import Busy, RateLimited

    gates = [RedisGate(redis_server.url, limit=2, window=30, hold=60) for _ in range(2)]  # two replicas
    for gate in gates:
        await gate.start()
    try:
        user = 5_000 + int(time.time()) % 1000
        first = await gates[0].admit(user)
        with pytest.raises(Busy):
            await gates[1].admit(user)
        first.release()
        first.release()  # idempotent
        await asyncio.gather(*gates[0]._tasks)
        second = await gates[1].admit(user)
        second.release()
        await asyncio.gather(*gates[1]._tasks)
        with pytest.raises(RateLimited) as limited:
            await gates[0].admit(user)
        assert 0 < limited.value.retry_after <= 30
        assert (await gates[1].admit(user + 1)) is not None  # others are not affected
    finally:
        for gate in gates:
            await gate.close()


async def test_a_waiting_piece_is_told_its_place_in_the_shared_queue(redis_server: RedisServer) -> None:
    """No worker runs here: the pieces wait, and each is told its place once."""
    from bot.queue import QUEUE_NAME, QueueWorkers

    queue = QueueWorkers(redis_server.url, max_queue=10, timeout=5, queue_notice=0.2, wait_limit=3)
    await queue.open()
    try:
        await queue.redis.delete(QUEUE_NAME)
        places: list[list[int]] = [[], [], []]

        def told(i: int) -> Any:
            async def on_queued(place: int) -> None:
                places[i].append(place)
            return on_queued

        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(queue.run(ComposeRequest(bars=4), on_queued=told(i))))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        assert places == [[1], [2], [3]]
        for task in tasks:
            with pytest.raises(TimeoutError):  # nobody took them within the wait limit
                await task
    finally:
        await queue.redis.delete(QUEUE_NAME)
        await queue.close()


async def test_a_replica_takes_over_only_the_requests_of_replicas_that_are_gone(
        redis_server: RedisServer, tmp_path: Path) -> None:
    from bot.queue import ClaimingStorage

    shared = Storage(tmp_path / "shared.sqlite3")
    replicas = [ClaimingStorage(shared, redis_server.url) for _ in range(3)]
    await shared.open()
    for replica in replicas:
        replica._storage = _Unclosable(shared)
        await replica.open()
        replica.min_age = replica.settle_seconds = 0
    try:
        a, b, c = replicas
        request = await a.start_request(PieceRequest(user_id=3, chat_id=3, message_id=None, language="en",
                                                     kind="compose", params=PARAMS))
        assert await b.pending_requests() == []  # a is alive and making it
        assert await a.pending_requests() == []  # and a does not take its own
        await a._heartbeat_stop()  # a dies
        assert [r.id for r in await b.pending_requests()] == [request.id]  # b takes it over
        assert await c.pending_requests() == []  # and nobody else does
        b.settle_seconds = c.settle_seconds = 3600  # as if Redis had just restarted without its data
        await b.redis.delete(f"composer:owner:{request.id}")
        assert await c.pending_requests() == [] and await b.pending_requests() == []
        await b.finish_request(request.id)
        assert await shared.pending_requests() == []
    finally:
        for replica in replicas:
            await replica.close()
        await shared.close()


class _Unclosable:
    """The one storage the replicas share here: opened and closed by the test, not by each replica."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    async def open(self) -> None:
        """Opened once by the test."""

    async def close(self) -> None:
        """Closed once by the test."""
