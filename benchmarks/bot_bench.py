"""Time from a ``/compose`` update to the bot's last reply (the score photo), rendering included.

    python benchmarks/bot_bench.py [--runs 20] [--warmup 2] [--bars 16] [--models models]

Starts the fake Bot API server (``tests/fake_telegram.py``) and the real bot (``python -m bot``), then
sends ``/compose`` from one user, one at a time, and measures from the moment the update is queued on
the server to the moment the server receives the photo. Reports median, 90th percentile and max; the
target is a median of at most 2 s.
"""

from __future__ import annotations

import argparse
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
            for i in range(args.warmup + args.runs):
                mark = telegram.mark()
                update_id = telegram.send_text(who, "/compose")
                replies = telegram.wait_replies(who.id, 3, mark, timeout=120)
                if replies[-1].method != "sendPhoto":
                    print(f"unexpected replies: {[(s.method, s.text) for s in replies]}", file=sys.stderr)
                    return 1
                if i >= args.warmup:
                    times.append(replies[-1].at - telegram.update_time(update_id))
                time.sleep(0.2)
        finally:
            bot.stop()
    times.sort()
    median = statistics.median(times)
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    print(f"/compose ({args.bars} bars) update -> last reply over {len(times)} runs: "
          f"median {median:.2f} s, p90 {p90:.2f} s, min {times[0]:.2f} s, max {times[-1]:.2f} s "
          f"(target: median <= {TARGET_MEDIAN_SECONDS:.1f} s)")
    return 0 if median <= TARGET_MEDIAN_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
