"""SQLite storage (aiosqlite, WAL): settings, requests in flight, and each user's compositions.

Every request is written as ``pending`` before work starts and marked ``done`` or ``failed`` when it
ends, with what it asked for (``params`` JSON and any primer MIDI), so a restarted bot can find the
requests it never answered and redo or apologise for them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

from bot.settings import Settings

#: Schema migrations; the database's ``PRAGMA user_version`` is the number applied so far.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY,
        style TEXT,
        temperature REAL NOT NULL DEFAULT 1.0,
        bars INTEGER NOT NULL DEFAULT 16,
        tempo INTEGER,
        instrument TEXT,
        language TEXT,
        updated_at REAL NOT NULL
    );
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER,
        language TEXT NOT NULL,
        kind TEXT NOT NULL,
        params TEXT NOT NULL,
        primer_midi BLOB,
        parent_id INTEGER,
        status TEXT NOT NULL DEFAULT 'pending',
        error TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX requests_pending ON requests (created_at) WHERE status = 'pending';
    CREATE TABLE compositions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id INTEGER NOT NULL REFERENCES requests (id),
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        description TEXT NOT NULL,
        midi BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX compositions_user ON compositions (user_id, id);
    """,
)

REQUEST_KINDS = ("compose", "again", "continue", "seed")


@dataclass(frozen=True)
class Request:
    """A piece someone asked for: ``params`` holds the settings it was made with."""

    id: int
    user_id: int
    chat_id: int
    message_id: int | None
    language: str
    kind: str
    params: dict[str, Any]
    primer_midi: bytes | None
    parent_id: int | None
    status: str
    created_at: float
    #: Why it failed; on a pending request, ``resumed`` marks one a restarted bot is making again.
    error: str | None = None


@dataclass(frozen=True)
class Composition:
    id: int
    request: Request
    seed: int
    description: str
    midi: bytes


class Storage:
    """One aiosqlite connection; writes are serialised so concurrent handlers never share a transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("storage is not open")
        return self._db

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        version = await self.schema_version()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with self._write() as db:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction, committed on success and rolled back on any error."""
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.rollback()
                raise
            await self.db.commit()

    # Settings

    async def get_settings(self, user_id: int) -> Settings:
        async with self.db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return Settings()
        return Settings(**{f.name: row[f.name] for f in fields(Settings)})

    async def update_settings(self, user_id: int, **changes: Any) -> Settings:
        """Set some fields (``None`` restores that field's default) and return the result."""
        unknown = set(changes) - {f.name for f in fields(Settings)}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        current = asdict(await self.get_settings(user_id)) | changes
        columns = list(current)
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO users (user_id, {', '.join(columns)}, updated_at) "
                f"VALUES (?, {', '.join('?' for _ in columns)}, ?) "
                f"ON CONFLICT (user_id) DO UPDATE SET "
                f"{', '.join(f'{c} = excluded.{c}' for c in columns)}, updated_at = excluded.updated_at",
                (user_id, *current.values(), time.time()),
            )
        return Settings(**current)

    async def reset_settings(self, user_id: int) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))

    # Requests and compositions

    async def start_request(
        self,
        *,
        user_id: int,
        chat_id: int,
        message_id: int | None,
        language: str,
        kind: str,
        params: dict[str, Any],
        primer_midi: bytes | None = None,
        parent_id: int | None = None,
    ) -> Request:
        """Record a request as ``pending`` before any work on it starts."""
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {kind!r}")
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO requests (user_id, chat_id, message_id, language, kind, params, primer_midi, "
                "parent_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, chat_id, message_id, language, kind, json.dumps(params), primer_midi, parent_id,
                 time.time()),
            )
            request_id = int(cursor.lastrowid or 0)
        request = await self.get_request(request_id)
        assert request is not None
        return request

    async def finish_request(self, request_id: int, error: str | None = None) -> None:
        """Mark a request ``done``, or ``failed`` with ``error`` (a short code, never user data)."""
        async with self._write() as db:
            await db.execute(
                "UPDATE requests SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                ("failed" if error else "done", error, time.time(), request_id),
            )

    async def set_primer(self, request_id: int, primer_midi: bytes) -> None:
        """Add the seed file to a request once it is downloaded."""
        async with self._write() as db:
            await db.execute("UPDATE requests SET primer_midi = ? WHERE id = ?", (primer_midi, request_id))

    async def mark_pending(self, request_id: int, note: str) -> None:
        """Put ``note`` on a request that stays pending (``resumed``: a restarted bot is making it again)."""
        async with self._write() as db:
            await db.execute("UPDATE requests SET error = ? WHERE id = ? AND status = 'pending'",
                             (note, request_id))

    async def add_composition(self, request: Request, *, seed: int, description: str, midi: bytes) -> int:
        """Store what a request produced (the request stays ``pending`` until its replies are sent)."""
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO compositions (request_id, user_id, chat_id, seed, description, midi, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (request.id, request.user_id, request.chat_id, seed, description, midi, time.time()),
            )
            return int(cursor.lastrowid or 0)

    async def get_request(self, request_id: int) -> Request | None:
        async with self.db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _request(row)

    async def pending_requests(self) -> list[Request]:
        """Requests never answered (the bot stopped while making them), oldest first."""
        async with self.db.execute(
            "SELECT * FROM requests WHERE status = 'pending' ORDER BY created_at"
        ) as cursor:
            return [_request(row) for row in await cursor.fetchall()]

    async def get_composition(self, composition_id: int) -> Composition | None:
        async with self.db.execute(
            "SELECT * FROM compositions WHERE id = ?", (composition_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        request = await self.get_request(row["request_id"])
        if request is None:
            return None
        return Composition(row["id"], request, row["seed"], row["description"], bytes(row["midi"]))


def _request(row: aiosqlite.Row) -> Request:
    return Request(
        id=row["id"],
        user_id=row["user_id"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        language=row["language"],
        kind=row["kind"],
        params=json.loads(row["params"]),
        primer_midi=None if row["primer_midi"] is None else bytes(row["primer_midi"]),
        parent_id=row["parent_id"],
        status=row["status"],
        created_at=row["created_at"],
        error=row["error"],
    )
