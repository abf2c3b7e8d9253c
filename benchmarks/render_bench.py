"""CPU per 16-bar piece, stage by stage, and render time of a fixed melody as audio and as a score.

    python benchmarks/render_bench.py [--repeat 7] [--bars 16] [--pieces 3] [--style celtic ...]
    python benchmarks/render_bench.py --subprocess-audio   # the old path: a fluidsynth process per piece

First, per piece as the bot makes it (the shipped models, seeds 1..``--pieces`` per style, with the
accompaniment): sampling (``compose``), harmonising (``arrange`` and writing the MIDI), audio
(``render_ogg``), score (``render_png`` with chord symbols), their total and ``make_piece`` as one call,
median over pieces and repeats; below audio and score, indented, the parts they are made of, timed
apart on the same piece (synthesis, encoding; MusicXML, engraving, rasterising). Then the fixed melody
of ``bench_melody``, audio and score alone.

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


def stages(bars: int, pieces: int, repeat: int, styles: list[str] | None) -> None:
    """CPU (and wall) per stage of whole pieces composed by the shipped models, with accompaniment."""
    from composer.arrange import arrange, lead_style
    from composer.compose import ComposeRequest, compose
    from composer.harmony import load_model
    from composer.model_store import ModelLibrary
    from composer.piece import make_piece

    library = ModelLibrary()
    load_model()
    names = styles or [s.name for s in library.styles()]
    cells: dict[str, list[tuple[float, float]]] = {}
    state: dict[str, object] = {}

    def timed(name: str, work: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = work()
        cells.setdefault(name, []).append((time.perf_counter() - wall, cpu_seconds() - cpu))
        return result

    for style in names:
        for seed in range(1, pieces + 1):
            request = ComposeRequest(style=style, bars=bars, seed=seed)
            make_piece(request, library)  # warm: models, soundfont, verovio
            for _ in range(repeat):
                before = len(cells.get("sampling", []))
                composition = timed("sampling", lambda: compose(request, library))  # noqa: B023
                melody = composition.melody  # type: ignore[attr-defined]

                def harmonise() -> None:
                    arrangement = arrange(melody, lead_style(composition.mix))  # noqa: B023
                    state["arrangement"] = arrangement
                    state["midi"] = melody_to_midi(melody, arrangement.tracks)  # noqa: B023

                timed("harmonising + MIDI", harmonise)
                timed("audio (render_ogg)", lambda: render_ogg(state["midi"]))  # type: ignore[arg-type]
                timed("score (render_png)", lambda: render_png(
                    melody, style, chords=state["arrangement"].symbols()))  # type: ignore[attr-defined]  # noqa: B023
                parts = [cells[name][-1] for name in cells
                         if len(cells[name]) > before and not name.startswith(" ")]
                audio_parts(state["midi"], timed)  # type: ignore[arg-type]
                score_parts(melody, style, state["arrangement"].symbols(), timed)  # type: ignore[attr-defined]
                cells.setdefault("total of the stages", []).append(
                    (sum(w for w, _ in parts), sum(c for _, c in parts)))
                timed("make_piece (one call, audio in a thread)", lambda: make_piece(request, library))  # noqa: B023
    count = len(cells["sampling"])
    print(f"{count} pieces of {bars} bars ({', '.join(names)}; seeds 1-{pieces}, x{repeat}), with "
          f"accompaniment; median; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'stage':42} {'wall s':>7} {'CPU s':>7}")
    order = [name for name in cells if not name.startswith(" ")]
    for parent in ("audio", "score"):  # each part under its stage
        at = next(i for i, name in enumerate(order) if name.startswith(parent)) + 1
        order[at:at] = [name for name in cells if name.startswith(f"  {parent}:")]
    for name in order:
        values = cells[name]
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:42} {wall:7.3f} {cpu:7.3f}")
    print()


def audio_parts(midi: bytes, timed: Callable[[str, Callable[[], object]], object]) -> None:
    """``render_ogg``'s in-process path in its two steps: FluidSynth into a raw file, opusenc from it."""
    import io
    import tempfile

    import mido

    from composer import audio

    messages = list(mido.MidiFile(file=io.BytesIO(midi)))
    frames = round((sum(m.time for m in messages) + audio.TAIL_SECONDS) * audio.SAMPLE_RATE)
    synth = audio._loaded_synth(audio.check_setup())
    if synth is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "out.f32")
        try:
            peak = timed("  audio: synthesis (FluidSynth)",
                         lambda: synth.render(messages, frames, path, time.monotonic() + 30))
        finally:
            synth.lock.release()
        timed("  audio: encoding (opusenc)", lambda: audio._encode_opus(
            lambda: audio._pcm_blocks(path, frames), frames, audio.PEAK / peak,  # type: ignore[operator]
            audio.bitrate_kbps(frames / audio.SAMPLE_RATE), Path(folder), 30))


def score_parts(melody: Melody, title: str, chords: list[tuple[int, str]],
                timed: Callable[[str, Callable[[], object]], object]) -> None:
    """``render_png`` in its three steps: music21 writes MusicXML, verovio engraves, librsvg rasterises."""
    from composer import score

    xml = timed("  score: MusicXML (music21)", lambda: score.melody_to_musicxml(melody, title, chords))
    svg = timed("  score: engraving (verovio)", lambda: score._engrave(xml))  # type: ignore[arg-type]
    rasteriser = score._rasteriser()
    timed("  score: rasterising (librsvg, PNG)",
          lambda: rasteriser.png(svg.encode()) if rasteriser else score._svg_to_png(svg, 10))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--pieces", type=int, default=3, help="seeds per style for the per-stage table")
    parser.add_argument("--style", action="append", help="styles for the per-stage table (default: all)")
    parser.add_argument("--no-stages", action="store_true", help="only the fixed melody")
    parser.add_argument("--subprocess-audio", action="store_true",
                        help="render audio with a fluidsynth process per piece (the fallback path)")
    args = parser.parse_args()
    if args.subprocess_audio:
        os.environ["COMPOSER_AUDIO_SUBPROCESS"] = "1"
    if not args.no_stages:
        stages(args.bars, args.pieces, max(1, args.repeat // 3), args.style)

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
