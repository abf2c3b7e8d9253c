"""SQLite storage (aiosqlite, WAL): settings, requests in flight, and each user's compositions.

Every request is written as ``pending`` before work starts and marked ``done`` or ``failed`` when it
ends, with what it asked for (``params`` JSON and any seed melody), so a restarted bot can find the
requests it never answered and redo or apologise for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

from bot.settings import Settings
from composer.melody import Melody

log = logging.getLogger(__name__)

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
    # 2: seed melodies as extracted (never the uploaded file), shared by the requests that use them.
    """
    CREATE TABLE primers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        digest TEXT NOT NULL UNIQUE,
        melody TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    ALTER TABLE requests ADD COLUMN primer_id INTEGER REFERENCES primers (id);
    CREATE INDEX requests_primer ON requests (primer_id);
    CREATE INDEX requests_created ON requests (created_at);
    CREATE INDEX compositions_created ON compositions (created_at);
    UPDATE requests SET primer_midi = NULL
    """,
    # 3: accompaniment on or off (issue 12).
    """
    ALTER TABLE users ADD COLUMN accompaniment INTEGER NOT NULL DEFAULT 1
    """,
    # 4: key and metre (issue 9).
    """
    ALTER TABLE users ADD COLUMN key TEXT;
    ALTER TABLE users ADD COLUMN metre TEXT
    """,
)

REQUEST_KINDS = ("compose", "again", "continue", "seed")
WAL_LIMIT_BYTES = 1024 * 1024
#: Compaction (VACUUM) runs when at least this share of the file is free pages.
COMPACT_FREE_SHARE = 0.25


@dataclass(frozen=True)
class PieceRequest:
    """A piece someone asked for: who (``user_id``: a user, or the chat an anonymous admin or a channel
    speaks for), where the answer goes, the settings it is made with (``params``) and the seed melody
    it continues (``primer_id``). ``id`` is ``None`` until the request is stored."""

    user_id: int
    chat_id: int
    message_id: int | None
    language: str
    kind: str
    params: dict[str, Any]
    primer_id: int | None = None
    parent_id: int | None = None
    id: int | None = None
    status: str = "pending"
    created_at: float = 0.0
    #: Why it failed; on a pending request, ``resumed`` marks one a restarted bot is making again.
    error: str | None = None


@dataclass(frozen=True)
class StoredPiece:
    """A piece as kept for its buttons: the request that made it, its seed and its MIDI."""

    id: int
    request: PieceRequest
    seed: int
    description: str
    midi: bytes


def melody_json(melody: Melody) -> str:
    """``melody`` as compact JSON (what ``primers`` keeps)."""
    return json.dumps({f.name: getattr(melody, f.name) for f in fields(Melody) if f.init},
                      separators=(",", ":"))


def melody_from_json(text: str) -> Melody:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()}
    return Melody(**values)


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
        # The WAL is cut back to this after each checkpoint (it otherwise keeps its largest size).
        await self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        await self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
            if self.db.in_transaction:  # never build on a transaction something else left open
                await self.db.rollback()
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                await self.db.commit()
            except BaseException:
                # Also when COMMIT itself failed (disk full, busy): the transaction must not stay open.
                with contextlib.suppress(Exception):
                    await self.db.rollback()
                raise

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
        async with self._write() as db:
            # Read inside the transaction: two chats changing two settings at once keep both.
            async with db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)) as cursor:
                row = await cursor.fetchone()
            old = Settings() if row is None else Settings(**{f.name: row[f.name] for f in fields(Settings)})
            current = asdict(old) | changes
            columns = list(current)
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

    async def start_request(self, request: PieceRequest, primer: Melody | None = None) -> PieceRequest:
        """Record a request as ``pending`` before any work on it starts (with ``primer``, stored once
        and shared, as its seed melody); returns it as stored."""
        if request.kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {request.kind!r}")
        async with self._write() as db:
            primer_id = request.primer_id if primer is None else await self._primer_id(db, primer)
            cursor = await db.execute(
                "INSERT INTO requests (user_id, chat_id, message_id, language, kind, params, primer_id, "
                "parent_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request.user_id, request.chat_id, request.message_id, request.language, request.kind,
                 json.dumps(request.params), primer_id, request.parent_id, time.time()),
            )
            request_id = int(cursor.lastrowid or 0)
        stored = await self.get_request(request_id)
        assert stored is not None
        return stored

    async def attach_primer(self, request_id: int, melody: Melody) -> int:
        """Store a request's seed melody once it is extracted from the file (shared with any request
        whose seed is the same melody) and return its id."""
        async with self._write() as db:
            primer_id = await self._primer_id(db, melody)
            await db.execute("UPDATE requests SET primer_id = ? WHERE id = ?", (primer_id, request_id))
        return primer_id

    @staticmethod
    async def _primer_id(db: aiosqlite.Connection, melody: Melody) -> int:
        text = melody_json(melody)
        digest = hashlib.sha256(text.encode()).hexdigest()
        await db.execute("INSERT OR IGNORE INTO primers (digest, melody, created_at) VALUES (?, ?, ?)",
                         (digest, text, time.time()))
        async with db.execute("SELECT id FROM primers WHERE digest = ?", (digest,)) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def get_primer(self, primer_id: int) -> Melody | None:
        async with self.db.execute("SELECT melody FROM primers WHERE id = ?", (primer_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else melody_from_json(row[0])

    async def finish_request(self, request_id: int, error: str | None = None) -> None:
        """Mark a request ``done``, or ``failed`` with ``error`` (a short code, never user data)."""
        async with self._write() as db:
            await db.execute(
                "UPDATE requests SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                ("failed" if error else "done", error, time.time(), request_id),
            )

    async def mark_pending(self, request_id: int, note: str) -> None:
        """Put ``note`` on a request that stays pending (``resumed``: a restarted bot is making it again)."""
        async with self._write() as db:
            await db.execute("UPDATE requests SET error = ? WHERE id = ? AND status = 'pending'",
                             (note, request_id))

    async def add_composition(self, request: PieceRequest, *, seed: int, description: str,
                              midi: bytes) -> int:
        """Store what a request produced (the request stays ``pending`` until its replies are sent)."""
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO compositions (request_id, user_id, chat_id, seed, description, midi, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (request.id, request.user_id, request.chat_id, seed, description, midi, time.time()),
            )
            return int(cursor.lastrowid or 0)

    async def get_request(self, request_id: int) -> PieceRequest | None:
        async with self.db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _request(row)

    async def pending_requests(self) -> list[PieceRequest]:
        """Requests never answered (the bot stopped while making them), oldest first."""
        async with self.db.execute(
            "SELECT * FROM requests WHERE status = 'pending' ORDER BY created_at"
        ) as cursor:
            return [_request(row) for row in await cursor.fetchall()]

    async def get_composition(self, composition_id: int) -> StoredPiece | None:
        async with self.db.execute(
            "SELECT * FROM compositions WHERE id = ?", (composition_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        request = await self.get_request(row["request_id"])
        if request is None:
            return None
        return StoredPiece(row["id"], request, row["seed"], row["description"], bytes(row["midi"]))


    # Retention

    async def cleanup(self, retention_days: float, now: float | None = None) -> int:
        """Forget pieces and finished requests older than ``retention_days`` (their buttons then answer
        that the piece is gone) and seed melodies no request uses any more; compact the file when much
        of it is free. Returns the number of rows removed."""
        cutoff = (time.time() if now is None else now) - retention_days * 86400.0
        async with self._write() as db:
            removed = 0
            for statement in (
                "DELETE FROM compositions WHERE created_at < ?",
                "DELETE FROM requests WHERE created_at < ? AND status != 'pending' "
                "AND id NOT IN (SELECT request_id FROM compositions)",
            ):
                removed += (await db.execute(statement, (cutoff,))).rowcount
            await db.execute("UPDATE requests SET primer_midi = NULL WHERE primer_midi IS NOT NULL")
            removed += (await db.execute(
                "DELETE FROM primers WHERE id NOT IN "
                "(SELECT primer_id FROM requests WHERE primer_id IS NOT NULL)"
            )).rowcount
        await self.compact()
        if removed:
            log.info("retention: removed %d rows older than %g days", removed, retention_days)
        return removed

    async def compact(self, free_share: float = COMPACT_FREE_SHARE) -> bool:
        """VACUUM when at least ``free_share`` of the pages are free, and truncate the WAL."""
        async with self._lock:
            pages = await self._pragma("page_count")
            free = await self._pragma("freelist_count")
            vacuum = pages > 0 and free / pages >= free_share
            if vacuum:
                await self.db.execute("VACUUM")
            await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return vacuum

    async def _pragma(self, name: str) -> int:
        async with self.db.execute(f"PRAGMA {name}") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


def _request(row: aiosqlite.Row) -> PieceRequest:
    return PieceRequest(
        id=row["id"],
        user_id=row["user_id"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        language=row["language"],
        kind=row["kind"],
        params=json.loads(row["params"]),
        primer_id=row["primer_id"],
        parent_id=row["parent_id"],
        status=row["status"],
        created_at=row["created_at"],
        error=row["error"],
    )
