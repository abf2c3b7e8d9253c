"""Cost of the accompaniment for a 16-bar piece: harmonising and arranging it, and rendering it.

    python benchmarks/harmony_bench.py [--repeat 7] [--bars 16] [--style classical ...]

For each style, a melody composed by its shipped model (seed 1): the median wall and CPU time of
``arrange`` (Viterbi over the chords plus the style's texture) and of writing the MIDI, and of
``render_ogg`` and ``render_png`` with and without the accompaniment, with the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_bench import measure

from composer.arrange import arrange
from composer.audio import render_ogg
from composer.compose import ComposeRequest, compose
from composer.harmony import load_model
from composer.midi_writer import melody_to_midi
from composer.model_store import ModelLibrary
from composer.score import render_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--style", action="append", help="styles to measure (default: every shipped one)")
    parser.add_argument("--no-render", action="store_true", help="only harmonise and arrange")
    args = parser.parse_args()

    library = ModelLibrary()
    load_model()
    styles = args.style or [s.name for s in library.styles()]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.bars} bars; median of {args.repeat}; "
          "ms wall / ms CPU")
    header = "| style | harmonise + arrange | MIDI written |"
    if not args.no_render:
        header += " audio, melody only | audio, accompanied | score, melody only | score with chords |"
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for style in styles:
        melody = compose(ComposeRequest(style=style, bars=args.bars, seed=1), library).melody
        arrangement = arrange(melody, style)
        cells = [measure(lambda: arrange(melody, style), args.repeat * 5),  # noqa: B023
                 measure(lambda: melody_to_midi(melody, arrangement.tracks), args.repeat * 5)]  # noqa: B023
        if not args.no_render:
            plain, full = melody_to_midi(melody), melody_to_midi(melody, arrangement.tracks)
            cells += [measure(lambda: render_ogg(plain), args.repeat),  # noqa: B023
                      measure(lambda: render_ogg(full), args.repeat),  # noqa: B023
                      measure(lambda: render_png(melody, style), args.repeat),  # noqa: B023
                      measure(lambda: render_png(melody, style, chords=arrangement.symbols()),  # noqa: B023
                              args.repeat)]
        print(f"| {style} | " + " | ".join(f"{1000 * w:.1f} / {1000 * c:.1f}" for w, c in cells) + " |")


if __name__ == "__main__":
    main()
