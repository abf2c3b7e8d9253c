"""Splitting melodies by tune, repeating or transposing them for an epoch, and padded training batches."""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from composer.melody import Melody
from composer.representation import PAD, Example, Representation

#: Long pieces are cut at bar lines into chunks of at most this many steps.
MAX_CHUNK_STEPS = 512
SPLIT_SEED = 1234


@dataclass
class Split:
    train: list[Melody]
    validation: list[Melody]
    test: list[Melody]


#: Pieces whose first this-many notes move by the same intervals count as one tune for the split.
TUNE_SIGNATURE_NOTES = 10


def tune_signature(melody: Melody) -> tuple[int, ...]:
    """What identical and near-identical tunes share: the intervals between their first notes (so a
    chorale tune harmonised twice, or a folk song in two keys, is one tune)."""
    pitches = melody.pitches()[:TUNE_SIGNATURE_NOTES]
    return tuple(b - a for a, b in pairwise(pitches))


def split_pieces(melodies: list[Melody], seed: int = SPLIT_SEED) -> Split:
    """80/10/10 split by tune (never by window, and every piece of one tune on the same side), fixed seed."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, melody in enumerate(melodies):
        groups.setdefault(tune_signature(melody), []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    n_val = max(1, len(melodies) // 10)
    parts: list[list[Melody]] = [[], [], []]
    for group in order:
        side = 1 if len(parts[1]) < n_val else 2 if len(parts[2]) < n_val else 0
        parts[side] += [melodies[i] for i in group]
    return Split(parts[0], parts[1], parts[2])


def chunks(melody: Melody, max_steps: int = MAX_CHUNK_STEPS) -> list[Melody]:
    """The melody cut at bar lines into pieces of at most ``max_steps`` steps (those with notes)."""
    return melody.chunks(max(1, max_steps // melody.steps_per_bar))


def examples(rep: Representation, melodies: list[Melody]) -> list[Example]:
    return [e for m in melodies for e in rep.examples(m, MAX_CHUNK_STEPS)]


def token_sequences(rep: Representation, melodies: list[Melody]) -> list[list[int]]:
    """The scored target id lists (ids, then END where the piece ends) of each melody's chunks."""
    return [e.targets[e.weights > 0].tolist() for e in examples(rep, melodies)]


Batch = tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]


def batches(rep: Representation, melodies: list[Melody], batch_size: int, multiple: int = 32) -> list[Batch]:
    """Padded ``((tokens, positions, bars_left, control), targets, weights)`` batches, grouped by length."""
    return [pad(group, multiple) for group in example_groups(rep, melodies, batch_size)]


def example_groups(rep: Representation, melodies: list[Melody], batch_size: int) -> list[list[Example]]:
    """The melodies' examples sorted by length, in groups of ``batch_size``."""
    items = examples(rep, melodies)
    items.sort(key=lambda e: len(e.tokens))
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def pad(group: list[Example], multiple: int = 32) -> Batch:
    """One padded batch of examples (length rounded up to ``multiple``)."""
    steps = -(-max(len(e.tokens) for e in group) // multiple) * multiple
    tokens = np.full((len(group), steps), PAD, np.int32)
    positions = np.zeros((len(group), steps), np.int32)
    left = np.zeros((len(group), steps), np.int32)
    control = np.zeros((len(group), steps), np.int32)
    targets = np.full((len(group), steps), PAD, np.int32)
    weights = np.zeros((len(group), steps), np.float32)
    for row, e in enumerate(group):
        n = len(e.tokens)
        tokens[row, :n], positions[row, :n], left[row, :n] = e.tokens, e.positions, e.bars_left
        control[row, :n], targets[row, :n], weights[row, :n] = e.control, e.targets, e.weights
    return (tokens, positions, left, control), targets, weights


@dataclass
class PreparedData:
    """A style's representation, split and training set, reproducible from the seed."""

    rep: Representation
    split: Split
    augmented: list[Melody]
    #: Random transpositions per piece (key policy "written" only; "normalise" needs none).
    transpositions_per_piece: int


def prepare(melodies: list[Melody], target_tokens: int, seed: int, rep: Representation) -> PreparedData:
    """The corpus under ``rep`` (made by ``Representation.for_corpus`` to train, a trained model's own to
    score it): a split by tune; the training pieces repeated (and, with keys as written, transposed at
    random) to about ``target_tokens`` steps an epoch."""
    key_policy = rep.key_policy
    split = split_pieces(melodies)
    rng = random.Random(seed)
    train_tokens = sum(m.n_steps + 1 for m in split.train)
    per_piece = int(np.clip(round(target_tokens / max(train_tokens, 1)), 1, 12))
    augmented = []
    for melody in split.train:
        if key_policy == "normalise":
            augmented += [melody] * per_piece
        else:
            augmented += [melody, *transpositions(melody, per_piece - 1, rng)]
    return PreparedData(rep, split, augmented, 0 if key_policy == "normalise" else per_piece - 1)


def transpositions(melody: Melody, count: int, rng: random.Random) -> list[Melody]:
    """Up to ``count`` random transpositions (-6..+6 semitones) of the melody."""
    shifts = [s for s in range(-6, 7) if s]
    return [melody.transposed(s) for s in rng.sample(shifts, min(count, len(shifts)))]


def save_melodies(path: Path, melodies: list[Melody]) -> None:
    """Melodies as a compact ``.npz`` (events, lengths, metre, tempo)."""
    np.savez_compressed(
        path,
        events=np.concatenate([np.array(m.events, np.int8) for m in melodies]),
        lengths=np.array([m.n_steps for m in melodies], np.int32),
        time_signatures=np.array([m.time_signature for m in melodies], np.int16),
        tempos=np.array([m.tempo_bpm for m in melodies], np.float32),
    )


def load_melodies(path: Path) -> list[Melody]:
    with np.load(path) as data:
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
        return [
            Melody(tuple(int(e) for e in data["events"][a:b]), (int(ts[0]), int(ts[1])), float(tempo))
            for a, b, ts, tempo in zip(bounds[:-1], bounds[1:], data["time_signatures"], data["tempos"],
                                       strict=True)
        ]
