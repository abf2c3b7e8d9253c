"""A fake Telegram Bot API server for tests and benchmarks, and a helper that runs ``python -m bot``.

The server listens on 127.0.0.1 and speaks what python-telegram-bot sends: form or multipart bodies
posted to ``/bot<token>/<method>``; files are served from ``/file/bot<token>/<file_path>``. Tests play
users (``send_text``, ``send_document``, ``press``...), which queue updates for ``getUpdates``; every
call the bot makes is recorded as a ``Sent`` and can be awaited with ``wait_replies``.

Each HTTP connection gets its own thread, long polls wait on a condition variable (woken by new
updates or by ``stop``), and all state sits behind one lock, so many chats and concurrent long polls
work at once.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message as MimeHeaders
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

T = TypeVar("T")

TOKEN = "123456789:AAFakeTokenForTestsOnly-0123456789abc"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Composer", "username": "composer_test_bot"}
#: Methods that put something in the chat for a person to see.
REPLY_METHODS = frozenset({"sendMessage", "sendDocument", "sendVoice", "sendPhoto", "sendAudio"})
_FILE_METHODS = {"sendDocument": "document", "sendVoice": "voice", "sendPhoto": "photo", "sendAudio": "audio"}


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user in a private chat whose id equals the user id."""

    id: int
    first_name: str = "Test"
    language_code: str | None = "en"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def chat(self) -> dict[str, Any]:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Sent:
    """One call the bot made: form fields (JSON values decoded), uploaded files, the answer's message."""

    method: str
    chat_id: int | None
    params: dict[str, Any]
    files: dict[str, Upload]
    message: dict[str, Any] | None
    at: float

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    def upload(self) -> Upload:
        """The file this call sent (``sendDocument``, ``sendVoice``, ``sendPhoto``)."""
        found = _upload(_FILE_METHODS[self.method], self.params, self.files)
        if found is None:
            raise KeyError(f"{self.method} sent no file")
        return found

    def buttons(self) -> list[tuple[str, str]]:
        """``(label, callback_data)`` of the inline keyboard under this message."""
        markup = self.params.get("reply_markup") or {}
        rows = markup.get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


@dataclass
class _File:
    data: bytes
    path: str
    unique_id: str


