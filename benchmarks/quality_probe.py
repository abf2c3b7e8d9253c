"""Does each style's model sound like its style? Style recognition, real-vs-generated and endings and
openings (issue 9), for real tunes and for generated melodies.

    python benchmarks/quality_probe.py [--models DIR] [--cache DIR] [--count 30] [--bars 16]
                                       [--max-pieces 400] [--seed 0] [--styles a,b,...]

Real melodies: each style's corpus from the cache (``data/cache/<style>.json``, written keys), split by
piece as training does (``split_pieces``); a style without a cache falls back on the model's shipped
``test_split.npz`` (moved to C for key-normalised models: the mean pitch differs then). Generated:
``--count`` melodies per style, ``compose(ComposeRequest(style, bars, seed=i))`` with default settings.
Real tunes are cut into ``--bars``-bar windows (``composer.dataset.chunks``; windows shorter than half
of that are dropped); for the classifiers each generated melody is cut to the length of a real window
drawn at random, so both sets have the same lengths.

- Recognition: a style classifier on ``composer.quality.melody_vector`` trained on the windows of up to
  ``--max-pieces`` real pieces per style (all splits); ``real``: held-out windows recognised as their
  style (5-fold by piece); ``generated``: generated melodies recognised as their style.
- Real vs generated: accuracy (5-fold) of a classifier telling the style's real test-split windows from
  its generated melodies, classes balanced (0.5 is chance); beside it, test against validation windows
  (``--count`` of them), both real: what chance looks like at this sample size; and the same classifier
  on the test tunes' openings only (each tune's first ``--bars`` bars, or all of a shorter one) against
  the generated melodies cut to their lengths: a generated piece is a whole piece, with a start (often a
  pickup bar) and an ending, where most windows are a tune's middle or a start without its end.
- Endings and openings: real test tunes' last ``--bars`` bars (endings) and first (openings), beside the
  generated melodies; tonic by the Krumhansl-Kessler estimate of the window.
- ``--real-lengths``: also real vs generated with the framing matched: for each of up to ``--count`` test
  tunes (the split's order is shuffled) a melody composed at that tune's length (in bars, at most
  ``MAX_BARS``) and in its metre (where the style knows it; key and register drawn as usual), and both
  sets cut into the same ``--bars``-bar windows (folds keep each piece's windows together); beside it the
  mean span (lowest to highest pitch) of the whole pieces, real and generated. A 16-bar generated piece
  is a whole piece, opening and ending in 16 bars, where a real window is mostly part of a longer tune.
- ``--tells N``: the N features (``composer.quality.FEATURE_NAMES``) whose means differ most between the
  real test windows and the generated melodies, in pooled standard deviations: where to look next.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np

from composer.compose import MAX_BARS, ComposeRequest, compose, metre_name
from composer.corpus import build_style_corpus
from composer.dataset import chunks, load_melodies, split_pieces
from composer.melody import Melody
from composer.model_store import ModelLibrary
from composer.quality import (
    FEATURE_NAMES,
    ending_and_opening,
    melody_matrix,
    real_vs_generated,
    style_recognition,
)


def windows(pieces: list[Melody], bars: int) -> tuple[list[Melody], list[int]]:
    """Every piece cut into ``bars``-bar windows (at least half that long), and the piece of each."""
    out, groups = [], []
    for i, piece in enumerate(pieces):
        for window in chunks(piece, bars * piece.steps_per_bar):
            if window.n_bars >= bars / 2:
                out.append(window)
                groups.append(i)
    return out, groups


def cut_like(melodies: list[Melody], like: list[Melody], seed: int) -> list[Melody]:
    """Each melody cut to the length in bars of a real window drawn at random from ``like``, so that both
    sets have the same distribution of lengths (pitch range, for one, grows with length)."""
    rng = random.Random(seed)
    return [m.bars(0, math.ceil(rng.choice(like).n_bars)) for m in melodies]


def first_bars(melody: Melody, bars: int) -> Melody:
    return melody.bars(0, bars)


def last_bars(melody: Melody, bars: int) -> Melody:
    return melody.bars(max(0, math.ceil(melody.n_bars) - bars))


def real_pieces(style: str, models: Path, cache: Path
                ) -> tuple[list[Melody], list[Melody], list[Melody], str]:
    """(all pieces, test pieces, validation pieces, where from) of a style."""
    if (cache / f"{style}.json").exists():
        melodies, _ = build_style_corpus(style, cache)
        split = split_pieces(melodies)
        return melodies, split.test, split.validation, "corpus cache, written keys"
    test = load_melodies(models / style / "test_split.npz")
    half = len(test) // 2
    return test, test[:half], test[half:], "shipped test split, halved"


def pct(x: float) -> str:
    return "  -" if x != x else f"{100 * x:3.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--max-pieces", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--styles", default="")
    parser.add_argument("--first-seed", type=int, default=0, help="the generated melodies' seeds start here")
    parser.add_argument("--tells", type=int, default=0,
                        help="also list the N features that most tell each style's generated melodies from "
                             "its real test windows (standardised difference of the means)")
    parser.add_argument("--real-lengths", action="store_true",
                        help="also compose melodies as long as the test tunes and compare windows of both")
    args = parser.parse_args()
    styles = ([s for s in args.styles.split(",") if s] if args.styles
              else sorted(p.name for p in args.models.iterdir() if (p / "config.json").exists()))
    library = ModelLibrary(args.models)

    started = time.perf_counter()
    real_windows: dict[str, list[Melody]] = {}
    real_groups: dict[str, list[int]] = {}
    test_windows: dict[str, tuple[list[Melody], list[int]]] = {}
    validation_windows: dict[str, tuple[list[Melody], list[int]]] = {}
    tests: dict[str, list[Melody]] = {}
    generated: dict[str, list[Melody]] = {}
    generated_cut: dict[str, list[Melody]] = {}
    for style in styles:
        pieces, test, validation, source = real_pieces(style, args.models, args.cache)
        rng = random.Random(args.seed)
        sample = rng.sample(pieces, min(args.max_pieces, len(pieces)))
        real_windows[style], real_groups[style] = windows(sample, args.bars)
        test_windows[style] = windows(test, args.bars)
        validation_windows[style] = windows(validation, args.bars)
        tests[style] = test
        generated[style] = [compose(ComposeRequest(style, bars=args.bars, seed=i), library).melody
                            for i in range(args.first_seed, args.first_seed + args.count)]
        generated_cut[style] = cut_like(generated[style], test_windows[style][0], args.seed)
        print(f"{style}: {len(pieces)} pieces ({source}), {len(sample)} sampled -> "
              f"{len(real_windows[style])} windows; test {len(test)} pieces -> "
              f"{len(test_windows[style][0])} windows; {len(generated[style])} generated", flush=True)

    recognition = style_recognition(real_windows, generated_cut, seed=args.seed, real_groups=real_groups)
    print(f"\nStyle recognition ({args.bars}-bar windows; classifier on real windows of every style):\n")
    print("| style | real recognised | generated recognised | generated taken for |")
    print("| --- | --- | --- | --- |")
    for style in styles:
        r = recognition[style]
        taken = ", ".join(f"{s} {pct(v).strip()}" for s, v in sorted(r["generated_as"].items(),
                                                                         key=lambda kv: -kv[1]) if s != style)
        print(f"| {style} | {pct(r['real'])} | {pct(r['generated'])} | {taken or '-'} |")
    mean_real = sum(recognition[s]["real"] for s in styles) / len(styles)
    mean_gen = sum(recognition[s]["generated"] for s in styles) / len(styles)
    print(f"| mean | {pct(mean_real)} | {pct(mean_gen)} | |")

    print("\nReal vs generated (test-split windows against generated melodies, balanced; 50% is chance;\n"
          "beside it the same classifier telling test from validation windows, both real, and test tunes'\n"
          "openings from generated melodies):\n")
    print("| style | melodies each | real vs generated | real vs real | openings vs generated |")
    print("| --- | --- | --- | --- | --- |")
    accuracies, ceilings, opening_accuracies = [], [], []
    for style in styles:
        (test_w, test_g), (val_w, _) = test_windows[style], validation_windows[style]
        acc = real_vs_generated(test_w, generated_cut[style], seed=args.seed, real_groups=test_g)
        n_real = min(len(test_w), len(val_w), args.count)
        same = real_vs_generated(test_w, val_w[:n_real], seed=args.seed, real_groups=test_g)
        openings = [first_bars(m, args.bars) for m in tests[style] if m.n_bars >= args.bars / 2]
        opening_acc = real_vs_generated(openings, cut_like(generated[style], openings, args.seed),
                                        seed=args.seed)  # each opening its own piece
        accuracies.append(acc)
        ceilings.append(same)
        opening_accuracies.append(opening_acc)
        print(f"| {style} | {min(len(test_w), len(generated[style]))} | {pct(acc)} | {pct(same)} | "
              f"{pct(opening_acc)} |")
    print(f"| mean | | {pct(sum(accuracies) / len(accuracies))} | {pct(sum(ceilings) / len(ceilings))} | "
          f"{pct(sum(opening_accuracies) / len(opening_accuracies))} |")
    if args.real_lengths:
        print("\nReal vs generated, framing matched (a melody composed at each test tune's length and in its "
              f"metre, both cut into {args.bars}-bar windows):\n")
        print("| style | pieces each | windows real / generated | real vs generated | "
              "mean span real / generated (semitones) | generated past the style's span |")
        print("| --- | --- | --- | --- | --- | --- |")
        for style in styles:
            tunes = [m for m in tests[style] if m.n_bars >= args.bars / 2][:args.count]
            metres = library.get(style).info.metres
            long = [compose(ComposeRequest(style, bars=min(MAX_BARS, max(1, round(m.n_bars))),
                                           metre=metre_name(m.time_signature) if m.time_signature in metres
                                           else None, seed=args.first_seed + i), library).melody
                    for i, m in enumerate(tunes)]
            (real_w, real_g), (gen_w, gen_g) = windows(tunes, args.bars), windows(long, args.bars)
            acc = real_vs_generated(real_w, gen_w, seed=args.seed, real_groups=real_g, generated_groups=gen_g)
            spans = [[np.ptp(m.pitches()) for m in pieces] for pieces in (tunes, long)]
            limit = library.get(style).info.representation.span
            past = "-" if limit is None else f"{sum(s > limit for s in spans[1])} of {len(long)} ({limit})"
            print(f"| {style} | {len(tunes)} | {len(real_w)} / {len(gen_w)} | {pct(acc)} | "
                  f"{np.mean(spans[0]):.1f} / {np.mean(spans[1]):.1f} | {past} |", flush=True)
    if args.tells:
        print("\nWhat tells them apart most (generated minus real mean, in pooled standard deviations; "
              "real -> generated mean):\n")
        for style in styles:
            real, made = melody_matrix(test_windows[style][0]), melody_matrix(generated_cut[style])
            spread = np.sqrt((real.var(axis=0) + made.var(axis=0)) / 2) + 1e-9
            shift = (made.mean(axis=0) - real.mean(axis=0)) / spread
            top = np.argsort(-np.abs(shift))[:args.tells]
            means = real.mean(axis=0), made.mean(axis=0)
            print(f"- {style}: " + ", ".join(f"{FEATURE_NAMES[i]} {shift[i]:+.2f} ({means[0][i]:.3f} -> "
                                            f"{means[1][i]:.3f})" for i in top))

    print(f"\nEndings and openings (real: test tunes' last / first {args.bars} bars):\n")
    print("| style | real tonic on strong beat | gen. tonic on strong beat | real tonic | gen. tonic | "
          "real opens with rest | gen. opens with rest |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for style in styles:
        real_end = ending_and_opening([last_bars(m, args.bars) for m in tests[style]])
        real_open = ending_and_opening([first_bars(m, args.bars) for m in tests[style]])
        gen = ending_and_opening(generated[style])
        n = gen["n"]
        print(f"| {style} | {pct(real_end['tonic_strong_end'])} | {round(gen['tonic_strong_end'] * n)}/{n} | "
              f"{pct(real_end['tonic_end'])} | {round(gen['tonic_end'] * n)}/{n} | "
              f"{pct(real_open['rest_open'])} | {round(gen['rest_open'] * n)}/{n} |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
