"""Load: many chats at once against the real bot (``python -m bot``) and the fake Bot API server.

    python benchmarks/load_chats.py [--chats 50] [--bars 8] [--timeout 600] [--models models]
                                    [--flood 300] [--kill-worker 10]

Starts the fake server (``tests/fake_telegram.py``, 127.0.0.1 only) and the bot with a fresh database,
then starts every chat at the same moment. Each chat does, one step after the other, waiting for the
answer to each: ``/start``, a setting (``/bars N``), ``/compose``, and a MIDI file from
``tests/fixtures/midi`` as a seed. Reports the replies received against those expected, the errors (a
missing, extra or unexpected reply, or an ERROR line in the bot's log) and latency percentiles per step
and overall, from the moment the update is queued on the server to the step's last reply. The target:
every chat gets every reply and there are no errors. The run is bounded: at most ``MAX_CHATS`` chats
and ``--timeout`` seconds in all, after which the chats left waiting count as errors and it stops.

Hostile extras (issue 10): ``--flood N`` adds a chat that sends N messages at the start, each answer to
it slowed to 0.2 s (as Telegram's flood limits would): the other chats' latencies show whether it holds
them up. ``--kill-worker S`` kills one worker process (SIGKILL) S seconds in: a piece it was making may
end in an apology instead (counted apart, not as an error). Notes on a piece's place in the queue are
not counted as replies. "Lost" counts requests still unanswered in the database at the end (must be 0).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_telegram import REPLY_METHODS, BotProcess, FakeTelegram, FakeUser, Sent

from bot.i18n import TEXTS

ROOT = Path(__file__).resolve().parents[1]
MAX_CHATS = 200
MAX_TIMEOUT = 1800.0
PIECE = ["sendDocument", "sendVoice", "sendPhoto"]
#: What a piece's chat may get besides its replies: a note on its place in the queue.
QUEUE_NOTE = TEXTS["queued"]["en"].split("{")[0]
#: What a chat gets instead of a piece whose worker process was killed twice.
LOST_WORKER = TEXTS["worker_lost"]["en"]
SEEDS = [ROOT / "tests" / "fixtures" / "midi" / name
         for name in ("bach_bwv269.mid", "bach_bwv66_6.mid", "essen_altdeu10_1.mid", "ryans_reel.mid")]


@dataclass(frozen=True)
class Step:
    """One thing a chat does: send it, expect ``replies`` messages, ``check`` them."""

    name: str
    send: Callable[[FakeTelegram, FakeUser], int]
    replies: int
    check: Callable[[list[Sent]], bool]


@dataclass(frozen=True)
class Outcome:
    chat: int
    step: str
    latency: float | None
    error: str | None
    apologised: bool = False


def steps(bars: int) -> list[Step]:
    def seed(telegram: FakeTelegram, who: FakeUser) -> int:
        path = SEEDS[who.id % len(SEEDS)]
        return telegram.send_document(who, path.read_bytes(), path.name)

    def is_piece(replies: list[Sent]) -> bool:
        return [s.method for s in replies] == PIECE

    return [
        Step("/start", lambda t, who: t.send_text(who, "/start"), 1,
             lambda r: r[0].text.startswith("Hello, ")),
        Step(f"/bars {bars}", lambda t, who: t.send_text(who, f"/bars {bars}"), 1,
             lambda r: r[0].text == f"Saved: bars = {bars}."),
        Step("/compose", lambda t, who: t.send_text(who, "/compose"), 3,
             lambda r: is_piece(r) and f" · {bars} bars · " in r[-1].text),
        Step("MIDI seed", seed, 3, lambda r: is_piece(r) and "From your file" in r[-1].text),
    ]


def run_chat(telegram: FakeTelegram, who: FakeUser, plan: list[Step], start: threading.Event,
             deadline: float, outcomes: list[Outcome]) -> None:
    """Play one chat; stop at its first failed step (the rest of its steps count as not done)."""
    start.wait()
    for step in plan:
        mark = telegram.mark()
        update_id = step.send(telegram, who)
        try:
            replies = answers(telegram, who, step.replies, mark, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            outcomes.append(Outcome(who.id, step.name, None, "no reply in time"))
            return
        latency = replies[-1].at - telegram.update_time(update_id)
        if replies[0].text == LOST_WORKER:
            outcomes.append(Outcome(who.id, step.name, latency, None, apologised=True))
            continue
        if not step.check(replies):
            got = [(s.method, s.text[:60]) for s in replies]
            outcomes.append(Outcome(who.id, step.name, latency, f"unexpected replies {got}"))
            return
        outcomes.append(Outcome(who.id, step.name, latency, None))


def counted(sent: Sent) -> bool:
    """A reply a step expects (not a note on the queue)."""
    return sent.method in REPLY_METHODS and not sent.text.startswith(QUEUE_NOTE)


def answers(telegram: FakeTelegram, who: FakeUser, count: int, after: int, timeout: float) -> list[Sent]:
    """The chat's next ``count`` replies, or the one apology for a piece whose worker was lost."""
    def check(sent: list[Sent]) -> list[Sent] | None:
        mine = [s for s in sent[after:] if s.chat_id == who.id and counted(s)]
        if mine and mine[0].text == LOST_WORKER:
            return mine[:1]
        return mine[:count] if len(mine) >= count else None

    return telegram.wait(check, timeout)


