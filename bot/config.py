"""Bot configuration from the environment and ``.env``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_BASE_FILE_URL = "https://api.telegram.org/file/bot"

MISSING_TOKEN = (
    "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather in Telegram (/newbot) and put its token "
    "in .env (see .env.example) or in the environment."
)


_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: Variables only the bot process may see: removed from its environment once read, so worker
#: processes and the programs they run (fluidsynth, opusenc, rsvg-convert) never inherit them.
SECRET_VARIABLES = ("TELEGRAM_BOT_TOKEN", "WEBHOOK_SECRET")


class ConfigError(Exception):
    """A missing or malformed setting; the message is one line meant for the person starting the bot."""


@dataclass(frozen=True)
class Config:
    token: str
    base_url: str = DEFAULT_BASE_URL
    base_file_url: str = DEFAULT_BASE_FILE_URL
    database_path: Path = Path("data/bot.sqlite3")
    models_dir: Path = Path("models")
    soundfont: Path | None = None
    #: Empty: everyone may use the bot.
    allowed_user_ids: frozenset[int] = frozenset()
    #: Processes that compose and render at the same time.
    workers: int = 2
    #: Pieces waiting or in progress, all users together, before new requests are turned away.
    max_queue: int = 100
    #: At most ``rate_limit`` pieces per user within ``rate_window`` seconds (0 turns the limit off).
    rate_limit: int = 6
    rate_window: float = 60.0
    #: Seconds one piece may run, composing and rendering (time waiting for a worker not counted).
    job_timeout: float = 60.0
    #: Updates one chat may have waiting; more are dropped (one flooding chat never stalls the others).
    max_chat_backlog: int = 10
    #: Longest piece in seconds of music: longer requests get fewer bars (or a faster tempo).
    max_piece_seconds: float = 180.0
    #: Pieces and finished requests older than this many days are deleted (0: kept forever).
    retention_days: float = 30.0
    #: The style for users who chose none; empty: ``classical`` if it has a model, else the first style.
    default_style: str = ""
    #: Public HTTPS URL for webhook mode; empty means long polling.
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str = ""
    log_level: str = "INFO"
    #: Scale mode: ``redis://...`` puts pieces on a job queue for ``python -m bot worker`` processes and
    #: keeps admission, rate limits and per-chat order in Redis; empty: the in-process pool.
    redis_url: str = ""
    #: ``postgresql://...``: settings, requests and pieces in PostgreSQL; empty: SQLite at ``database_path``.
    database_url: str = ""


def _int(env: Mapping[str, str], name: str, default: int, low: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, zero: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not zero) or value != value:
        raise ConfigError(f"{name} must be {'zero or more' if zero else 'positive'}, got {raw!r}")
    return value


def _user_ids(raw: str) -> frozenset[int]:
    ids = [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]
    try:
        return frozenset(int(part) for part in ids)
    except ValueError:
        raise ConfigError(f"ALLOWED_USER_IDS must be comma-separated numeric user ids, got {raw!r}") from None


def load_config(env: Mapping[str, str] | None = None, dotenv_path: Path | None = Path(".env")) -> Config:
    """Settings from ``env`` (the process environment by default) over those in ``dotenv_path``."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ if env is None else env)
    token = merged.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise ConfigError(MISSING_TOKEN)
    if any(c.isspace() for c in token) or "/" in token:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN looks malformed: it should look like 123456:ABC-DEF... as @BotFather gives it"
        )
    soundfont = merged.get("SOUNDFONT", "").strip()
    webhook_url = merged.get("WEBHOOK_URL", "").strip()
    webhook_secret = merged.get("WEBHOOK_SECRET", "").strip()
    if webhook_url and not webhook_secret:
        raise ConfigError("WEBHOOK_URL needs WEBHOOK_SECRET: without it anyone who reaches the port can post "
                          "updates as any user (1-256 characters: letters, digits, _ and -)")
    if webhook_secret and not _SECRET.fullmatch(webhook_secret):
        raise ConfigError("WEBHOOK_SECRET must be 1-256 characters: letters, digits, _ and - only")
    redis_url = merged.get("REDIS_URL", "").strip()
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url[:20]!r}")
    database_url = merged.get("DATABASE_URL", "").strip()
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL (without it: SQLite at DATABASE_PATH)")
    max_piece_seconds = _float(merged, "MAX_PIECE_SECONDS", Config.max_piece_seconds)
    if not 10 <= max_piece_seconds <= 600:
        raise ConfigError(f"MAX_PIECE_SECONDS must be from 10 to 600, got {max_piece_seconds:g}")
    return Config(
        token=token,
        base_url=merged.get("TELEGRAM_BASE_URL", "").strip() or DEFAULT_BASE_URL,
        base_file_url=merged.get("TELEGRAM_BASE_FILE_URL", "").strip() or DEFAULT_BASE_FILE_URL,
        database_path=Path(merged.get("DATABASE_PATH", "").strip() or Config.database_path),
        models_dir=Path(merged.get("MODELS_DIR", "").strip() or Config.models_dir),
        soundfont=Path(soundfont) if soundfont else None,
        allowed_user_ids=_user_ids(merged.get("ALLOWED_USER_IDS", "")),
        workers=_int(merged, "COMPOSE_WORKERS", min(2, os.cpu_count() or 1), low=1),
        max_queue=_int(merged, "COMPOSE_MAX_QUEUE", Config.max_queue, low=1),
        rate_limit=_int(merged, "RATE_LIMIT", Config.rate_limit),
        rate_window=_float(merged, "RATE_WINDOW_SECONDS", Config.rate_window),
        job_timeout=_float(merged, "COMPOSE_TIMEOUT_SECONDS", Config.job_timeout),
        default_style=merged.get("DEFAULT_STYLE", "").strip() or Config.default_style,
        max_chat_backlog=_int(merged, "MAX_CHAT_BACKLOG", Config.max_chat_backlog, low=1),
        max_piece_seconds=max_piece_seconds,
        retention_days=_float(merged, "RETENTION_DAYS", Config.retention_days, zero=True),
        webhook_url=webhook_url,
        webhook_listen=merged.get("WEBHOOK_LISTEN", "").strip() or Config.webhook_listen,
        webhook_port=_int(merged, "WEBHOOK_PORT", Config.webhook_port, low=1),
        webhook_secret=webhook_secret,
        log_level=(merged.get("LOG_LEVEL", "").strip() or Config.log_level).upper(),
        redis_url=redis_url,
        database_url=database_url,
    )


def load_worker_config(env: Mapping[str, str] | None = None,
                       dotenv_path: Path | None = Path(".env")) -> Config:
    """Settings for ``python -m bot worker``: ``REDIS_URL`` is required, a Telegram token is not (and is
    never read: the ``token`` field holds a placeholder)."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ if env is None else env)
    if not merged.get("REDIS_URL", "").strip():
        raise ConfigError("the worker needs REDIS_URL (redis://host:6379/0): the queue it takes pieces from")
    for name in ("TELEGRAM_BOT_TOKEN", "WEBHOOK_URL", "WEBHOOK_SECRET"):
        merged.pop(name, None)
    return load_config({**merged, "TELEGRAM_BOT_TOKEN": "0:worker"}, None)
