"""Load in scale mode: the chats of ``load_chats.py`` against a bot on Redis and PostgreSQL with workers.

    python benchmarks/scale_load.py [--chats 50] [--bars 8] [--workers 2] [--processes 1]
                                    [--no-postgres] [--timeout 600] [--models models]

Starts Redis and PostgreSQL (``tests/servers.py``: Debian's ``redis-server`` and ``postgresql``, loopback
ports, temporary folders), ``--workers`` ``python -m bot worker`` processes of ``--processes`` composer
processes each, one bot (``REDIS_URL``, ``DATABASE_URL``) against the fake Bot API server, then plays
every chat at once as ``load_chats.py`` does (``/start``, ``/bars N``, ``/compose``, a MIDI seed). Reports
replies and errors, requests left unanswered ("lost"), pieces per second, latency percentiles, and per
piece: CPU seconds in the workers and in the bot, Redis commands, PostgreSQL transactions (and rows
written and read).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_telegram import BotProcess, FakeTelegram, FakeUser
from load_chats import MAX_CHATS, Outcome, counted, print_latencies, run_chat, steps
from servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its living descendants, and of the children they have
    waited for (fluidsynth, opusenc, rsvg-convert)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                children = task / "children"
                stack.extend(int(c) for c in children.read_text().split())
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


def tree_rss_mib(pid: int) -> list[float]:
    """Resident memory (MiB) of ``pid`` and of each living descendant."""
    sizes, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            sizes.append(int(status.split("VmRSS:")[1].split()[0]) / 1024)
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return sizes


def redis_commands(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def postgres_stats(url: str) -> tuple[int, int, int]:
    """Committed transactions, rows written, rows read in the database so far."""
    import asyncpg

    async def read() -> tuple[int, int, int]:
        connection = await asyncpg.connect(url)
        try:
            row = await connection.fetchrow(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS written, "
                "tup_returned AS read FROM pg_stat_database WHERE datname = current_database()")
            return int(row["xact_commit"]), int(row["written"]), int(row["read"])
        finally:
            await connection.close()

    return asyncio.run(read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=50, help=f"chats at once (1-{MAX_CHATS})")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (python -m bot worker)")
    parser.add_argument("--processes", type=int, default=1, help="composer processes per worker")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    if not 1 <= args.chats <= MAX_CHATS or not 1 <= args.workers <= 16 or not 1 <= args.processes <= 16:
        parser.error("--chats 1-200, --workers and --processes 1-16")

    plan = steps(args.bars)
    people = [FakeUser(20_000 + i, f"Load{i}", "en") for i in range(args.chats)]
    outcomes: list[Outcome] = []
    redis_server = RedisServer().start()
    postgres = None if args.no_postgres else PostgresServer().start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        database_url = postgres.create_database("load") if postgres else ""
        with tempfile.TemporaryDirectory() as workdir, FakeTelegram() as telegram:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_server.url,
                   "MODELS_DIR": str(args.models.resolve()), "COMPOSE_WORKERS": str(args.processes)}
            env.pop("TELEGRAM_BOT_TOKEN", None)
            logs = []
            for i in range(args.workers):
                log_path = Path(workdir) / f"worker{i}.log"
                logs.append(log_path)
                with log_path.open("ab") as log:
                    workers.append(subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=workdir,
                                                    env=env, stdout=log, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 120
            while not all("Starting worker" in p.read_text(errors="replace") for p in logs):
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not start")
                time.sleep(0.1)
            time.sleep(3.0)  # each pool process loads its models and makes one tiny piece
            bot_env = {"REDIS_URL": redis_server.url, "RATE_LIMIT": "0", "COMPOSE_MAX_QUEUE": "1000"}
            if database_url:
                bot_env["DATABASE_URL"] = database_url
            bot = BotProcess(telegram, Path(workdir), args.models, **bot_env).start()
            try:
                assert bot.process is not None
                cpu0 = [tree_cpu(w.pid) for w in workers]
                bot_cpu0 = tree_cpu(bot.process.pid)
                commands0 = redis_commands(redis_server.url)
                pg0 = postgres_stats(database_url) if database_url else (0, 0, 0)
                start = threading.Event()
                began = time.monotonic()
                stop_at = began + args.timeout
                threads = [threading.Thread(target=run_chat, daemon=True,
                                            args=(telegram, who, plan, start, stop_at, outcomes))
                           for who in people]
                for thread in threads:
                    thread.start()
                start.set()
                for thread in threads:
                    thread.join(max(0.0, stop_at - time.monotonic()) + 1.0)
                wall = time.monotonic() - began
                worker_cpu = sum(tree_cpu(w.pid) for w in workers) - sum(cpu0)
                bot_cpu = tree_cpu(bot.process.pid) - bot_cpu0
                memory = [tree_rss_mib(w.pid) for w in workers] + [tree_rss_mib(bot.process.pid)]
                commands = redis_commands(redis_server.url) - commands0
                pg = postgres_stats(database_url) if database_url else (0, 0, 0)
                time.sleep(1.0)
                received = sum(len([s for s in telegram.calls(chat_id=who.id) if counted(s)])
                               for who in people)
            finally:
                bot.stop()
            lost = 0
            if database_url:
                import asyncpg

                async def pending() -> int:
                    connection = await asyncpg.connect(database_url)
                    try:
                        return int(await connection.fetchval(
                            "SELECT COUNT(*) FROM requests WHERE status = 'pending'"))
                    finally:
                        await connection.close()

                lost = asyncio.run(pending())
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        redis_server.close()
        if postgres is not None:
            postgres.close()

    pieces = sum(1 for o in outcomes if o.step in ("/compose", "MIDI seed") and o.error is None)
    errors = [o for o in outcomes if o.error]
    expected = sum(step.replies for step in plan) * args.chats
    print(f"{args.chats} chats at once; {args.workers} worker(s) x {args.processes} process(es); "
          f"storage {'PostgreSQL' if database_url else 'SQLite'}; load average {os.getloadavg()[0]:.1f}")
    print(f"replies: {received}/{expected}, errors: {len(errors)}, lost requests: {lost}, wall {wall:.1f} s, "
          f"pieces: {pieces} ({pieces / wall:.2f}/s)")
    if pieces:
        print(f"per piece: worker CPU {worker_cpu / pieces:.2f} s, bot CPU {bot_cpu / pieces:.3f} s, "
              f"Redis commands {commands / pieces:.1f}, PostgreSQL transactions {pg[0] - pg0[0]} "
              f"-> {(pg[0] - pg0[0]) / pieces:.1f} (rows written {(pg[1] - pg0[1]) / pieces:.1f}, "
              f"read {(pg[2] - pg0[2]) / pieces:.1f}); all steps, not pieces alone")
    if pieces:
        print("resident memory, MiB: worker (queue process, composer processes) "
              + "; ".join(", ".join(f"{m:.0f}" for m in tree) for tree in memory[:-1])
              + f"; bot {memory[-1][0]:.0f}")
    print_latencies(plan, outcomes, errors)
    return 0 if not errors and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
