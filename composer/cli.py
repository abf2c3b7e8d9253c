"""``python -m composer``: train, evaluate, list styles and compose from the command line."""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from composer.errors import ComposerError
from composer.model_store import default_models_dir
from composer.sampler import DEFAULT_TOP_P, MAX_TOP_P, MIN_TOP_P
from composer.styles import BUILTIN_STYLES

DEFAULT_MODELS = default_models_dir()
DEFAULT_CACHE = Path("data/cache")
MAX_COUNT = 32
#: ``train`` flags that override the style's recipe (``composer.recipe.Recipe`` fields).
RECIPE_FLAGS = ("units", "max_epochs", "max_minutes", "target_tokens", "key_policy", "threads",
                "max_bars_left", "batch_size", "learning_rate", "pitch_class_sharing", "interval_terms",
                "modes", "register_bands")


def _flag(name: str, value: object) -> str:
    """A recipe override as the command line that gives it (``--units 96``, ``--no-pitch-class-sharing``)."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    if isinstance(value, tuple):
        return f"--{flag} {','.join(map(str, value))}"
    return f"--{flag} {value}"


def _modes(text: str) -> tuple[str, ...]:
    """``--modes major,minor,dorian``: modes a ``Representation`` takes."""
    from composer.representation import Representation

    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    try:
        Representation(modes=modes)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return modes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return value


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (exit status 2), without the usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _train(args: argparse.Namespace) -> int:
    from composer.corpus import build_midi_dir_corpus, build_style_corpus
    from composer.recipe import Recipe
    from composer.train import train_style

    if args.corpus:
        if args.style not in BUILTIN_STYLES:
            raise UsageError(f"--corpus needs a built-in style: {', '.join(BUILTIN_STYLES)}")
        spec = BUILTIN_STYLES[args.style]
        melodies, report = build_style_corpus(args.style, args.cache)
        source = "music21 corpus: " + ", ".join(spec.corpus_globs)
        description, program, top_p = spec.description, spec.program, spec.top_p
    else:
        if not args.midi_dir.is_dir():
            raise UsageError(f"{args.midi_dir} is not a folder")
        melodies, report = build_midi_dir_corpus(args.midi_dir, args.cache, args.style)
        source = f"MIDI files in {args.midi_dir}"
        description, program = args.description or f"Melodies like those in {args.midi_dir.name}", 0
        top_p = DEFAULT_TOP_P
    print(f"{args.style}: {report.summary()}", file=sys.stderr)
    if len(melodies) < 10:
        raise UsageError(f"only {len(melodies)} usable melodies: at least 10 are needed")
    recipe = BUILTIN_STYLES[args.style].recipe if args.corpus else Recipe()
    overrides = {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name) is not None}
    recipe = replace(recipe, **overrides)
    command = " ".join(["python -m composer train --style", args.style,
                        "--corpus" if args.corpus else f"--midi-dir {args.midi_dir}"]
                       + [_flag(name, value) for name, value in overrides.items()])
    card = train_style(args.style, melodies, report, source, args.models / args.style, recipe,
                       description, program, command, top_p)
    print(f"{args.style}: test NLL {card['test_nll']} vs n-gram {card['ngram_test_nll']} "
          f"({card['train_seconds']} s) -> {args.models / args.style}")
    return 0


def _styles(args: argparse.Namespace) -> int:
    from composer.instruments import instrument_name
    from composer.model_store import ModelLibrary

    styles = ModelLibrary(args.models).styles()
    if not styles:
        raise UsageError(f"no trained models in {args.models}")
    width = max(len(s.name) for s in styles)
    for s in styles:
        metres = ", ".join(f"{n}/{d}" for n, d in s.metres)
        print(f"{s.name:<{width}}  {s.description} ({instrument_name(s.program)}, {s.tempo_bpm:g} bpm; "
              f"metres {metres}; modes {', '.join(s.representation.modes)}; top-p {s.top_p:g})")
    return 0


def _compose(args: argparse.Namespace) -> int:
    from composer.compose import MAX_SEED, ComposeRequest, compose
    from composer.extract import melody_from_midi
    from composer.model_store import ModelLibrary
    from composer.style_mix import mix_label

    if not 1 <= args.count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT}, not {args.count}")
    for path in (args.out, args.audio, args.score):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{path.parent} is not a folder")
    if args.primer is not None and not args.primer.is_file():
        raise UsageError(f"{args.primer}: no such file")
    request = ComposeRequest(
        style=args.style, bars=args.bars, temperature=args.temperature, top_p=args.top_p,
        tempo_bpm=args.tempo, instrument=args.instrument, seed=args.seed,
        primer=melody_from_midi(args.primer) if args.primer is not None else None,
        primer_bars=args.primer_bars, candidates=args.candidates, key=args.key, metre=args.metre,
    )
    library = ModelLibrary(args.models)
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    outs = [_numbered(args.out, i, args.count) for i in range(args.count)]
    for i, out in enumerate(outs):
        composition = compose(replace(request, seed=(seed + i) % (MAX_SEED + 1)), library)
        chords: list[tuple[int, str]] = []
        if args.accompaniment:
            from composer.arrange import arrange, lead_style
            from composer.midi_writer import melody_to_midi

            arrangement = arrange(composition.melody, lead_style(composition.mix))
            midi, chords = melody_to_midi(composition.melody, arrangement.tracks), arrangement.symbols()
            described = f"{composition.description()}; {arrangement.plan} accompaniment"
        else:
            midi, described = composition.midi_bytes(), composition.description()
        out.write_bytes(midi)
        print(f"{out}: {described}")
        if args.audio is not None:
            from composer.audio import render_ogg

            audio = _numbered(args.audio, i, args.count)
            audio.write_bytes(render_ogg(midi, soundfont=args.soundfont))
            print(f"{audio}: OGG/Opus voice")
        if args.score is not None:
            from composer.score import render_png

            score = _numbered(args.score, i, args.count)
            score.write_bytes(render_png(composition.melody, f"{mix_label(composition.mix)} melody",
                                         chords=chords))
            print(f"{score}: sheet music")
    return 0


def _train_harmony(args: argparse.Namespace) -> int:
    from composer.harmony_eval import train_harmony

    command = f"python -m composer train-harmony --cache {args.cache}"
    card = train_harmony(args.cache, args.out, command)
    ev = card["evaluation"]
    print(f"harmoniser: {card['chorales']} chorales, test accuracy {ev['accuracy']:.1%} "
          f"(baseline {ev['baseline_accuracy']:.1%}) -> {args.out}")
    return 0


def _evaluate_harmony(args: argparse.Namespace) -> int:
    from composer.harmony_eval import evaluate_harmony, report_lines

    print("\n".join(report_lines(evaluate_harmony(args.cache, args.models, args.melodies))))
    return 0


def _numbered(path: Path, index: int, count: int) -> Path:
    """``path`` itself for a single melody, else ``stem-N.suffix``."""
    return path if count == 1 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


def _evaluate(args: argparse.Namespace) -> int:
    from composer.evaluate import evaluate_all, nll_table, quality_rows, quality_table

    styles = [s for s in (args.styles or "").split(",") if s] or None
    cards = evaluate_all(args.models, args.cache, styles)
    if not cards:
        raise UsageError(f"no trained models in {args.models}")
    print(nll_table(cards))
    if args.melodies:
        print()
        print(quality_table(quality_rows(args.models, args.melodies, styles=styles)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from composer import compose as c

    parser = Parser(prog="python -m composer", description=__doc__)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="folder of trained models")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="build a style's dataset and train its model")
    train.add_argument("--style", required=True, help="style name (a built-in one with --corpus)")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", action="store_true", help="use the music21 corpus for a built-in style")
    source.add_argument("--midi-dir", type=Path, help="use every MIDI file below this folder")
    train.add_argument("--description", help="one line about a style of your own")
    train.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-corpus cache folder")
    train.add_argument("--units", type=int, help="LSTM units per layer (default: the style's recipe)")
    train.add_argument("--max-epochs", type=int, help="at most this many epochs")
    train.add_argument("--max-minutes", type=float, help="time budget for training")
    train.add_argument("--target-tokens", type=int,
                       help="training steps per epoch to reach by repeating pieces")
    train.add_argument("--key-policy", choices=("normalise", "written"),
                       help="move every piece to C major / A minor (normalise) or keep the written keys")
    train.add_argument("--threads", type=int, help="CPU threads for TensorFlow")
    train.add_argument("--batch-size", type=int, help="sequences per training batch (default: the recipe's)")
    train.add_argument("--learning-rate", type=float, help="Adam's learning rate (default: the recipe's)")
    train.add_argument("--pitch-class-sharing", action=argparse.BooleanOptionalAction,
                       help="train with octave-shared pitch-class terms (default: the recipe's)")
    train.add_argument("--interval-terms", action=argparse.BooleanOptionalAction,
                       help="give the output layer a term per interval from the sounding pitch, shared by "
                            "every pitch (default: the recipe's)")
    train.add_argument("--max-bars-left", type=int,
                       help="bars-left input cap: 'this many bars or more to go' (default: the recipe's)")
    train.add_argument("--modes", type=_modes,
                       help="the control's modes, comma-separated: major,minor and any of mixolydian, dorian "
                            "(default: the recipe's)")
    train.add_argument("--register-bands", type=_positive,
                       help="part the corpus into this many register bands, a control each (default: the "
                            "recipe's)")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="recompute every model's test NLL against the n-gram baseline")
    evaluate.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-corpus cache folder")
    evaluate.add_argument("--styles", help="comma-separated styles to score (default: all)")
    evaluate.add_argument("--melodies", type=int, default=100,
                          help="melodies per style to generate for the feature comparison (0: skip)")
    evaluate.set_defaults(func=_evaluate)

    styles = sub.add_parser("styles", help="list the trained styles")
    styles.set_defaults(func=_styles)

    compose = sub.add_parser("compose", help="compose a melody and write it as a MIDI file")
    compose.add_argument("style", help="a style, a mix 'a+b', or weighted 'a:0.7,b:0.3'")
    compose.add_argument("--out", type=Path, required=True,
                         help="MIDI file to write (FILE-1.mid ... FILE-K.mid with --count K)")
    compose.add_argument("--bars", type=int, default=16, help=f"bars to compose, {c.MIN_BARS}..{c.MAX_BARS}")
    compose.add_argument("--temperature", type=float, default=c.ComposeRequest.temperature,
                         help=f"randomness, {c.MIN_TEMPERATURE}..{c.MAX_TEMPERATURE} "
                              f"(default {c.ComposeRequest.temperature:g})")
    compose.add_argument("--top-p", type=float, default=c.ComposeRequest.top_p,
                         help=f"sample from the likeliest notes holding this much probability, "
                              f"{MIN_TOP_P}..{MAX_TOP_P} (default: the style's, {DEFAULT_TOP_P:g} unless "
                              "`styles` says otherwise)")
    compose.add_argument("--seed", type=int, help="the same seed and settings give the same melody")
    compose.add_argument("--primer", type=Path, help="a MIDI file whose melody to continue")
    compose.add_argument("--primer-bars", type=int, default=4, help="continue the primer's last N bars")
    compose.add_argument("--tempo", type=float, help=f"beats per minute, {c.MIN_TEMPO:g}..{c.MAX_TEMPO:g} "
                                                     "(default: the primer's or the style's)")
    compose.add_argument("--instrument", help="General MIDI instrument name or program 0..127")
    compose.add_argument("--key", help="'D minor', 'Bb major', 'A dorian' (a mode the style has, see "
                                       "'styles'; default: the primer's, else drawn from the style's corpus)")
    compose.add_argument("--metre", help="one of the style's metres, e.g. 6/8 (see 'styles'; default: the "
                                         "primer's, else drawn from the style's corpus)")
    compose.add_argument("--candidates", type=int, default=8,
                         help=f"draw N candidates and keep the best, {c.MIN_CANDIDATES}..{c.MAX_CANDIDATES}")
    compose.add_argument("--count", type=int, default=1, help="write K melodies (seeds S, S+1, ...)")
    compose.add_argument("--audio", type=Path, help="also write an OGG/Opus voice recording")
    compose.add_argument("--score", type=Path, help="also write the sheet music as PNG")
    compose.add_argument("--soundfont", type=Path, help="General MIDI soundfont (default: $SOUNDFONT, "
                                                        "else Debian's FluidR3_GM)")
    compose.add_argument("--accompaniment", action=argparse.BooleanOptionalAction, default=True,
                         help="chords and a bass line in the style under the melody (MIDI tracks, audio, "
                              "chord symbols on the score; default on)")
    compose.set_defaults(func=_compose)

    from composer.harmony import DEFAULT_MODEL_DIR

    harmony = sub.add_parser("train-harmony", help="learn the harmoniser from the Bach chorales (music21)")
    harmony.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-corpus cache folder")
    harmony.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="folder for the model and card")
    harmony.set_defaults(func=_train_harmony)

    check = sub.add_parser("evaluate-harmony", help="the harmoniser's checks on held-out chorales and on "
                                                     "composed melodies")
    check.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="parsed-corpus cache folder")
    check.add_argument("--melodies", type=int, default=20, help="melodies per style to arrange (0: skip)")
    check.set_defaults(func=_evaluate_harmony)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ComposerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
