"""Load: many chats at once against the real bot (``python -m bot``) and the fake Bot API server.

    python benchmarks/load_chats.py [--chats 50] [--bars 8] [--timeout 600] [--models models]

Starts the fake server (``tests/fake_telegram.py``, 127.0.0.1 only) and the bot with a fresh database,
then starts every chat at the same moment. Each chat does, one step after the other, waiting for the
answer to each: ``/start``, a setting (``/bars N``), ``/compose``, and a MIDI file from
``tests/fixtures/midi`` as a seed. Reports the replies received against those expected, the errors (a
missing, extra or unexpected reply, or an ERROR line in the bot's log) and latency percentiles per step
and overall, from the moment the update is queued on the server to the step's last reply. The target:
every chat gets every reply and there are no errors. The run is bounded: at most ``MAX_CHATS`` chats
and ``--timeout`` seconds in all, after which the chats left waiting count as errors and it stops.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_telegram import REPLY_METHODS, BotProcess, FakeTelegram, FakeUser, Sent

ROOT = Path(__file__).resolve().parents[1]
MAX_CHATS = 200
MAX_TIMEOUT = 1800.0
PIECE = ["sendDocument", "sendVoice", "sendPhoto"]
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
            replies = telegram.wait_replies(who.id, step.replies, mark, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            outcomes.append(Outcome(who.id, step.name, None, "no reply in time"))
            return
        latency = replies[-1].at - telegram.update_time(update_id)
        if not step.check(replies):
            got = [(s.method, s.text[:60]) for s in replies]
            outcomes.append(Outcome(who.id, step.name, latency, f"unexpected replies {got}"))
            return
        outcomes.append(Outcome(who.id, step.name, latency, None))


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
    args = parser.parse_args()
    if not 1 <= args.chats <= MAX_CHATS or not 0 < args.timeout <= MAX_TIMEOUT:
        parser.error(f"--chats must be 1-{MAX_CHATS} and --timeout at most {MAX_TIMEOUT:.0f} s")

    plan = steps(args.bars)
    people = [FakeUser(10_000 + i, f"Load{i}", "en") for i in range(args.chats)]
    outcomes: list[Outcome] = []
    with FakeTelegram() as telegram, tempfile.TemporaryDirectory() as workdir:
        bot = BotProcess(telegram, Path(workdir), args.models).start()
        try:
            start = threading.Event()
            began = time.monotonic()
            deadline = began + args.timeout
            threads = [threading.Thread(target=run_chat, daemon=True,
                                        args=(telegram, who, plan, start, deadline, outcomes))
                       for who in people]
            for thread in threads:
                thread.start()
            start.set()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            wall = time.monotonic() - began
            time.sleep(1.0)  # replies sent after the last expected one (a duplicate, say) show up too
            received = {who.id: len([s for s in telegram.calls(chat_id=who.id) if s.method in REPLY_METHODS])
                        for who in people}
        finally:
            bot.stop()
        log_errors = [line for line in bot.log().splitlines() if " ERROR " in line]

    expected = sum(step.replies for step in plan)
    errors = [o for o in outcomes if o.error] + [
        Outcome(who.id, "-", None, f"{received[who.id]} replies, expected {expected}")
        for who in people if received[who.id] != expected]
    unfinished = args.chats * len(plan) - len(outcomes)
    total_errors = len(errors) + len(log_errors)
    print(f"{args.chats} chats at once, each: {', '.join(step.name for step in plan)}")
    print(f"replies: {sum(received.values())}/{expected * args.chats} received, errors: {total_errors} "
          f"({len(errors)} in chats, {len(log_errors)} ERROR lines in the bot log), "
          f"steps not reached: {unfinished}, wall {wall:.1f} s")
    print(f"{'latency, s (update queued -> last reply)':<44}{'n':>5}{'p50':>8}{'p95':>8}{'max':>8}")
    for name in [step.name for step in plan] + ["all steps"]:
        times = [o.latency for o in outcomes
                 if o.latency is not None and o.error is None and name in (o.step, "all steps")]
        if times:
            print(f"  {name:<42}{len(times):>5}{percentile(times, 0.5):>8.2f}{percentile(times, 0.95):>8.2f}"
                  f"{max(times):>8.2f}")
    for outcome in errors[:10]:
        print(f"error: chat {outcome.chat}, {outcome.step}: {outcome.error}", file=sys.stderr)
    for line in log_errors[:10]:
        print(f"bot log: {line}", file=sys.stderr)
    return 0 if total_errors == 0 and not unfinished else 1


if __name__ == "__main__":
    sys.exit(main())
