"""Checks on the harmoniser and the arrangements, and its training (``python -m composer train-harmony``).

``evaluate_harmony()`` returns a dict (what ``python -m composer evaluate`` can print):

- on held-out chorales (Bach's soprano harmonised one chord per beat): how often the harmoniser picks
  Bach's chord (root and quality; and as a triad, V7 = V) against a baseline that picks the most common
  chord (in the training chorales, in that mode) containing the melody note on the beat;
- the share of melody notes on strong beats (the downbeat, and the half bar in metres of an even number
  of beats) that belong to the chord sounding with them, ours and Bach's;
- chord changes per bar, ours and Bach's;
- parallel fifths and octaves between the melody and the bass (the lowest accompanying note), per 100
  beat-to-beat moves, ours (classical arrangement) and Bach's (soprano against bass);
- the same three for melodies the shipped style models compose, each arranged in its style.
"""

from __future__ import annotations

import itertools
import platform
import time
from pathlib import Path

import numpy as np

from composer.arrange import _parallel, arrange
from composer.harmony import (
    DEFAULT_MODEL_DIR,
    MODEL_FILE,
    N_CHORDS,
    N_QUALITIES,
    TONES,
    HarmonyModel,
    fit,
    harmonise,
    load_model,
    soprano,
    training_piece,
    write_card,
)
from composer.melody import Melody

SPLIT_SEED = 1234
EMISSION_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0)
ONSET_PENALTIES = (0.0, 1.0, 2.0, 4.0)


