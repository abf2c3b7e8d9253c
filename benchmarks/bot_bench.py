"""Time from a ``/compose`` update to the bot's last reply (the score photo), rendering included.

    python benchmarks/bot_bench.py [--runs 20] [--warmup 2] [--bars 16] [--models models]

Starts the fake Bot API server (``tests/fake_telegram.py``) and the real bot (``python -m bot``), then
sends ``/compose`` from one user, one at a time, and measures from the moment the update is queued on
the server to the moment the server receives the photo. Reports median, 90th percentile and max; the
target is a median of at most 2 s. Also the CPU seconds per ``/compose`` of the bot and its worker
processes (with the programs they ran), read from /proc around the timed requests, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_telegram import BotProcess, FakeTelegram, FakeUser

TARGET_MEDIAN_SECONDS = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed /compose requests")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    parser.add_argument("--bars", type=int, default=16, help="bars per melody (the bot's default is 16)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder")
    args = parser.parse_args()

    who = FakeUser(1, "Bench", "en")
    with FakeTelegram() as telegram, tempfile.TemporaryDirectory() as workdir:
        bot = BotProcess(telegram, Path(workdir), args.models, RATE_LIMIT="0").start()
        try:
            mark = telegram.mark()
            telegram.send_text(who, f"/bars {args.bars}")
            telegram.wait_replies(who.id, 1, mark)
            times = []
            cpu_before = 0.0
            for i in range(args.warmup + args.runs):
                if i == args.warmup:
                    assert bot.process is not None
                    cpu_before = tree_cpu_seconds(bot.process.pid)
                mark = telegram.mark()
                update_id = telegram.send_text(who, "/compose")
                replies = telegram.wait_replies(who.id, 3, mark, timeout=120)
                if replies[-1].method != "sendPhoto":
                    print(f"unexpected replies: {[(s.method, s.text) for s in replies]}", file=sys.stderr)
                    return 1
                if i >= args.warmup:
                    times.append(replies[-1].at - telegram.update_time(update_id))
                time.sleep(0.2)
            assert bot.process is not None
            cpu = (tree_cpu_seconds(bot.process.pid) - cpu_before) / args.runs
        finally:
            bot.stop()
    times.sort()
    median = statistics.median(times)
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    print(f"/compose ({args.bars} bars) update -> last reply over {len(times)} runs: "
          f"median {median:.2f} s, p90 {p90:.2f} s, min {times[0]:.2f} s, max {times[-1]:.2f} s "
          f"(target: median <= {TARGET_MEDIAN_SECONDS:.1f} s)")
    print(f"CPU per /compose (bot, workers and their programs): {cpu:.2f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0 if median <= TARGET_MEDIAN_SECONDS else 1


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of process ``pid`` and its descendants, with their waited-for children (the
    fluidsynth, opusenc and rsvg-convert runs); a process that ended in between is left out."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        stat = _stat(current)
        if stat:  # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat
            total += sum(int(v) for v in stat[11:15]) / os.sysconf("SC_CLK_TCK")
        todo += children.get(current, [])
    return total


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, ... (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
