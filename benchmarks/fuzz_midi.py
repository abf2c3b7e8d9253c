"""A long fuzz run of the one MIDI extraction path, with figures.

    python benchmarks/fuzz_midi.py [--seconds 240] [--seed 1] [--crashes DIR]
    python benchmarks/fuzz_midi.py --engine atheris [--seconds 240] [--corpus DIR]   # pip install atheris

``mutate`` (the default) draws a file from the seed corpus (``tests/midi_corpus.py``) and applies one
to three structure-aware mutators (truncation, bit flips, splices, lying chunk lengths, odd header
fields, huge delta times, zero tempo, running-status abuse, thousands of tracks or hundreds of
thousands of notes, garbage behind a header, RIFF wrappers). ``atheris`` is coverage-guided
(libFuzzer's byte mutations), starting from the same seed corpus.

Each input goes through the unguarded reader, ``composer.extract._melody_from_bytes``: a melody or a
``MidiError`` is an answer; anything else, or more than ``--hang-seconds`` on one input, is an
escape, and the input is saved under ``--crashes``. Reports inputs/s, outcomes per error code, the
slowest input (wall and CPU time), peak RSS of the process, and the peak traced allocation of the
slowest inputs run again under tracemalloc.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import resource
import signal
import sys
import time
import traceback
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from midi_corpus import mutate, seed_corpus

SLOWEST_KEPT = 5


class Hang(Exception):
    """One input took longer than the hang limit."""


class Stats:
    """Outcomes and costs of every input run."""

    def __init__(self, crashes: Path, hang_seconds: int) -> None:
        from composer import extract  # late: atheris instruments the module while it is imported

        self.read = extract._melody_from_bytes
        self.error = extract.MidiError
        self.crashes = crashes
        self.hang_seconds = hang_seconds
        self.started = time.perf_counter()
        self.outcomes: Counter[str] = Counter()
        self.by_mutator: Counter[str] = Counter()
        self.inputs = 0
        self.bytes = 0
        self.largest = 0
        self.slowest: list[tuple[float, float, str, bytes]] = []  # (cpu, wall, label, data)

    def run(self, data: bytes, label: str) -> None:
        """Read one input, classify the outcome and time it; never raises."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            if self.hang_seconds:
                signal.alarm(self.hang_seconds)
            self.read(data)
            outcome = "melody"
        except self.error as exc:
            outcome = exc.code
        except Exception as exc:  # the very thing being hunted: record it and go on
            outcome = f"ESCAPE {type(exc).__name__}"
            self._save(data, label, traceback.format_exc())
        finally:
            if self.hang_seconds:
                signal.alarm(0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.inputs += 1
        self.bytes += len(data)
        self.largest = max(self.largest, len(data))
        self.outcomes[outcome] += 1
        for name in set(label.split("+")):
            self.by_mutator[name] += 1
        if len(self.slowest) < SLOWEST_KEPT or cpu > self.slowest[-1][0]:
            self.slowest = sorted([*self.slowest, (cpu, wall, label, data)], reverse=True)[:SLOWEST_KEPT]

    def _save(self, data: bytes, label: str, trace: str) -> None:
        self.crashes.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(data).hexdigest()[:16]
        (self.crashes / f"{name}.mid").write_bytes(data)
        (self.crashes / f"{name}.txt").write_text(f"{label}\n{trace}")

    def report(self) -> str:
        elapsed = time.perf_counter() - self.started
        peak_traced = 0
        for _, _, _, data in self.slowest:
            tracemalloc.start()
            with contextlib.suppress(Exception):  # outcomes were counted on the first run
                self.read(data)
            peak_traced = max(peak_traced, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        escapes = sum(n for outcome, n in self.outcomes.items() if outcome.startswith("ESCAPE"))
        lines = [
            f"inputs: {self.inputs} in {elapsed:.0f} s = {self.inputs / elapsed:.1f} inputs/s "
            f"({self.bytes / 1e6:.1f} MB, largest {self.largest} bytes)",
            "outcomes: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common()),
            f"escapes (anything but a melody or MidiError, or a hang): {escapes}",
            "slowest inputs (CPU s / wall s, bytes, mutators): " + "; ".join(
                f"{cpu:.2f}/{wall:.2f} {len(data)} {label}" for cpu, wall, label, data in self.slowest
            ),
            f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
            f"peak traced allocation on the {len(self.slowest)} slowest inputs: {peak_traced / 1e6:.1f} MB",
            "inputs per mutator: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_mutator.items())),
        ]
        return "\n".join(lines)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("one input ran past the hang limit")


def run_mutations(stats: Stats, seconds: float, seed: int) -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    rng = random.Random(seed)
    seeds = list(seed_corpus().values())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = rng.choice(seeds)
        data, mutators = mutate(data, rng, rounds=rng.randint(1, 3))
        stats.run(data, "+".join(mutators))


def run_atheris(crashes: Path, corpus: Path, seconds: float) -> None:
    import atheris

    with atheris.instrument_imports(include=["composer"]):
        import composer.extract  # noqa: F401 - imported here to be instrumented

    stats = Stats(crashes, hang_seconds=0)  # libFuzzer's own -timeout catches hangs
    corpus.mkdir(parents=True, exist_ok=True)  # libFuzzer adds the inputs that find new paths here
    for name, data in seed_corpus().items():
        (corpus / name).write_bytes(data)
    deadline = time.monotonic() + seconds

    def one_input(data: bytes) -> None:
        stats.run(data, "atheris")
        if time.monotonic() > deadline:  # libFuzzer ends with exit(), past Python's atexit
            print(stats.report(), flush=True)
            os._exit(0)

    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds) + 60}", "-timeout=10", "-max_len=65536",
                   "-rss_limit_mb=2048", "-print_final_stats=1", str(corpus)], one_input)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["mutate", "atheris"], default="mutate")
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang-seconds", type=int, default=10)
    parser.add_argument("--crashes", type=Path, default=Path("data/fuzz_crashes"))
    parser.add_argument("--corpus", type=Path, default=Path("data/fuzz_corpus"), help="atheris corpus")
    args = parser.parse_args()
    if args.engine == "atheris":
        run_atheris(args.crashes, args.corpus, args.seconds)
        return
    stats = Stats(args.crashes, args.hang_seconds)
    run_mutations(stats, args.seconds, args.seed)
    print(stats.report())


if __name__ == "__main__":
    main()
