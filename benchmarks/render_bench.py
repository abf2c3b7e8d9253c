"""Render time of a 16-bar melody as OGG/Opus audio and as a PNG score, and the audio's size.

    python benchmarks/render_bench.py [--repeat 7] [--bars 16]

Reports the median over the repeats of wall time and of CPU time (this process plus its
FluidSynth, opusenc and rsvg-convert children), so numbers taken on a busy machine still say
what the work costs; the load average is printed alongside. Imports are timed once, apart.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

started = time.perf_counter()
from composer.audio import render_ogg  # noqa: E402
from composer.melody import HOLD, REST, Melody  # noqa: E402
from composer.midi_writer import melody_to_midi  # noqa: E402
from composer.score import render_png  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - started


def bench_melody(bars: int, seed: int = 7) -> Melody:
    """A reproducible tune in D major, 4/4 at 120 bpm: quavers to minims, a few rests and ties."""
    import random

    rng = random.Random(seed)
    scale = [62, 64, 66, 67, 69, 71, 73, 74, 76, 78, 79]
    events: list[int] = []
    degree = 4
    while len(events) < 16 * bars:
        length = rng.choice([2, 2, 2, 4, 4, 6, 8, 1, 1])
        if rng.random() < 0.08:
            events += [REST] + [HOLD] * (length - 1)
            continue
        degree = min(len(scale) - 1, max(0, degree + rng.choice([-2, -1, -1, 1, 1, 2, 0])))
        events += [scale[degree]] + [HOLD] * (length - 1)
    events = events[: 16 * bars - 8] + [62] + [HOLD] * 7
    return Melody(tuple(events), tempo_bpm=120.0, key="D major")


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``work``."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), cpu_seconds()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--bars", type=int, default=16)
    args = parser.parse_args()

    melody = bench_melody(args.bars)
    midi = melody_to_midi(melody)
    title = f"Benchmark — {args.bars} bars"
    first_wall, first_cpu = measure(lambda: (render_ogg(midi), render_png(melody, title)), 1)

    def both_in_threads() -> None:
        with ThreadPoolExecutor(2) as pool:
            audio = pool.submit(render_ogg, midi)
            render_png(melody, title)
            audio.result()

    rows = {
        "audio (render_ogg)": measure(lambda: render_ogg(midi), args.repeat),
        "score (render_png)": measure(lambda: render_png(melody, title), args.repeat),
        "audio + score, one after the other": measure(
            lambda: (render_ogg(midi), render_png(melody, title)), args.repeat
        ),
        "audio + score, two threads": measure(both_in_threads, args.repeat),
    }
    ogg, png = render_ogg(midi), render_png(melody, title)

    print(f"{args.bars} bars, {melody.duration_seconds:.1f} s of music; median of {args.repeat}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"imports (composer.audio, composer.score): {IMPORT_SECONDS:.2f} s; "
          f"first audio + score after them: {first_wall:.2f} s wall, {first_cpu:.2f} s CPU")  # fmt: skip
    print(f"{'':38} {'wall s':>7} {'CPU s':>7}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:38} {wall:7.3f} {cpu:7.3f}")
    kbps = len(ogg) * 8 / melody.duration_seconds / 1000
    print(
        f"audio: {len(ogg) / 1024:.0f} KiB OGG/Opus ({kbps:.0f} kbit/s); score: {len(png) / 1024:.0f} KiB PNG"
    )


if __name__ == "__main__":
    main()
