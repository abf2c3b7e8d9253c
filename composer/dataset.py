"""Splitting melodies by piece, transposition augmentation, and padded training batches."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composer.encoding import HIGH_PITCH, LOW_PITCH, PAD, fit_range, training_pair
from composer.keys import normalising_shift
from composer.melody import Melody

#: Long pieces are cut at bar lines into chunks of at most this many steps.
MAX_CHUNK_STEPS = 512
SPLIT_SEED = 1234


@dataclass
class Split:
    train: list[Melody]
    validation: list[Melody]
    test: list[Melody]


def split_pieces(melodies: list[Melody], seed: int = SPLIT_SEED) -> Split:
    """80/10/10 split by piece (never by window), fixed seed."""
    order = list(range(len(melodies)))
    random.Random(seed).shuffle(order)
    n_val = max(1, len(order) // 10)
    n_test = max(1, len(order) // 10)
    pick = [melodies[i] for i in order]
    return Split(pick[n_val + n_test :], pick[:n_val], pick[n_val : n_val + n_test])


def chunks(melody: Melody, max_steps: int = MAX_CHUNK_STEPS) -> list[Melody]:
    """The melody cut at bar lines into pieces of at most ``max_steps`` steps."""
    bars_per_chunk = max(1, max_steps // melody.steps_per_bar)
    n_bars = -(-melody.n_steps // melody.steps_per_bar)
    out = []
    for start in range(0, n_bars, bars_per_chunk):
        piece = melody.bars(start, start + bars_per_chunk)
        if piece.pitches():
            out.append(piece)
    return out


def transpositions(melody: Melody, count: int, rng: random.Random) -> list[Melody]:
    """The melody plus up to ``count`` random transpositions (-6..+6 semitones) that stay in range."""
    pitches = melody.pitches()
    low, high = min(pitches), max(pitches)
    shifts = [s for s in range(-6, 7) if s and low + s >= LOW_PITCH and high + s <= HIGH_PITCH]
    return [melody] + [melody.transposed(s) for s in rng.sample(shifts, min(count, len(shifts)))]


def in_c(melody: Melody) -> tuple[Melody, int]:
    """The melody moved to C major or A minor (by its estimated key, within the models' range), and
    the semitones it moved."""
    shift = normalising_shift(np.array(melody.events))
    moved = fit_range(melody.transposed(shift))
    if moved is None:
        raise ValueError("the melody spans more than the models' range")
    return moved, moved.pitches()[0] - melody.pitches()[0]


def token_sequences(melodies: list[Melody]) -> list[list[int]]:
    """The target token lists (tokens + END) of each melody's chunks, as the models are scored on."""
    return [training_pair(c)[2].tolist() for m in melodies for c in chunks(m)]


def batches(
    melodies: list[Melody], batch_size: int, rng: random.Random | None = None, multiple: int = 32
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Padded ``(tokens, positions, targets, weights)`` batches, grouped by length to waste little."""
    pairs = [training_pair(c) for m in melodies for c in chunks(m)]
    pairs.sort(key=lambda p: len(p[0]))
    out = []
    for i in range(0, len(pairs), batch_size):
        group = pairs[i : i + batch_size]
        steps = -(-max(len(p[0]) for p in group) // multiple) * multiple
        tokens = np.full((len(group), steps), PAD, np.int32)
        positions = np.zeros((len(group), steps), np.int32)
        targets = np.full((len(group), steps), PAD, np.int32)
        for row, (x, pos, y) in enumerate(group):
            tokens[row, : len(x)] = x
            positions[row, : len(x)] = pos
            targets[row, : len(y)] = y
        out.append((tokens, positions, targets, (targets != PAD).astype(np.float32)))
    if rng is not None:
        rng.shuffle(out)
    return out


@dataclass
class PreparedData:
    """A style's split and its augmented training set, reproducible from the seed."""

    split: Split
    augmented: list[Melody]
    transpositions_per_piece: int
    #: With keys normalised: how many pieces were moved by each shift 0..11 (mod 12), else None.
    key_shifts: list[int] | None = None


def prepare(melodies: list[Melody], target_tokens: int, seed: int,
            normalise_keys: bool = False) -> PreparedData:
    """Split by piece, then augment the training pieces to about ``target_tokens`` an epoch.

    Each piece gets ``k`` random transpositions and is itself repeated ``k`` times, so half of an
    epoch keeps the corpus's own keys (the test split is in them) and half teaches other keys. With
    ``normalise_keys`` every piece (test split included) is moved to C major or A minor instead and
    repeated ``2k`` times: the model then need not work out the key, and the sampler moves its melodies
    to a key drawn from ``key_shifts``.
    """
    key_shifts = None
    if normalise_keys:
        moved = [in_c(m) for m in melodies]
        melodies = [m for m, _ in moved]
        key_shifts = np.bincount([shift % 12 for _, shift in moved], minlength=12).tolist()
    split = split_pieces(melodies)
    rng = random.Random(seed)
    train_tokens = sum(m.n_steps + 1 for m in split.train)
    per_piece = int(np.clip(round(target_tokens / max(2 * train_tokens, 1)), 0, 6))
    augmented = []
    for melody in split.train:
        if normalise_keys:
            augmented += [melody] * max(2 * per_piece, 1)
        else:
            augmented += [melody] * max(per_piece - 1, 0) + transpositions(melody, per_piece, rng)
    return PreparedData(split, augmented, 0 if normalise_keys else per_piece, key_shifts)


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