def split(records: list[dict], seed: int = SPLIT_SEED) -> tuple[list[dict], list[dict], list[dict]]:
    """80/10/10 by chorale."""
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = n_test = max(1, len(records) // 10)
    test = [records[i] for i in order[:n_test]]
    val = [records[i] for i in order[n_test:n_test + n_val]]
    train = [records[i] for i in order[n_test + n_val:]]
    return train, val, test


def _sounding(melody: Melody) -> np.ndarray:
    out = np.full(melody.n_steps, -1)
    current = -1
    for i, e in enumerate(melody.events):
        if e != -2:
            current = e
        out[i] = current
    return out


def strong_steps(melody: Melody, n_steps: int | None = None) -> list[int]:
    """The downbeats, and the middle of each bar where a bar has an even number of beats."""
    bar, beat = melody.steps_per_bar, melody.beat_steps
    beats = max(1, bar // beat)
    offsets = [0, bar // 2] if beats % 2 == 0 and bar % 2 == 0 else [0]
    return [b + o for b in range(0, n_steps or melody.n_steps, bar) for o in offsets]


def _bass_sounding(tracks, n_steps: int) -> np.ndarray:
    low = np.full(n_steps, 999)
    for track in tracks:
        for pitch, start, end, _ in track.notes:
            seg = low[start:min(end, n_steps)]
            np.minimum(seg, pitch, out=seg)
    return np.where(low == 999, -1, low)


def _parallels(top: np.ndarray, bass: np.ndarray, beats: list[int]) -> tuple[int, int]:
    """(parallel fifths/octaves, beat-to-beat moves with both voices sounding)."""
    found = moves = 0
    for a, b in itertools.pairwise(beats):
        if min(top[a], top[b], bass[a], bass[b]) < 0:
            continue
        moves += 1
        found += _parallel(int(top[a]), int(top[b]), int(bass[a]), int(bass[b]))
    return found, moves


def melody_checks(melody: Melody, arrangement) -> dict:
    """Strong-beat chord tones, chord changes and bars, parallels and moves for one arranged melody."""
    sounding = _sounding(melody)
    out = {"strong": 0, "strong_in_chord": 0, "changes": 0, "bars": 0.0, "parallels": 0, "moves": 0}
    harmony = arrangement.harmony
    if harmony is not None and harmony.chords:
        for step in strong_steps(melody):
            chord = harmony.at(step)
            if step < len(sounding) and sounding[step] >= 0 and chord is not None:
                out["strong"] += 1
                out["strong_in_chord"] += int(sounding[step] % 12 in chord.pitch_classes)
        out["changes"] = len(harmony.symbols()) - 1
        out["bars"] = (harmony.chords[-1].end - harmony.chords[0].start) / melody.steps_per_bar
    bass = _bass_sounding(arrangement.tracks, melody.n_steps)
    beats = list(range(0, melody.n_steps, melody.beat_steps))
    out["parallels"], out["moves"] = _parallels(sounding, bass, beats)
    return out


def _totals(rows: list[dict]) -> dict:
    total = {k: sum(r[k] for r in rows) for k in rows[0]} if rows else {}
    return {
        "strong_chord_tones": total["strong_in_chord"] / max(1, total["strong"]),
        "changes_per_bar": total["changes"] / max(1e-9, total["bars"]),
        "parallels_per_100": 100 * total["parallels"] / max(1, total["moves"]),
    }


def chorale_checks(model: HarmonyModel, records: list[dict], arrange_too: bool = True) -> dict:
    """Agreement with Bach on ``records`` (per beat), the baseline's, and the checks against Bach's own."""
    hits = triad_hits = base_hits = base_triad_hits = beats_scored = 0
    ours, bachs = [], []
    triad = np.arange(N_CHORDS) - (np.arange(N_CHORDS) % N_QUALITIES == 3) * 3  # X7 -> X major
    for record in records:
        melody = soprano(record)
        piece = training_piece(record)
        mode = int(piece["minor"])
        labels = np.array(piece["labels"])
        beat = melody.beat_steps
        harmony = harmonise(melody, model, rhythm_steps=beat, vocabulary="all")
        sounding = _sounding(melody)
        tonic = harmony.tonic
        for b, bach in enumerate(labels):
            t0 = b * beat
            if bach < 0 or t0 >= melody.n_steps or sounding[t0] < 0:
                continue
            chord = harmony.at(t0)
            if chord is None:
                continue
            mine = ((chord.root - tonic) % 12) * N_QUALITIES + ("maj", "min", "dim", "7").index(chord.quality)
            rel = (sounding[t0] - tonic) % 12
            counts = np.where(TONES[:, rel], model.chord_counts[mode], -1)
            base = int(counts.argmax())
            beats_scored += 1
            hits += mine == bach
            triad_hits += triad[mine] == triad[bach]
            base_hits += base == bach
            base_triad_hits += triad[base] == triad[bach]
        if arrange_too:
            ours.append(melody_checks(melody, arrange(melody, "classical", model)))
        bachs.append(_bach_checks(record, melody, labels))
    out = {
        "beats": beats_scored,
        "accuracy": hits / max(1, beats_scored),
        "triad_accuracy": triad_hits / max(1, beats_scored),
        "baseline_accuracy": base_hits / max(1, beats_scored),
        "baseline_triad_accuracy": base_triad_hits / max(1, beats_scored),
    }
    if ours:
        out.update(_totals(ours))
    out.update({f"bach_{k}": v for k, v in _totals(bachs).items()})
    return out


def _bach_checks(record: dict, melody: Melody, labels: np.ndarray) -> dict:
    beat = melody.beat_steps
    sounding = _sounding(melody)
    out = {"strong": 0, "strong_in_chord": 0, "changes": 0, "bars": 0.0, "parallels": 0, "moves": 0}
    for step in strong_steps(melody):
        b = step // beat
        if step < len(sounding) and sounding[step] >= 0 and b < len(labels) and labels[b] >= 0:
            out["strong"] += 1
            root, q = divmod(int(labels[b]), N_QUALITIES)
            pc = (sounding[step] - record["tonic"]) % 12
            out["strong_in_chord"] += bool(TONES[root * N_QUALITIES + q, pc])
    known = [c for c in labels if c >= 0]
    out["changes"] = sum(a != b for a, b in itertools.pairwise(known))
    out["bars"] = len(known) * beat / melody.steps_per_bar
    bass = _sounding(soprano(record, voice=3))
    n = min(len(sounding), len(bass))
    beats = list(range(0, n, beat))
    out["parallels"], out["moves"] = _parallels(sounding[:n], bass[:n], beats)
    return out


def style_checks(models_dir: Path, count: int = 20, bars: int = 16,
                 model: HarmonyModel | None = None) -> dict:
    """The checks on ``count`` melodies composed by each shipped style, each arranged in its style, and
    the mean milliseconds to harmonise and arrange one."""
    from composer.compose import ComposeRequest, compose
    from composer.model_store import ModelLibrary

    library = ModelLibrary(models_dir)
    out = {}
    for info in library.styles():
        rows, seconds = [], 0.0
        for seed in range(count):
            melody = compose(ComposeRequest(style=info.name, bars=bars, seed=seed), library).melody
            started = time.perf_counter()
            arrangement = arrange(melody, info.name, model)
            seconds += time.perf_counter() - started
            rows.append(melody_checks(melody, arrangement))
        row = _totals(rows)
        if arrangement.harmony is None:
            row = {"parallels_per_100": row["parallels_per_100"]}
        row["arrange_ms"] = 1000 * seconds / count
        out[info.name] = row
    return out


def evaluate_harmony(cache_dir: Path = Path("data/cache"), models_dir: Path | None = Path("models"),
                     melodies: int = 20, model: HarmonyModel | None = None) -> dict:
    """Every check: ``{"chorales": {...}, "styles": {style: {...}}}`` (styles only with ``models_dir``)."""
    from composer.harmony_corpus import load_chorales

    model = model or load_model()
    _, _, test = split(load_chorales(cache_dir))
    out = {"chorales": chorale_checks(model, test)}
    if models_dir is not None and melodies > 0:
        out["styles"] = style_checks(models_dir, melodies, model=model)
    return out


def report_lines(result: dict) -> list[str]:
    """The checks as Markdown tables."""
    c = result["chorales"]
    lines = [
        f"Held-out chorales ({c['beats']} beats):",
        "",
        "| check | harmoniser | Bach / baseline |",
        "| --- | --- | --- |",
        f"| picks Bach's chord (root and quality) | {c['accuracy']:.1%} | "
        f"baseline {c['baseline_accuracy']:.1%} |",
        f"| picks Bach's triad (V7 = V) | {c['triad_accuracy']:.1%} | "
        f"baseline {c['baseline_triad_accuracy']:.1%} |",
        f"| strong-beat melody notes in the chord | {c['strong_chord_tones']:.1%} | "
        f"Bach {c['bach_strong_chord_tones']:.1%} |",
        f"| chord changes per bar | {c['changes_per_bar']:.2f} | Bach {c['bach_changes_per_bar']:.2f} |",
        f"| parallel 5ths/8ves melody-bass per 100 beats | {c['parallels_per_100']:.2f} | "
        f"Bach {c['bach_parallels_per_100']:.2f} |",
    ]
    if result.get("styles"):
        lines += ["", "| style (composed melodies) | strong-beat chord tones | changes per bar | "
                      "parallels per 100 beats | harmonise + arrange ms |", "| --- | --- | --- | --- | --- |"]
        for style, row in result["styles"].items():
            strong = f"{row['strong_chord_tones']:.1%}" if "strong_chord_tones" in row else "(drone)"
            changes = f"{row['changes_per_bar']:.2f}" if "changes_per_bar" in row else "-"
            lines.append(f"| {style} | {strong} | {changes} | {row['parallels_per_100']:.2f} | "
                         f"{row['arrange_ms']:.1f} |")
    return lines


def train_harmony(cache_dir: Path, out_dir: Path = DEFAULT_MODEL_DIR, command: str = "") -> dict:
    """Parse (or read the cached) chorales, fit on the training split, tune the two weights on the
    validation split, save the model and its card, and evaluate on the test split."""
    from composer.harmony_corpus import load_chorales

    started = time.perf_counter()
    records = load_chorales(cache_dir)
    train, val, test = split(records)
    pieces = [training_piece(r) for r in train]
    best = None
    for weight in EMISSION_WEIGHTS:
        for penalty in ONSET_PENALTIES:
            model = fit(pieces, weight, penalty)
            accuracy = chorale_checks(model, val, arrange_too=False)["accuracy"]
            if best is None or accuracy > best[0]:
                best = (accuracy, weight, penalty)
    assert best is not None
    model = fit(pieces, best[1], best[2])
    model.save(out_dir / MODEL_FILE)
    train_seconds = round(time.perf_counter() - started, 1)
    evaluation = chorale_checks(model, test)
    card = {
        "name": "harmoniser",
        "source": "music21 corpus: bach/* (four-part chorales, key by music21's Krumhansl-Schmuckler "
                  "analysis)",
        "chorales": len(records),
        "beats": sum(len(p["labels"]) for p in pieces),
        "split": {"train": len(train), "validation": len(val), "test": len(test), "seed": SPLIT_SEED},
        "labels": "each beat's chord by template matching over all four voices (duration-weighted pitch "
                  "classes, onsets counted twice): root relative to the tonic x major/minor/diminished/"
                  "dominant seventh (48 chords)",
        "model": "HMM per mode (major, minor): first-order chord transitions, first/final/cadence tables, "
                 "Dirichlet-smoothed towards chord frequencies; melody given chord P(pitch - root | quality, "
                 "on the onset or passing); Viterbi decoding; numpy",
        "emission_weight": best[1],
        "onset_penalty": best[2],
        "validation_accuracy": round(best[0], 4),
        "train_seconds": train_seconds,
        "machine": f"{platform.machine()}, {platform.system()}",
        "command": command or "python -m composer train-harmony",
        "model_file": MODEL_FILE,
        "evaluation": {k: round(v, 4) if isinstance(v, float) else v for k, v in evaluation.items()},
    }
    write_card(out_dir, card)
    return card