@dataclass
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    update_times: dict[int, float] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    files: dict[str, _File] = field(default_factory=dict)
    callback_chats: dict[str, int] = field(default_factory=dict)
    #: How many times the bot has called getUpdates.
    polls: int = 0
    #: Method -> errors to answer its next calls with, in order.
    failures: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: Chat id -> seconds each message to that chat takes (a slow chat, or Telegram's flood limits).
    delays: dict[int, float] = field(default_factory=dict)


class FakeTelegram:
    """The fake server; use as a context manager or call ``start`` and ``stop``."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self._cond = threading.Condition()
        self._state = _State()
        self._ids = itertools.count(1)
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self), bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.request_queue_size = 512
        self._server.server_bind()
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)

    # Life cycle and addresses

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # Playing users

    def _next_id(self) -> int:
        return next(self._ids)

    def add_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue an update of ``kind`` (``message``, ``callback_query``...) and return its update_id."""
        with self._cond:
            update_id = self._next_id()
            self._state.updates.append({"update_id": update_id, kind: payload})
            self._state.update_times[update_id] = time.monotonic()
            self._cond.notify_all()
        return update_id

    def send_message(self, user: FakeUser, **content: Any) -> int:
        """The user sends a message with ``content`` (``text=...``, ``document={...}``...)."""
        message = {"message_id": self._next_id(), "date": int(time.time()), "chat": user.chat(),
                   "from": user.as_json(), **content}
        return self.add_update("message", message)

    def send_text(self, user: FakeUser, text: str) -> int:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.send_message(user, **content)

    def add_file(self, data: bytes, folder: str = "documents") -> dict[str, Any]:
        """Store bytes as a Telegram file; return the file fields (file_id, file_unique_id, file_size)."""
        with self._cond:
            n = self._next_id()
            file_id = f"file-{n}"
            self._state.files[file_id] = _File(data, f"{folder}/file_{n}", f"u{n}")
        return {"file_id": file_id, "file_unique_id": f"u{n}", "file_size": len(data)}

    def send_document(self, user: FakeUser, data: bytes, file_name: str, mime_type: str = "audio/midi",
                      file_size: int | None = None) -> int:
        """The user sends a file; ``file_size`` overrides the size Telegram reports."""
        document = {**self.add_file(data), "file_name": file_name, "mime_type": mime_type}
        if file_size is not None:
            document["file_size"] = file_size
        return self.send_message(user, document=document)

    def send_photo(self, user: FakeUser, data: bytes = b"\x89PNG\r\n\x1a\n fake") -> int:
        photo = {**self.add_file(data, "photos"), "width": 90, "height": 90}
        return self.send_message(user, photo=[photo])

    def send_voice(self, user: FakeUser, data: bytes = b"OggS fake") -> int:
        voice = {**self.add_file(data, "voice"), "duration": 1, "mime_type": "audio/ogg"}
        return self.send_message(user, voice=voice)

    def press(self, user: FakeUser, sent: Sent, data: str) -> int:
        """The user presses the inline button with callback ``data`` under the message ``sent``."""
        if sent.message is None:
            raise ValueError(f"{sent.method} has no message to press a button on")
        query_id = str(self._next_id())
        with self._cond:
            self._state.callback_chats[query_id] = user.id
        return self.add_update("callback_query", {
            "id": query_id, "from": user.as_json(), "message": sent.message,
            "chat_instance": f"ci{user.id}", "data": data,
        })

    def fail(self, method: str, code: int = 400, description: str = "Bad Request: injected failure",
             times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with a Bot API error instead of doing them."""
        with self._cond:
            self._state.failures.setdefault(method, []).extend([(code, description)] * times)

    def delay(self, chat_id: int, seconds: float) -> None:
        """Make every message the bot sends to ``chat_id`` take ``seconds`` to answer."""
        with self._cond:
            self._state.delays[chat_id] = seconds

    # Observing the bot

    def mark(self) -> int:
        """A position in the record of calls; pass it as ``after`` to see only later calls."""
        with self._cond:
            return len(self._state.sent)

    def calls(self, method: str | None = None, chat_id: int | None = None, after: int = 0) -> list[Sent]:
        with self._cond:
            return [s for s in self._state.sent[after:]
                    if (method is None or s.method == method) and (chat_id is None or s.chat_id == chat_id)]

    def update_time(self, update_id: int) -> float:
        """When the update was queued (``time.monotonic()``)."""
        with self._cond:
            return self._state.update_times[update_id]

    def polls(self) -> int:
        """How many times the bot has asked for updates so far."""
        with self._cond:
            return self._state.polls

    def wait_polling(self, after: int, timeout: float = 30.0) -> None:
        """Wait until the bot asks for updates more than ``after`` times (``polls()`` before its start)."""
        self.wait(lambda _: self._state.polls > after, timeout)

    def wait(self, check: Callable[[list[Sent]], T | None], timeout: float = 30.0) -> T:
        """Wait until ``check(calls so far)`` returns something other than ``None``/empty, and return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = check(self._state.sent)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(s.method, s.chat_id, s.text[:60]) for s in self._state.sent[-10:]]
                    raise TimeoutError(f"gave up after {timeout} s; last calls: {seen}")
                self._cond.wait(remaining)

    def ask(self, user: FakeUser, text: str, replies: int = 1, timeout: float = 30.0) -> list[Sent]:
        """Send ``text`` as ``user`` and wait for the bot's next ``replies`` messages in their chat."""
        mark = self.mark()
        self.send_text(user, text)
        return self.wait_replies(user.id, replies, mark, timeout)

    def say(self, user: FakeUser, text: str, timeout: float = 30.0) -> str:
        """Send ``text`` as ``user``; the text of the bot's next message in their chat."""
        return self.ask(user, text, 1, timeout)[0].text

    def wait_replies(self, chat_id: int, count: int = 1, after: int = 0, timeout: float = 30.0) -> list[Sent]:
        """The first ``count`` messages the bot put in the chat after the mark ``after``."""

        def check(sent: list[Sent]) -> list[Sent] | None:
            found = [s for s in sent[after:] if s.method in REPLY_METHODS and s.chat_id == chat_id]
            return found[:count] if len(found) >= count else None

        return self.wait(check, timeout)

    # Serving the Bot API

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            self._state.polls += 1
            self._cond.notify_all()
            if offset:
                self._state.updates = [u for u in self._state.updates if u["update_id"] >= offset]
            while not self._state.updates and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._state.updates[:limit]

    def _record(self, method: str, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        """Answer one Bot API call and record it; raises ``_ApiError`` for a call Telegram would refuse."""
        with self._cond:
            planned = self._state.failures.get(method)
            failure = planned.pop(0) if planned else None
        if failure is not None:
            raise _ApiError(*failure)
        if method == "getUpdates":  # not recorded: the bot polls all the time
            return self._get_updates(params)
        result: Any = True
        chat_id = int(params["chat_id"]) if "chat_id" in params else None
        message = None
        if method == "getMe":
            result = BOT_USER
        elif method == "getFile":
            with self._cond:
                found = self._state.files.get(str(params.get("file_id")))
            if found is None:
                raise _ApiError(400, "Bad Request: invalid file_id")
            result = {"file_id": params["file_id"], "file_unique_id": found.unique_id,
                      "file_size": len(found.data), "file_path": found.path}
        elif method in REPLY_METHODS:
            if chat_id is None:
                raise _ApiError(400, "Bad Request: chat_id is empty")
            with self._cond:
                pause = self._state.delays.get(chat_id, 0.0)
            if pause:
                time.sleep(pause)
            message = self._bot_message(method, chat_id, params, files)
            result = message
        elif method == "answerCallbackQuery":
            with self._cond:
                chat_id = self._state.callback_chats.get(str(params.get("callback_query_id")))
        elif method not in ("deleteWebhook", "setWebhook", "setMyCommands", "sendChatAction"):
            raise _ApiError(404, "Not Found: method not supported by the fake server")
        with self._cond:
            self._state.sent.append(Sent(method, chat_id, params, files, message, time.monotonic()))
            self._cond.notify_all()
        return result

    def _bot_message(self, method: str, chat_id: int, params: dict[str, Any],
                     files: dict[str, Upload]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self._next_id(), "date": int(time.time()), "from": BOT_USER,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group", "first_name": "Test"},
        }
        if method == "sendMessage":
            message["text"] = params.get("text", "")
        else:
            field_name = _FILE_METHODS[method]
            upload = _upload(field_name, params, files)
            if upload is None:
                raise _ApiError(400, f"Bad Request: there is no {field_name} in the request")
            stored = self.add_file(upload.data, field_name + "s")
            if method == "sendPhoto":
                message["photo"] = [{**stored, "width": 800, "height": 600}]
            elif method in ("sendVoice", "sendAudio"):
                message[field_name] = {**stored, "mime_type": upload.content_type,
                                       "duration": int(params.get("duration") or 1)}
            else:
                message[field_name] = {**stored, "mime_type": upload.content_type,
                                       "file_name": upload.filename}
            if "caption" in params:
                message["caption"] = params["caption"]
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        return message

    def _file(self, file_path: str) -> bytes | None:
        with self._cond:
            return next((f.data for f in self._state.files.values() if f.path == file_path), None)


def _upload(field_name: str, params: dict[str, Any], files: dict[str, Upload]) -> Upload | None:
    """The file sent for ``field_name``: a part of that name, or the part an ``attach://`` value names."""
    value = params.get(field_name)
    if isinstance(value, str) and value.startswith("attach://"):
        return files.get(value.removeprefix("attach://"))
    return files.get(field_name)


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _decode(value: str) -> Any:
    """PTB sends lists and objects as JSON strings in form fields; everything else stays a string."""
    if value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Fields and files of a ``multipart/form-data`` body, bytes kept exactly."""
    headers = MimeHeaders()
    headers["content-type"] = content_type
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str):
        raise _ApiError(400, "Bad Request: multipart body without boundary")
    fields: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        part = MimeHeaders()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            part[key.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        if not isinstance(name, str):
            continue
        if isinstance(filename, str):
            files[name] = Upload(filename, part.get_content_type(), data)
        else:
            fields[name] = _decode(data.decode("utf-8"))
    return fields, files


def _handler_for(server: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    api_prefix = f"/bot{server.token}/"
    file_prefix = f"/file/bot{server.token}/"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the record of calls is the log."""

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the bot gave up waiting (a cancelled long poll)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._reply(status, json.dumps(payload).encode())

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)  # PTB quotes the token's ':' in file URLs
            data = server._file(path.removeprefix(file_prefix)) if path.startswith(file_prefix) else None
            if data is None:
                self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            else:
                self._reply(200, data, "application/octet-stream")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = unquote(urlsplit(self.path).path)  # PTB quotes the token's ':' in file URLs
            if not path.startswith(api_prefix):
                self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            method = path.removeprefix(api_prefix)
            content_type = self.headers.get("Content-Type", "")
            try:
                if content_type.startswith("multipart/form-data"):
                    params, files = parse_multipart(body, content_type)
                else:
                    query = parse_qs(body.decode("utf-8"), keep_blank_values=True)
                    params, files = {k: _decode(v[-1]) for k, v in query.items()}, {}
                result = server._record(method, params, files)
            except _ApiError as exc:
                self._json(exc.code, {"ok": False, "error_code": exc.code, "description": exc.description})
                return
            self._json(200, {"ok": True, "result": result})

    return Handler


class BotProcess:
    """``python -m bot`` against a fake server, with its own database; stderr goes to ``log_path``."""

    def __init__(self, server: FakeTelegram, workdir: Path, models_dir: Path, **env: str) -> None:
        self.server = server
        self.workdir = workdir
        self.log_path = workdir / "bot.log"
        root = Path(__file__).resolve().parent.parent
        self.env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "TELEGRAM_BOT_TOKEN": server.token,
            "TELEGRAM_BASE_URL": server.base_url,
            "TELEGRAM_BASE_FILE_URL": server.base_file_url,
            "DATABASE_PATH": str(workdir / "bot.sqlite3"),
            "MODELS_DIR": str(models_dir.resolve()),
            "ALLOWED_USER_IDS": "",
            "WEBHOOK_URL": "",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> BotProcess:
        """Start the bot and wait until it polls for updates (start-up is over)."""
        polls = self.server.polls()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=self.workdir, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        try:
            self.server.wait_polling(polls, ready_timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"the bot did not start; its log:\n{self.log()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Stop the bot with ``sig`` and return its exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
