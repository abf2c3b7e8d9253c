"""``python -m composer``: train, evaluate, list styles and compose from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from composer.errors import ComposerError
from composer.styles import BUILTIN_STYLES

DEFAULT_MODELS = Path("models")
DEFAULT_CACHE = Path("data/cache")


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


def _train(args: argparse.Namespace) -> int:
    from composer.corpus import build_midi_dir_corpus, build_style_corpus
    from composer.train import TrainOptions, train_style

    if args.corpus:
        if args.style not in BUILTIN_STYLES:
            raise UsageError(f"--corpus needs a built-in style: {', '.join(BUILTIN_STYLES)}")
        spec = BUILTIN_STYLES[args.style]
        melodies, report = build_style_corpus(args.style, args.cache)
        source = "music21 corpus: " + ", ".join(spec.corpus_globs)
        description, program = spec.description, spec.program
    else:
        if not args.midi_dir.is_dir():
            raise UsageError(f"{args.midi_dir} is not a folder")
        melodies, report = build_midi_dir_corpus(args.midi_dir, args.cache, args.style)
        source = f"MIDI files in {args.midi_dir}"
        description, program = args.description or f"Melodies like those in {args.midi_dir.name}", 0
    print(f"{args.style}: {report.summary()}", file=sys.stderr)
    if len(melodies) < 10:
        raise UsageError(f"only {len(melodies)} usable melodies: at least 10 are needed")
    options = TrainOptions(units=args.units, max_epochs=args.epochs, max_minutes=args.max_minutes,
                           target_tokens=args.target_tokens)
    card = train_style(args.style, melodies, report, source, args.models / args.style, options,
                       description, program)
    print(f"{args.style}: test NLL {card['test_nll']} vs n-gram {card['ngram_test_nll']} "
          f"({card['train_seconds']} s) -> {args.models / args.style}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m composer", description=__doc__)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="folder of trained models")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="build a style's dataset and train its model")
    train.add_argument("--style", required=True, help="style name (a built-in one with --corpus)")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", action="store_true", help="use the music21 corpus for a built-in style")
    source.add_argument("--midi-dir", type=Path, help="use every MIDI file below this folder")
    train.add_argument("--description", help="one line about a style of your own")
    train.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-corpus cache folder")
    train.add_argument("--units", type=int, default=160, help="LSTM units per layer")
    train.add_argument("--epochs", type=int, default=30, help="at most this many epochs")
    train.add_argument("--max-minutes", type=float, default=40.0, help="time budget for training")
    train.add_argument("--target-tokens", type=int, default=1_000_000,
                       help="training tokens per epoch to reach with transpositions")
    train.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ComposerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