def workers_of(pid: int) -> list[int]:
    """The bot's worker processes (children started by multiprocessing's spawn)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in children.read_text().split() if children.exists() else []:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except FileNotFoundError:
            pass
    return found


def flood(telegram: FakeTelegram, who: FakeUser, messages: int, start: threading.Event) -> None:
    start.wait()
    for n in range(messages):
        telegram.send_text(who, f"flood {n}")


def kill_worker(bot: BotProcess, after: float, start: threading.Event, killed: list[int]) -> None:
    start.wait()
    time.sleep(after)
    if bot.process is not None and (found := workers_of(bot.process.pid)):
        os.kill(found[0], signal.SIGKILL)
        killed.append(found[0])


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (``share`` from 0 to 1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=50, help=f"chats at once (1-{MAX_CHATS})")
    parser.add_argument("--bars", type=int, default=8, help="the setting each chat makes: bars per piece")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="models folder")
    parser.add_argument("--flood", type=int, default=0, metavar="N",
                        help="a chat that sends N messages at once at the start (at most 1000)")
    parser.add_argument("--kill-worker", type=float, default=None, metavar="S",
                        help="SIGKILL one worker process S seconds in")
    args = parser.parse_args()
    if not 0 <= args.flood <= 1000:
        parser.error("--flood must be 0-1000")
    if not 1 <= args.chats <= MAX_CHATS or not 0 < args.timeout <= MAX_TIMEOUT:
        parser.error(f"--chats must be 1-{MAX_CHATS} and --timeout at most {MAX_TIMEOUT:.0f} s")

    plan = steps(args.bars)
    people = [FakeUser(10_000 + i, f"Load{i}", "en") for i in range(args.chats)]
    flooder = FakeUser(9_999, "Flood", "en")
    outcomes: list[Outcome] = []
    killed: list[int] = []
    with FakeTelegram() as telegram, tempfile.TemporaryDirectory() as workdir:
        bot = BotProcess(telegram, Path(workdir), args.models).start()
        try:
            start = threading.Event()
            began = time.monotonic()
            deadline = began + args.timeout
            threads = [threading.Thread(target=run_chat, daemon=True,
                                        args=(telegram, who, plan, start, deadline, outcomes))
                       for who in people]
            if args.flood:
                telegram.delay(flooder.id, 0.2)
                threads.append(threading.Thread(target=flood, args=(telegram, flooder, args.flood, start),
                                                daemon=True))
            if args.kill_worker is not None:
                threads.append(threading.Thread(target=kill_worker, daemon=True,
                                                args=(bot, args.kill_worker, start, killed)))
            for thread in threads:
                thread.start()
            start.set()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            wall = time.monotonic() - began
            time.sleep(1.0)  # replies sent after the last expected one (a duplicate, say) show up too
            received = {who.id: len([s for s in telegram.calls(chat_id=who.id) if counted(s)])
                        for who in people}
            flood_answers = len(telegram.calls("sendMessage", flooder.id))
        finally:
            bot.stop()
        with sqlite3.connect(Path(workdir) / "bot.sqlite3") as db:
            lost = db.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()[0]
        expected_errors = ("a worker process died",) if killed else ()
        log_errors = [line for line in bot.log().splitlines()
                      if " ERROR " in line and not any(e in line for e in expected_errors)]

    expected = sum(step.replies for step in plan)
    apologies = {o.chat: 0 for o in outcomes}
    for o in outcomes:
        apologies[o.chat] += o.apologised
    errors = [o for o in outcomes if o.error] + [
        Outcome(who.id, "-", None, f"{received[who.id]} replies, expected {expected}")
        for who in people
        if received[who.id] != expected - 2 * apologies.get(who.id, 0)]  # an apology stands for 3 replies
    unfinished = args.chats * len(plan) - len(outcomes)
    total_errors = len(errors) + len(log_errors) + lost
    print(f"{args.chats} chats at once, each: {', '.join(step.name for step in plan)}")
    if args.flood:
        print(f"flood chat: {args.flood} messages at once, {flood_answers} answered (the rest dropped)")
    if args.kill_worker is not None:
        print(f"worker killed at {args.kill_worker:g} s: {len(killed)}; pieces apologised for: "
              f"{sum(apologies.values())}")
    print(f"replies: {sum(received.values())}/{expected * args.chats} received, errors: {total_errors} "
          f"({len(errors)} in chats, {len(log_errors)} ERROR lines in the bot log), lost requests: {lost}, "
          f"steps not reached: {unfinished}, wall {wall:.1f} s")
    print_latencies(plan, [o for o in outcomes if not o.apologised], errors)
    for line in log_errors[:10]:
        print(f"bot log: {line}", file=sys.stderr)
    return 0 if total_errors == 0 and not unfinished else 1



def print_latencies(plan: list[Step], outcomes: list[Outcome], errors: list[Outcome]) -> None:
    """Latency percentiles per step of the plan (and over all steps) of the answered outcomes, then the
    first ten errors (on stderr)."""
    print(f"{'latency, s (update queued -> last reply)':<44}{'n':>5}{'p50':>8}{'p95':>8}{'max':>8}")
    for name in [step.name for step in plan] + ["all steps"]:
        times = [o.latency for o in outcomes if o.latency is not None and o.error is None
                 and name in (o.step, "all steps")]
        if times:
            print(f"  {name:<42}{len(times):>5}{percentile(times, 0.5):>8.2f}{percentile(times, 0.95):>8.2f}"
                  f"{max(times):>8.2f}")
    for outcome in errors[:10]:
        print(f"error: chat {outcome.chat}, {outcome.step}: {outcome.error}", file=sys.stderr)

if __name__ == "__main__":
    sys.exit(main())
